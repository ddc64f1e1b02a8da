"""Backtest core benchmark (issue 2): W1 and W2, ours vs vectorbt, numpy and hand-fused numba.

Workloads (one asset, random-walk 1-minute bars, opens = previous close with a small gap):

- **W1**: ``--rows`` bars (default 1,000,000), momentum sign signal (sign of the 1,440-bar,
  one-day, return), target weight +-0.5 every bar, 4 bps fees, lag 1 (decided at row t's
  close, filled at row t+1's open), equity marked at each close. Every bar rebalances back to
  the target. Starting equity 1e6 for every tool.
- **W2**: ``--w2-rows`` bars (default 100,000) x ``--cols`` (default 1,000) moving-average
  crossover parameter sets (fast in 2..41, slow in 50, 60, ...). Long at 1 / (1 + fee) when
  the fast MA crosses above the slow one, flat when it crosses below, NaN (hold) otherwise;
  4 bps fees, lag 1. The (K, T, 1) weights are built once, untimed (their build time is
  reported); every tool gets the same crossovers.

Tools:
- ``ours``: ``engine.backtest.run_backtest`` (equity and return curves) and, for W2,
  ``engine.backtest_stats.run_backtest_stats`` (per-path summaries, no curves);
- ``vectorbt``: W1 ``Portfolio.from_orders(size_type='targetpercent', price=open,
  direction='both')`` + ``value()``; W2 ``Portfolio.from_signals(price=open)`` with all-cash
  entries + ``final_value()``; orders shifted by one row for the lag;
- ``numpy``: the same recursion as a loop over bars with numpy arrays over parameter sets
  (W1 has one, so it is a scalar loop; the recursion is sequential because each fee depends on
  the equity left after the previous one). It runs on the first ``--numpy-rows`` bars and its
  time is scaled linearly to the full length (its cost per bar is constant);
- ``fused``: a hand-written single-purpose numba loop per workload, the practical limit: W1
  one scalar loop writing the same equity and return curves; W2 parallel over parameter sets,
  returning final equities.

Parity (``--check``, before timing; the largest relative difference is reported): equity
curves (W1) / final equities (W2) against ours, rtol 1e-9 (W2: vectorbt sizes an all-cash buy
as cash / (price * (1 + fee)), we as weight * equity / price with the weight 1 / (1 + fee), the
same number up to rounding), except W1 vs vectorbt at rtol 1e-7: vectorbt skips an order whose
size is within its float tolerance of zero (a tiny rebalance), which we execute. The W1
weights are +-0.5 so that vectorbt never has to shrink a buy for lack of cash.

JIT: first-call times in a fresh process, with an empty numba cache (cold: compile) and again
with the cache it left (warm: load), reported separately from the steady-state times:
``numba_first_use_s`` (the first call of any cached kernel: numba's process-wide set-up, here
the tiny price check), then ``run_backtest`` with K = 1 (serial kernels) and K = 3 (parallel
dispatcher) and ``run_backtest_stats``; ``first_call_total_s`` sums them.

Run: ``python benchmarks/bench_backtest.py --check`` (add ``--json`` for JSON only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.engine.backtest import run_backtest  # noqa: E402
from alphaforge.engine.backtest_stats import run_backtest_stats  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BenchCase,
    Timing,
    cpu_seconds,
    machine_info,
    markdown_table,
    measure,
)

FEE_BPS = 4.0
FEE = FEE_BPS * 1e-4
MOM_LOOKBACK = 1440  # one day of 1-minute bars
INIT_CASH = 1e6  # quote units; positions of thousands of units, far from any size tolerance


# ---------------------------------------------------------------- inputs
def make_prices(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) (T,) of a 1-minute random walk; open = previous close x a small gap."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows)))
    open_ = np.empty(rows)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 1e-4, rows - 1))
    return open_, close


def w1_weights(close: np.ndarray) -> np.ndarray:
    """+-0.5 by the sign of the one-day return; NaN (no order) before it exists."""
    w = np.full(close.shape, np.nan)
    w[MOM_LOOKBACK:] = 0.5 * np.sign(close[MOM_LOOKBACK:] / close[:-MOM_LOOKBACK] - 1.0)
    return w


def w2_windows(k: int) -> np.ndarray:
    """(K, 2) int (fast, slow) windows: fast 2..41 x slow 50, 60, ..."""
    fast = np.arange(2, 42)
    slow = 50 + 10 * np.arange(-(-k // fast.size))
    grid = np.array([(f, s) for s in slow for f in fast])
    return grid[:k]


@njit(cache=True, parallel=True)
def _crossover_weights(close, windows, long_w):  # type: ignore[no-untyped-def]
    """(K, T, 1) weights: long_w on an up-cross of MA(fast) over MA(slow), 0 on a down-cross,
    NaN otherwise; also (K, T) bool entry and exit signals."""
    t_len = close.shape[0]
    k_len = windows.shape[0]
    w = np.full((k_len, t_len, 1), np.nan)
    entries = np.zeros((k_len, t_len), dtype=np.bool_)
    exits = np.zeros((k_len, t_len), dtype=np.bool_)
    csum = np.zeros(t_len + 1)
    for t in range(t_len):
        csum[t + 1] = csum[t] + close[t]
    for k in prange(k_len):
        f = windows[k, 0]
        s = windows[k, 1]
        prev = 0.0
        for t in range(s - 1, t_len):
            diff = (csum[t + 1] - csum[t + 1 - f]) / f - (csum[t + 1] - csum[t + 1 - s]) / s
            if t >= s:
                if diff > 0.0 and prev <= 0.0:
                    w[k, t, 0] = long_w
                    entries[k, t] = True
                elif diff <= 0.0 and prev > 0.0:
                    w[k, t, 0] = 0.0
                    exits[k, t] = True
            prev = diff
    return w, entries, exits


# ---------------------------------------------------------------- fused loops (practical limit)
@njit(cache=True, error_model="numpy")
def fused_w1(w, open_, close, fee, init_cash):  # type: ignore[no-untyped-def]
    """Target weights, lag 1, fill at the next open, mark at the close: equity and returns."""
    t_len = w.shape[0]
    eq = np.empty(t_len)
    ret = np.empty(t_len)
    cash = init_cash
    pos = 0.0
    prev = init_cash
    for s in range(t_len):
        if s >= 1:
            wt = w[s - 1]
            if not np.isnan(wt):
                px = open_[s]
                e = cash + pos * px
                dq = e * (wt / px) - pos
                cash -= dq * px + abs(dq) * px * fee
                pos += dq
        e = cash + pos * close[s]
        eq[s] = e
        ret[s] = e / prev - 1.0
        prev = e
    return eq, ret


@njit(cache=True, parallel=True, error_model="numpy")
def fused_w2(w, open_, close, fee, init_cash):  # type: ignore[no-untyped-def]
    """(K, T, 1) weights -> (K,) final equities, parallel over parameter sets."""
    k_len, t_len, _ = w.shape
    final = np.empty(k_len)
    for k in prange(k_len):
        cash = init_cash
        pos = 0.0
        for s in range(1, t_len):
            wt = w[k, s - 1, 0]
            if not np.isnan(wt):
                px = open_[s]
                e = cash + pos * px
                dq = e * (wt / px) - pos
                cash -= dq * px + abs(dq) * px * fee
                pos += dq
        final[k] = cash + pos * close[t_len - 1]
    return final


def numpy_loop(w_kt: np.ndarray, open_: np.ndarray, close: np.ndarray, fee: float) -> np.ndarray:
    """(K, T) weights -> (K, T) equity: the recursion over bars, numpy over parameter sets."""
    k_len, t_len = w_kt.shape
    cash = np.full(k_len, INIT_CASH)
    pos = np.zeros(k_len)
    eq = np.empty((k_len, t_len))
    for s in range(t_len):
        if s >= 1:
            wt = w_kt[:, s - 1]
            live = ~np.isnan(wt)
            px = open_[s]
            e = cash + pos * px
            dq = np.where(live, e * (np.where(live, wt, 0.0) / px) - pos, 0.0)
            cash = cash - (dq * px + np.abs(dq) * px * fee)
            pos = pos + dq
        eq[:, s] = cash + pos * close[s]
    return eq


# ---------------------------------------------------------------- vectorbt
def vbt_w1(w: np.ndarray, open_: np.ndarray, close: np.ndarray) -> np.ndarray:
    import vectorbt as vbt

    size = np.full(w.shape, np.nan)
    size[1:] = w[:-1]  # row t's decision is an order at row t + 1's open
    pf = vbt.Portfolio.from_orders(
        close, size, size_type="targetpercent", price=open_, fees=FEE, direction="both",
        init_cash=INIT_CASH, freq="1min",
    )  # fmt: skip
    return np.asarray(pf.value())


def vbt_w2(entries: np.ndarray, exits: np.ndarray, open_: np.ndarray, close: np.ndarray) -> Any:
    import vectorbt as vbt

    ent = np.zeros_like(entries.T)
    ext = np.zeros_like(exits.T)
    ent[1:] = entries.T[:-1]  # (T, K), one row later for the lag
    ext[1:] = exits.T[:-1]
    pf = vbt.Portfolio.from_signals(
        close[:, None], ent, ext, price=open_[:, None], fees=FEE, init_cash=INIT_CASH, freq="1min",
        direction="longonly",
    )  # fmt: skip
    return np.asarray(pf.final_value())


# ---------------------------------------------------------------- JIT time
JIT_SNIPPET = """
import json, time
import numpy as np
t0 = time.perf_counter()
from alphaforge.engine import backtest_nb
from alphaforge.engine.backtest import run_backtest
from alphaforge.engine.backtest_stats import run_backtest_stats
t1 = time.perf_counter()
c = np.linspace(100.0, 101.0, 50)
backtest_nb.find_invalid_price(c[:, None])  # numba's process-wide first use, any kernel
t2 = time.perf_counter()
run_backtest(np.full(50, 0.5), close=c, fee_bps=4)
t3 = time.perf_counter()
run_backtest(np.full((50, 1, 3), 0.5), close=c, fee_bps=4)
t4 = time.perf_counter()
run_backtest_stats(np.full((50, 1, 3), 0.5), close=c, fee_bps=4)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "numba_first_use_s": t2 - t1, "k1_s": t3 - t2,
                  "k3_s": t4 - t3, "stats_s": t5 - t4, "first_call_total_s": t5 - t1}))
