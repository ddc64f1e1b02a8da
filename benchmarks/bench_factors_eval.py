"""Factor-expression benchmark: the whole library evaluated on a large Panel.

Default: 100 assets x 100,000 bars (10 M cells per field) of synthetic 1-minute perpetual bars
(OHLCV, quote volume, trades, taker volume, funding, basis, mark). Book factors are skipped (a
(T, N, L) book at this size would not fit the point of the benchmark); they run in the tests.

Reported:
- ``jit_s``: first call of every kernel on a tiny Panel (numba compile, or cache load when
  ``NUMBA_CACHE_DIR`` holds the compiled kernels), separate from steady-state time;
- per factor: parse + plan time (ms), steady-state evaluation time (best of ``--repeat`` after
  ``--warmup`` runs), and ns per output cell;
- per factor, the memory floor: the bytes of the distinct stored fields it reads (``returns``
  reads close, ``vwap`` quote_volume and volume) plus its result written, over the bandwidth of
  a one-thread numpy copy between two preallocated (T, N) arrays measured in the same run, and
  its time over that floor (``x_floor``);
- the whole library one factor at a time vs in one shared plan (``evaluate_many``: common
  subexpressions across factors computed once);
- anchors measured in the same run: a pandas implementation of a sample of factors (rolling,
  ewm, cross-sectional rank), checked for parity (``--check``) before anything is timed.

Run: ``python benchmarks/bench_factors_eval.py --rows 100000 --cols 100 --repeat 3 --check``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.engine.panel import Panel  # noqa: E402
from alphaforge.factors.expr import compile_expr, evaluate  # noqa: E402
from alphaforge.factors.expr.compile import _plan, evaluate_many  # noqa: E402
from alphaforge.factors.expr.parser import parse  # noqa: E402
from alphaforge.factors.library import LIBRARY  # noqa: E402

MINUTE_US = 60_000_000


@dataclass(frozen=True, slots=True)
class BenchCase:
    """A factor timed as an expression (ours) and as pandas code (anchor), parity-checked."""

    name: str
    ours: str
    anchor: Callable[[dict[str, pd.DataFrame]], pd.DataFrame]
    check: float  # rtol of the parity check


def make_panel(rows: int, cols: int, seed: int) -> Panel:
    """Synthetic perpetual 1m bars (random walks, lognormal volumes), 0.1% missing cells."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, (rows, cols)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, (rows, cols)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, (rows, cols)))
    volume = rng.lognormal(3.0, 0.8, (rows, cols))
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "quote_volume": volume * (high + low) / 2,
        "trades": np.floor(volume * 2) + 1.0,
        "taker_buy_volume": volume * rng.uniform(0.2, 0.8, (rows, cols)),
        "funding_rate": np.repeat(rng.normal(1e-4, 2e-4, (rows // 480 + 1, cols)), 480, 0)[:rows],
        "basis": rng.normal(5e-4, 3e-4, (rows, cols)),
        "mark_close": close * (1 + rng.normal(0, 2e-4, (rows, cols))),
        "open_interest": 1e6 * np.exp(np.cumsum(rng.normal(0, 1e-3, (rows, cols)), axis=0)),
    }
    fields["open_interest_value"] = fields["open_interest"] * close
    knock = rng.random((rows, cols)) < 0.001
    for a in fields.values():
        a[knock] = np.nan
    ts = (np.arange(1, rows + 1, dtype=np.int64) + 28_000_000) * MINUTE_US
    return Panel(ts, tuple(f"S{i:03d}" for i in range(cols)), fields, None, MINUTE_US)


def _ret(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return d["close"] / d["close"].shift(1) - 1


def _rsi(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    diff = d["close"].diff()
    kw = {"alpha": 1 / 14, "adjust": False, "ignore_na": True, "min_periods": 27}
    up = diff.clip(lower=0).ewm(**kw).mean().where(diff.notna())
    down = (-diff).clip(lower=0).ewm(**kw).mean().where(diff.notna())
    return 100 * up / (up + down)


def _alpha003(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    ro, rv = d["open"].rank(axis=1, pct=True), d["volume"].rank(axis=1, pct=True)
    return -ro.rolling(10).corr(rv)


CASES = (
    BenchCase(
        "mom_20",
        "ts_pct_change(close, 20)",
        lambda d: d["close"].pct_change(20, fill_method=None),
        1e-9,
    ),
    BenchCase("vol_20", "ts_std(returns, 20)", lambda d: _ret(d).rolling(20).std(), 1e-7),
    BenchCase(
        "boll_pos_20",
        LIBRARY["boll_pos_20"].expr,
        lambda d: (d["close"] - d["close"].rolling(20).mean()) / (2 * d["close"].rolling(20).std()),
        1e-6,
    ),
    BenchCase("rsi_14", LIBRARY["rsi_14"].expr, _rsi, 1e-7),
    BenchCase(
        "mom_rank_20",
        LIBRARY["mom_rank_20"].expr,
        lambda d: d["close"].pct_change(20, fill_method=None).rank(axis=1, pct=True),
        1e-9,
    ),
    BenchCase("alpha003", LIBRARY["alpha003"].expr, _alpha003, 1e-6),
)


_CPU: dict[str, float] = {}


def _best(fn: Callable[[], Any], repeat: int, warmup: int) -> float:
    """Best wall time of ``repeat`` runs; the CPU time (all threads) of that run in _CPU["last"]."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(times)
    _CPU["last"] = cpu
    return wall


_DERIVED_SOURCES = {"returns": ("close",), "vwap": ("quote_volume", "volume")}


def _bandwidth(panel: Panel, repeat: int) -> float:
    """Bytes per second of a one-thread copy between two preallocated (T, N) float64 arrays
    (8 bytes read and 8 written per cell), best of ``repeat`` after one untimed copy."""
    src = panel.fields["close"]
    dst = np.empty_like(src)
    t = _best(lambda: np.copyto(dst, src), max(3, repeat), 1)
    return 16.0 * src.size / t


def _floor_s(expr: str, cells: int, bandwidth: float) -> tuple[int, float]:
    """(stored fields read, seconds to read them once and write the result at ``bandwidth``)."""
    fields: set[str] = set()
    for name in compile_expr(expr).fields:
        fields.update(_DERIVED_SOURCES.get(name, (name,)))
    return len(fields), 8.0 * cells * (len(fields) + 1) / bandwidth


def _jit(seed: int) -> float:
    tiny = make_panel(64, 4, seed)
    t0 = time.perf_counter()
    for f in LIBRARY.values():
        if f.group != "book":
            evaluate(f.expr, tiny)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="bars T")
    ap.add_argument("--cols", type=int, default=100, help="assets N")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="parity of anchors before timing")
    ap.add_argument("--json", type=Path, default=None, help="write results to this file")
    args = ap.parse_args(argv)

    jit_s = _jit(args.seed)
    panel = make_panel(args.rows, args.cols, args.seed)
    frames = {k: pd.DataFrame(v) for k, v in panel.fields.items()}
    cells = panel.T * panel.N
    bandwidth = _bandwidth(panel, args.repeat)
    print(
        f"panel {panel.T} x {panel.N} ({cells / 1e6:.1f} M cells/field); "
        f"jit/cache-load {jit_s:.2f} s; copy bandwidth {bandwidth / 1e9:.1f} GB/s"
    )

    anchors = []
    for case in CASES:
        ours = evaluate(case.ours, panel)
        if args.check:
            want = case.anchor(frames).to_numpy()
            np.testing.assert_allclose(ours, want, rtol=case.check, atol=1e-10, err_msg=case.name)
        t_ours = _best(lambda c=case: evaluate(c.ours, panel), args.repeat, args.warmup)
        cpu_ours = _CPU["last"]
        t_pd = _best(lambda c=case: c.anchor(frames), args.repeat, args.warmup)
        cpu_pd = _CPU["last"]
        anchors.append(
            {
                "name": case.name,
                "ours_s": t_ours,
                "pandas_s": t_pd,
                "speedup": t_pd / t_ours,
                "ours_cpu_s": cpu_ours,
                "pandas_cpu_s": cpu_pd,
            }
        )
        print(
            f"  anchor {case.name:14s} ours {t_ours:7.3f} s  pandas {t_pd:7.3f} s  "
            f"x{t_pd / t_ours:6.1f}  (cpu ours {cpu_ours:.3f} s, pandas {cpu_pd:.3f} s)"
        )

    rows = []
    for f in LIBRARY.values():
        if f.group == "book":
            continue
        t0 = time.perf_counter()
        _plan([parse(f.expr)])
        plan_ms = (time.perf_counter() - t0) * 1e3
        compile_expr(f.expr)
        t = _best(lambda e=f.expr: evaluate(e, panel), args.repeat, args.warmup)
        cpu = _CPU["last"]
        n_fields, floor = _floor_s(f.expr, cells, bandwidth)
        cross = "cs_" in f.expr
        rows.append(
            {
                "cpu_s": cpu,
                "fields_read": n_fields,
                "floor_s": floor,
                "x_floor": t / floor,
                "cross_sectional": cross,
                "name": f.name,
                "group": f.group,
                "lookback": f.lookback,
                "plan_ms": plan_ms,
                "eval_s": t,
                "ns_per_cell": t / cells * 1e9,
            }
        )
        print(
            f"  {f.name:22s} {f.group:10s} plan {plan_ms:6.2f} ms  eval {t:7.3f} s "
            f"(cpu {cpu:6.3f} s)  {t / cells * 1e9:6.1f} ns/cell  floor {floor * 1e3:6.1f} ms "
            f"x{t / floor:6.1f}"
        )

    exprs = [f.expr for f in LIBRARY.values() if f.group != "book"]
    one_by_one = sum(r["eval_s"] for r in rows)
    t_joint = _best(lambda: evaluate_many(exprs, panel), max(1, args.repeat - 1), 0)
    print(
        f"library ({len(exprs)} factors): one at a time {one_by_one:.2f} s, "
        f"one shared plan {t_joint:.2f} s"
    )
    no_cs = [r["x_floor"] for r in rows if not r["cross_sectional"]]
    print(
        f"memory floor (no cross-sectional op, {len(no_cs)} factors): median x"
        f"{np.median(no_cs):.1f}, {sum(x <= 3.0 for x in no_cs)} within 3x"
    )
    import numba

    result = {
        "rows": panel.T,
        "cols": panel.N,
        "jit_s": jit_s,
        "anchors": anchors,
        "factors": rows,
        "library_sequential_s": one_by_one,
        "library_shared_plan_s": t_joint,
        "median_eval_s": float(np.median([r["eval_s"] for r in rows])),
        "bandwidth_gb_s": bandwidth / 1e9,
        "median_x_floor_no_cs": float(
            np.median([r["x_floor"] for r in rows if not r["cross_sectional"]])
        ),
        "within_3x_floor_no_cs": sum(r["x_floor"] <= 3.0 for r in rows if not r["cross_sectional"]),
        "no_cs_factors": sum(not r["cross_sectional"] for r in rows),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "pandas": pd.__version__,
            "numba_threads": numba.get_num_threads(),
        },
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
