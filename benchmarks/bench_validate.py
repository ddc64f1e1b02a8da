"""Validation benchmark: every kline check over 5 M rows and every aggTrades check over 20 M rows.

Synthetic but realistic data from a seed (Student-t returns with volatility clustering, tick-
rounded prices, lognormal volumes, and planted defects of every kind so every check has work),
handed to the validators as Arrow tables in the declared schemas.

Cases, all measured in the same run:
- ``klines/ours``: `data.validate.validate_klines` (all checks, report included);
- ``klines/pandas``: a straightforward pandas implementation of the same checks and the same
  outlier statistic (`validate_rolling_nb.strided_robust_zscore`: median from ``rolling().median()``
  at block starts, MAD per block with numpy); parity: identical offending rows per check;
- ``outlier/pandas-rolling-2pass``, ``outlier/bottleneck-2pass``, ``outlier/numba-exact-2pass``:
  the outlier check ALONE in the per-row two-pass form the issue quotes (median over the
  trailing window, then median of |x - median|); its flags are compared with ours (agreement
  reported, not required: ours refreshes the reference every window/8 rows, excluding the
  row itself);
- ``klines/iterrows``: a row-by-row ``DataFrame.iterrows`` checker on a 100,000-row slice,
  extrapolated linearly;
- ``agg_trades/ours`` vs ``agg_trades/pandas`` (parity: identical rows per check).

JIT: the first call of each kernel on a tiny input is reported as ``jit_s`` (compile, or cache
load when NUMBA_CACHE_DIR holds the kernels), apart from steady-state times (best of
``--repeat`` after ``--warmup``).

Run: ``python benchmarks/bench_validate.py --rows 5000000 --repeat 3 --check``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.data import validate_rolling_nb  # noqa: E402
from alphaforge.data.schemas import AGG_TRADES, KLINES  # noqa: E402
from alphaforge.data.validate import KlineChecks, TradeChecks, validate_klines, validate_trades  # noqa: E402

IV = 60_000_000


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One timed case: ours vs an anchor, with a parity check run before timing."""

    name: str
    ours: Callable[[], Any]
    anchor: Callable[[], Any]
    check: Callable[[Any, Any], dict[str, Any]]