"""


def jit_times() -> dict[str, Any]:
    """First-call times in fresh processes: cold (empty numba cache) then warm (its cache)."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for label in ("cold", "warm"):
            p = subprocess.run(
                [sys.executable, "-c", JIT_SNIPPET], env=env, capture_output=True, text=True,
                check=True, cwd=ROOT,
            )  # fmt: skip
            out[label] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


# ---------------------------------------------------------------- cases
def w1_cases(rows: int, numpy_rows: int, seed: int) -> tuple[list[BenchCase], dict[str, Any]]:
    open_, close = make_prices(rows, seed)
    w = w1_weights(close)

    def ours() -> np.ndarray:
        return run_backtest(
            w, close=close, open=open_, lag=1, fee_bps=FEE_BPS, init_cash=INIT_CASH
        ).equity

    n = min(numpy_rows, rows)

    def ours_slice() -> np.ndarray:
        return run_backtest(
            w[:n], close=close[:n], open=open_[:n], fee_bps=FEE_BPS, init_cash=INIT_CASH
        ).equity

    def close_enough(a: Any, b: Any) -> None:
        np.testing.assert_allclose(np.ravel(b), np.ravel(a), rtol=1e-9, atol=0)

    def close_to_vbt(a: Any, b: Any) -> None:
        # vectorbt drops an order whose size is within its float tolerance of zero (a tiny
        # rebalance); each drop moves equity by ~1e-9 relative
        np.testing.assert_allclose(np.ravel(b), np.ravel(a), rtol=1e-7, atol=0)

    cases = [
        BenchCase("W1 vs vectorbt", ours, lambda: vbt_w1(w, open_, close), close_to_vbt),
        BenchCase("W1 vs numpy loop", ours_slice,
                  lambda: numpy_loop(w[None, :n], open_[:n], close[:n], FEE)[0], close_enough),
        BenchCase("W1 vs fused numba", ours, lambda: fused_w1(w, open_, close, FEE, INIT_CASH)[0],
                  close_enough),
    ]  # fmt: skip
    return cases, {"rows": rows, "cols": 1, "numpy_rows": n}


def w2_cases(
    rows: int, cols: int, numpy_rows: int, seed: int
) -> tuple[list[BenchCase], dict[str, Any]]:
    open_, close = make_prices(rows, seed + 1)
    windows = w2_windows(cols)
    t0 = time.perf_counter()
    wk, entries, exits = _crossover_weights(close, windows, 1.0 / (1.0 + FEE))
    build_s = time.perf_counter() - t0
    w_tnk = np.moveaxis(wk, 0, -1)  # (T, 1, K) view of the (K, T, 1) block: no copy
    n = min(numpy_rows, rows)

    def ours_stats() -> np.ndarray:
        return run_backtest_stats(
            w_tnk, close=close, open=open_, fee_bps=FEE_BPS, init_cash=INIT_CASH
        ).final_equity

    def ours_curves() -> np.ndarray:
        return run_backtest(
            w_tnk, close=close, open=open_, fee_bps=FEE_BPS, init_cash=INIT_CASH
        ).equity[-1]

    w_slice = np.moveaxis(np.ascontiguousarray(wk[:, :n]), 0, -1)  # untimed copy

    def ours_slice() -> np.ndarray:
        res = run_backtest(
            w_slice, close=close[:n], open=open_[:n], fee_bps=FEE_BPS, init_cash=INIT_CASH
        )
        return res.equity[-1]

    def close_enough(a: Any, b: Any) -> None:
        np.testing.assert_allclose(np.ravel(b), np.ravel(a), rtol=1e-9, atol=0)

    def vbt() -> Any:
        return vbt_w2(entries, exits, open_, close)

    def fused() -> Any:
        return fused_w2(wk, open_, close, FEE, INIT_CASH)

    cases = [
        BenchCase("W2 stats vs vectorbt", ours_stats, vbt, close_enough),
        BenchCase("W2 curves vs vectorbt", ours_curves, vbt, close_enough),
        BenchCase("W2 curves vs numpy loop", ours_slice,
                  lambda: numpy_loop(wk[:, :n, 0], open_[:n], close[:n], FEE)[:, -1],
                  close_enough),
        BenchCase("W2 stats vs fused numba", ours_stats, fused, close_enough),
        BenchCase("W2 curves vs fused numba", ours_curves, fused, close_enough),
    ]  # fmt: skip
    return cases, {"rows": rows, "cols": cols, "numpy_rows": n, "weights_build_s": build_s}