def make_klines(n: int, seed: int) -> pa.Table:
    """n 1m bars of one symbol with ~0.01 % of rows carrying planted defects."""
    rng = np.random.default_rng(seed)
    vol = np.exp(np.convolve(rng.normal(0, 0.3, n), np.ones(50) / 50, "same")) * 1e-3
    ret = rng.standard_t(4, n) * vol
    close = np.round(20.0 * np.exp(np.cumsum(ret)), 4)
    open_ = np.concatenate(([close[0]], close[:-1]))
    wig = np.abs(rng.normal(0, 1, n)) * vol * close
    high = np.round(np.maximum(open_, close) + wig, 4)
    low = np.round(np.minimum(open_, close) - wig * rng.uniform(0.2, 1, n), 4)
    v = np.round(rng.lognormal(6, 1, n), 1)
    qv = v * (low + (high - low) * rng.uniform(0, 1, n))
    tb = np.round(v * rng.uniform(0, 1, n), 1)
    ot = 1_600_000_000_000_000 - 1_600_000_000_000_000 % IV + IV * np.arange(n, dtype=np.int64)
    ct = ot + IV - 1000
    k = max(1, n // 10_000)
    pick = lambda: rng.choice(np.arange(10, n - 10), k, replace=False)  # noqa: E731
    high[pick()] = 0.5 * low[0]  # OHLC broken
    ct[pick()] += 1000
    p = pick()
    tb[p] = v[p] + 1.0
    qv[pick()] *= 3.0
    z = pick()
    v[z] = qv[z] = tb[z] = 0.0
    close[pick()] *= 1.4
    keep = np.ones(n, dtype=bool)
    keep[pick()] = False  # gaps
    order = np.flatnonzero(keep)
    order = np.sort(np.concatenate([order, rng.choice(order, k)]))  # duplicates
    ts_t = KLINES.field("open_time").type
    return pa.table(
        {
            "symbol": pa.array(["BENCHUSDT"] * order.size),
            "open_time": pa.array(ot[order]).cast(ts_t),
            "open": open_[order],
            "high": high[order],
            "low": low[order],
            "close": close[order],
            "volume": v[order],
            "close_time": pa.array(ct[order]).cast(ts_t),
            "quote_volume": qv[order],
            "trades": pa.array(np.full(order.size, 10, np.int64)),
            "taker_buy_volume": tb[order],
            "taker_buy_quote_volume": tb[order] * close[order],
        }
    ).cast(KLINES)


def make_agg_trades(n: int, seed: int) -> pa.Table:
    """n aggTrades with contiguous ids except planted gaps, dups, bad prints and bad values."""
    rng = np.random.default_rng(seed + 1)
    ids = np.arange(n, dtype=np.int64) + 1_000_000
    cnt = rng.geometric(0.6, n).astype(np.int64)
    last = 5_000_000 + np.cumsum(cnt)
    first = last - cnt + 1
    ts = 1_600_000_000_000_000 + np.cumsum(rng.exponential(20_000, n)).astype(np.int64)
    px = np.round(20.0 * np.exp(np.cumsum(rng.standard_t(4, n) * 2e-5)), 4)
    qty = np.round(rng.lognormal(2, 1.2, n), 1) + 0.1
    k = max(1, n // 100_000)
    pick = lambda: rng.choice(np.arange(10, n - 10), k, replace=False)  # noqa: E731
    px[pick()] *= 1.5
    qty[pick()] = 0.0
    p = pick()
    ts[p] = ts[p - 1] - 1000
    first[pick()] += 1
    keep = np.ones(n, dtype=bool)
    keep[pick()] = False
    order = np.flatnonzero(keep)
    order = np.sort(np.concatenate([order, rng.choice(order, k)]))
    return pa.table(
        {
            "symbol": pa.array(["BENCHUSDT"] * order.size),
            "agg_trade_id": ids[order],
            "price": px[order],
            "qty": qty[order],
            "first_trade_id": first[order],
            "last_trade_id": last[order],
            "ts": pa.array(ts[order]).cast(AGG_TRADES.field("ts").type),
            "is_buyer_maker": pa.array(rng.random(order.size) < 0.5),
        }
    ).cast(AGG_TRADES)


def _strided_pandas(x: pd.Series, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (median, MAD) of validate_rolling_nb.strided_robust_zscore, the plain pandas way:
    rolling().median() on the shifted series at block starts, MAD per block with numpy."""
    n = len(x)
    arr = x.to_numpy()
    starts = np.arange(0, n, stride)
    med_b = x.shift(1).rolling(window, min_periods=window // 2).median().to_numpy()[starts]
    lead = arr[:window][~np.isnan(arr[:window])]
    mad_b = np.empty(starts.size)
    for j, b in enumerate(starts):
        w = arr[max(0, b - window) : b]
        w = w[~np.isnan(w)]
        if w.size < window // 2:
            w = lead
            med_b[j] = np.median(w)
        mad_b[j] = np.median(np.abs(w - med_b[j]))
    return np.repeat(med_b, stride)[:n], np.repeat(mad_b, stride)[:n]


def pandas_klines(t: pa.Table, p: KlineChecks) -> dict[str, set[int]]:
    """Every kline check written plainly in pandas (one symbol, as generated)."""
    df = t.to_pandas()
    ot = df["open_time"].astype("int64").to_numpy()
    ct = df["close_time"].astype("int64").to_numpy()
    o, h, lo, c, v = (df[k] for k in ("open", "high", "low", "close", "volume"))
    qv, tb, tol = df["quote_volume"], df["taker_buy_volume"], p.quote_rel_tol
    out = {
        "close_time_mismatch": ct != ot + IV - 1000,
        "off_grid": ot % IV != 0,
        "ohlc_inconsistent": (h < lo) | (o < lo) | (c < lo) | (o > h) | (c > h),
        "non_positive_price": (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
        "negative_volume": (v < 0) | (qv < 0) | (tb < 0),
        "taker_buy_gt_volume": tb > v * (1 + tol),
        "quote_volume_out_of_range": (qv < lo * v * (1 - tol)) | (qv > h * v * (1 + tol)),
        "duplicate_bars": df.duplicated(["symbol", "open_time"]),
        "non_monotonic_time": df["open_time"].diff().dt.total_seconds() < 0,
    }
    res = {k: set(np.flatnonzero(np.asarray(m)).tolist()) for k, m in out.items()}
    u = df[~out["duplicate_bars"]]
    gaps = (u["open_time"].diff().dt.total_seconds() * 1e6 / IV).round() - 1
    res["missing_bars"] = set(u.index[gaps >= 1].tolist())
    zero = (u["volume"] == 0).astype(int)
    run_id = (zero.diff() != 0).cumsum()
    runs = u.groupby(run_id).agg(
        first=("volume", lambda s: s.index[0]),
        n=("volume", "size"),
        z=("volume", lambda s: s.iloc[0] == 0),
    )
    res["zero_volume_run"] = set(runs[runs.z & (runs.n >= p.zero_volume_run)]["first"].tolist())
    r = (u["close"] / u["close"].shift(1) - 1).reset_index(drop=True)
    med, mad = _strided_pandas(r, p.outlier_window, p.stride)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (r.to_numpy() - med) / np.maximum(1.4826 * mad, p.min_scale)
    res["return_outlier"] = set(u.index[np.abs(z) > p.outlier_z].tolist())
    lr = np.log(u["high"] / u["low"]).replace([np.inf, -np.inf], np.nan).reset_index(drop=True)
    med, _ = _strided_pandas(lr, p.outlier_window, p.outlier_window)
    ratio = lr.to_numpy() / np.maximum(med, p.range_floor)
    res["range_outlier"] = set(u.index[ratio > p.range_ratio].tolist())
    return res


def pandas_trades(t: pa.Table, p: TradeChecks) -> dict[str, set[int]]:
    """Every aggTrades check written plainly in pandas (ids in file order)."""
    df = t.to_pandas()
    d = df["agg_trade_id"].diff()
    res = {
        "missing_ids": d > 1,
        "duplicate_ids": df["agg_trade_id"].duplicated(),
        "id_step_back": d < 0,
        "first_last_gap": (d == 1) & (df["first_trade_id"] != df["last_trade_id"].shift(1) + 1),
        "first_gt_last": df["first_trade_id"] > df["last_trade_id"],
        "non_monotonic_time": df["ts"].diff().dt.total_seconds() < 0,
        "non_positive_price": ~(df["price"] > 0),
        "non_positive_qty": ~(df["qty"] > 0),
    }
    out = {k: set(np.flatnonzero(np.asarray(m)).tolist()) for k, m in res.items()}
    out["missing_ids"] = set(np.flatnonzero(np.asarray(res["missing_ids"])).tolist())
    px = df["price"]
    med, mad = _strided_pandas(px, p.outlier_window, p.stride)
    dev = px.to_numpy() - med
    scale = np.maximum(1.4826 * mad, p.min_scale_rel * np.abs(med))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(dev == 0, 0.0, dev / scale)
    out["price_outlier"] = set(np.flatnonzero(np.abs(z) > p.outlier_z).tolist())
    return out


def iterrows_klines(t: pa.Table, p: KlineChecks) -> int:
    """Row-by-row checker (DataFrame.iterrows): row checks, order, gaps, returns."""
    df = t.to_pandas()
    bad = 0
    prev_t = None
    prev_c = None
    rets: list[float] = []
    for _, row in df.iterrows():
        ot = row["open_time"].value // 1000
        bad += row["close_time"].value // 1000 != ot + IV - 1000
        bad += not (
            row["low"]
            <= min(row["open"], row["close"])
            <= max(row["open"], row["close"])
            <= row["high"]
        )
        bad += row["taker_buy_volume"] > row["volume"]
        bad += not (
            row["low"] * row["volume"] <= row["quote_volume"] <= row["high"] * row["volume"]
        )
        if prev_t is not None:
            bad += ot <= prev_t
            bad += round((ot - prev_t) / IV) > 1
            r = row["close"] / prev_c - 1
            rets.append(r)
            if len(rets) % p.stride == 0 and len(rets) > p.outlier_window:
                w = np.asarray(rets[-p.outlier_window - 1 : -1])
                m = np.median(w)
                s = max(1.4826 * np.median(np.abs(w - m)), p.min_scale)
                bad += abs(r - m) / s > p.outlier_z
        prev_t, prev_c = ot, row["close"]
    return int(bad)


def _time(fn: Callable[[], Any], repeat: int, warmup: int) -> tuple[float, Any, float]:
    """(best wall s, last result, best CPU s of this process) over ``repeat`` runs.

    CPU time is reported too because the machine is shared: wall time inflates with other
    processes' load, CPU time much less.
    """
    out = None
    for _ in range(warmup):
        out = fn()
    best = cpu = float("inf")
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return best, out, cpu


def _parity(ours: Any, anchor: dict[str, set[int]]) -> dict[str, Any]:
    bad = {
        k: (len(v), len(set(ours.check(k).row_index.tolist())))
        for k, v in anchor.items()
        if v != set(ours.check(k).row_index.tolist())
    }
    return {
        "ok": not bad,
        "mismatch": bad,
        "checks": len(anchor),
        "offending_rows": {k: len(v) for k, v in anchor.items()},
    }


def outlier_two_pass_anchors(r: np.ndarray, w: int) -> dict[str, Callable[[], np.ndarray]]:
    """The outlier check alone, per-row two-pass (median, then median of |x - median|)."""
    import bottleneck as bn

    mp = w // 2

    def pandas_2pass() -> np.ndarray:
        s = pd.Series(r)
        med = s.rolling(w, min_periods=mp).median()
        mad = (s - med).abs().rolling(w, min_periods=mp).median()
        return ((s - med) / np.maximum(1.4826 * mad, 1e-4)).to_numpy()

    def bottleneck_2pass() -> np.ndarray:
        med = bn.move_median(r, w, min_count=mp)
        mad = bn.move_median(np.abs(r - med), w, min_count=mp)
        return (r - med) / np.maximum(1.4826 * mad, 1e-4)

    def numba_exact_2pass() -> np.ndarray:
        return validate_rolling_nb.robust_zscore(r, w, mp, 1e-4)[0]

    return {
        "pandas-rolling-2pass": pandas_2pass,
        "bottleneck-2pass": bottleneck_2pass,
        "numba-exact-2pass": numba_exact_2pass,
    }


def jit_seconds() -> float:
    """First calls on tiny inputs (compile or cache load)."""
    t0 = time.perf_counter()
    validate_klines(make_klines(3000, 0), "1m")
    validate_trades(make_agg_trades(300_000, 0), "agg_trades")
    validate_rolling_nb.robust_zscore(np.zeros(10), 4, 2, 0.0)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="kline rows")
    ap.add_argument("--cols", type=int, default=4, help="aggTrades rows = cols x rows")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="parity before timing (always on)")
    ap.add_argument("--iterrows-rows", type=int, default=100_000)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    a = ap.parse_args(argv)
    res: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pa.__version__,
        }
    }
    res["jit_s"] = jit_seconds()
    kl = make_klines(a.rows, a.seed)
    ag = make_agg_trades(a.rows * a.cols, a.seed)
    kp, tp = KlineChecks(), TradeChecks()
    cases = [
        BenchCase(
            "klines",
            lambda: validate_klines(kl, "1m", params=kp),
            lambda: pandas_klines(kl, kp),
            _parity,
        ),
        BenchCase(
            "agg_trades",
            lambda: validate_trades(ag, "agg_trades", params=tp),
            lambda: pandas_trades(ag, tp),
            _parity,
        ),
    ]
    for c in cases:
        ours_s, ours, ours_cpu = _time(c.ours, a.repeat, a.warmup)
        anchor_s, anchor, anchor_cpu = _time(c.anchor, 1, 0)
        par = c.check(ours, anchor)
        if not par["ok"]:
            raise SystemExit(f"{c.name}: parity failed {par['mismatch']}")
        rows = kl.num_rows if c.name == "klines" else ag.num_rows
        res[c.name] = {
            "rows": rows,
            "ours_s": ours_s,
            "pandas_s": anchor_s,
            "speedup_vs_pandas": anchor_s / ours_s,
            "ours_cpu_s": ours_cpu,
            "pandas_cpu_s": anchor_cpu,
            "cpu_speedup_vs_pandas": anchor_cpu / ours_cpu,
            "parity": par,
        }
    closes = np.asarray(kl["close"])
    r = np.concatenate(([np.nan], closes[1:] / closes[:-1] - 1))
    z_ours = validate_rolling_nb.strided_robust_zscore(
        r, kp.outlier_window, kp.stride, kp.outlier_window // 2, kp.min_scale
    )[0]
    f_ours = np.abs(z_ours) > kp.outlier_z
    out: dict[str, Any] = {}
    for name, fn in outlier_two_pass_anchors(r, kp.outlier_window).items():
        reps = a.repeat if name.startswith("bottleneck") else 1
        secs, z, cpu = _time(fn, reps, 0)
        f = np.abs(z) > kp.outlier_z
        out[name] = {
            "s": secs,
            "cpu_s": cpu,
            "flagged": int(f.sum()),
            "agree_with_ours": float((f & f_ours).sum() / max(1, (f | f_ours).sum())),
        }
    res["outlier_alone"] = out
    sl = kl.slice(0, a.iterrows_rows)
    t0 = time.perf_counter()
    iterrows_klines(sl, kp)
    it_s = time.perf_counter() - t0
    res["klines"]["iterrows_extrapolated_s"] = it_s * kl.num_rows / sl.num_rows
    k = res["klines"]
    k["vs_bottleneck_outlier_alone"] = out["bottleneck-2pass"]["s"] / k["ours_s"]
    k["cpu_vs_bottleneck_outlier_alone"] = out["bottleneck-2pass"]["cpu_s"] / k["ours_cpu_s"]
    print(json.dumps(res, indent=2, default=str))
    return res


if __name__ == "__main__":
    main()