# ---------------------------------------------------------------- driver
def run_case(
    case: BenchCase, size: int, a: argparse.Namespace, heavy: bool, memo: dict[Any, Any]
) -> dict[str, Any]:
    """Parity first (if --check), then ours and the anchor timed in turn. A heavy anchor
    (vectorbt) runs once, and its output and timing are reused by the cases sharing it."""
    rel = None
    if a.check:
        mine = np.ravel(case.ours())
        if case.anchor not in memo:
            t0, c0 = time.perf_counter(), cpu_seconds()
            out = np.ravel(case.anchor())
            memo[case.anchor] = (out, Timing(time.perf_counter() - t0, cpu_seconds() - c0))
        theirs = memo[case.anchor][0]
        case.check(mine, theirs)
        rel = float(np.max(np.abs(theirs / mine - 1.0)))
    ours = measure(case.ours, a.repeat, a.warmup)
    if heavy and case.anchor in memo:
        anchor = memo[case.anchor][1]
    else:
        anchor = measure(case.anchor, 1 if heavy else a.repeat, 0 if heavy else a.warmup)
        memo.setdefault(case.anchor, (None, anchor))
    return {
        "case": case.name,
        "bar_x_combos": size,
        "ours_wall_s": ours.wall_s,
        "ours_cpu_s": ours.cpu_s,
        "anchor_wall_s": anchor.wall_s,
        "anchor_cpu_s": anchor.cpu_s,
        "ours_ns_per_bar_combo": ours.wall_s / size * 1e9,
        "ours_cpu_ns_per_bar_combo": ours.cpu_s / size * 1e9,
        "anchor_over_ours_wall": anchor.wall_s / ours.wall_s,
        "anchor_over_ours_cpu": anchor.cpu_s / ours.cpu_s,
        "parity_max_rel_diff": rel,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="W1 bars")
    p.add_argument("--w2-rows", type=int, default=100_000, help="W2 bars")
    p.add_argument("--cols", type=int, default=1000, help="W2 parameter sets K")
    p.add_argument("--numpy-rows", type=int, default=20_000, help="bars of the numpy loops")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workloads", default="w1,w2", help="comma list of w1, w2")
    p.add_argument("--no-jit", action="store_true", help="skip the fresh-process JIT timing")
    p.add_argument("--check", action="store_true", help="check parity before timing")
    p.add_argument("--json", action="store_true", help="print JSON only")
    a = p.parse_args(argv)
    warnings.simplefilter("ignore")  # vectorbt / pandas deprecation chatter

    report: dict[str, Any] = {"machine": machine_info("numba", "vectorbt", "pandas")}
    if not a.no_jit:
        report["jit"] = jit_times()
    # in-process warm-up of every compiled function (vectorbt's own JIT included)
    o, c = make_prices(200, 0)
    ww = w1_weights(c)
    run_backtest(ww, close=c, open=o, fee_bps=FEE_BPS, init_cash=INIT_CASH)
    fused_w1(ww, o, c, FEE, INIT_CASH)
    wk, en, ex = _crossover_weights(c, w2_windows(3), 1.0 / (1.0 + FEE))
    run_backtest_stats(
        np.moveaxis(wk, 0, -1), close=c, open=o, fee_bps=FEE_BPS, init_cash=INIT_CASH
    )
    fused_w2(wk, o, c, FEE, INIT_CASH)
    vbt_w1(ww, o, c)
    vbt_w2(en, ex, o, c)

    rows: list[dict[str, Any]] = []
    memo: dict[Any, Any] = {}
    loads = [os.getloadavg()[0]]
    if "w1" in a.workloads:
        cases, info = w1_cases(a.rows, a.numpy_rows, a.seed)
        report["w1"] = info
        for case in cases:
            size = info["numpy_rows"] if "numpy" in case.name else a.rows
            rows.append(run_case(case, size, a, "vectorbt" in case.name, memo))
            loads.append(os.getloadavg()[0])
    if "w2" in a.workloads:
        cases, info = w2_cases(a.w2_rows, a.cols, a.numpy_rows, a.seed)
        report["w2"] = info
        for case in cases:
            size = (info["numpy_rows"] if "numpy" in case.name else a.w2_rows) * a.cols
            rows.append(run_case(case, size, a, "vectorbt" in case.name, memo))
            loads.append(os.getloadavg()[0])
    report["cases"] = rows
    report["loadavg_1m_during"] = [min(loads), max(loads)]
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "cases"}, indent=2))
        cols = ["case", "ours_wall_s", "ours_cpu_s", "anchor_wall_s", "anchor_cpu_s",
                "ours_ns_per_bar_combo", "anchor_over_ours_wall",
                "anchor_over_ours_cpu"]  # fmt: skip
        print(markdown_table(rows, cols))
    return report


if __name__ == "__main__":
    main()
