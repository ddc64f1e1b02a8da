"""Order-book benchmark: book walks (standalone and inside the engine's fill loop) and L2 rebuild.

Cases:
  ``walk``: ``--rows`` (default 1,000,000) market orders, each against one of 1,000 distinct
    ``--cols``-level (default 100) books (order m walks book m % 1000): the engine's kernel
    ``slippage_nb.walk_book_at`` in a numba loop vs the vectorized numpy version (gather, cumsum,
    one global searchsorted over row-offset cumulative depth, chunks of 100k orders) and a
    pure-Python loop on a 20,000-order slice, extrapolated.
  ``engine_walk``: the same count of fills inside ``run_backtest`` (slippage=book_walk): 100
    parameter sets (max_gross 0.1..1.0) x 10,000 rows x 1 asset, the target flipping sign every
    row, one (T, 1, L) book; vs the numpy walk of the identical (order, book) pairs and vs the
    same run with fixed-bps slippage (so the walk's own share of the loop is visible).
  ``rebuild``: engine.book.rebuild_books on each real hftbacktest recording (if present),
    updates (depth rows) per second, vs a pure-Python dict replay of the snapshot and the diffs
    after it (no sequence checks, no sampling).

Parity is checked before timing (``--check``): numba vs numpy VWAPs (rtol 1e-9), engine fills vs
numpy on the recorded fills, the rebuilt top 20 levels per side vs the dict replay. JIT compile
time is reported separately (first call; the rebuild's first call includes reading the cache).

Run: ``python benchmarks/bench_book.py --check`` (``--json`` for machine-readable output).
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

import numba
import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.engine import slippage_nb  # noqa: E402
from alphaforge.engine.backtest import Slippage, run_backtest  # noqa: E402
from alphaforge.engine.panel import BookLevels  # noqa: E402
from alphaforge.engine.types import Exhaustion  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real" / "binance_ws_hftbacktest"
RECORDINGS = {
    "usdm_btcusdt_2024": ("usdm/btcusdt_20240808.gz", "usdm/btcusdt_20240809.gz"),
    "spot_btcusdt_2024": ("spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"),
    "cm_btcusd_perp_2024": ("cm/btcusd_perp_20240808.gz", "cm/btcusd_perp_20240809.gz"),
    "usdm_btcusdt_2023": ("usdm/btcusdt_20230404.dat.gz", "usdm/btcusdt_20230405.dat.gz"),
    "spot_nexousdt_2024": ("spot/nexousdt_20240723.dat.gz", "spot/nexousdt_20240724.dat.gz"),
}


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One timed comparison: ours vs an anchor, parity checked first."""

    name: str
    ours: Callable[[], Any]
    anchor: Callable[[], Any]
    check: Callable[[Any, Any], None]


@njit(cache=True)
def walk_orders(side, qty, book_idx, px3, q3):  # type: ignore[no-untyped-def]
    """The engine kernel in a loop: order m walks book book_idx[m] of (B, 1, L) arrays."""
    m_len = qty.shape[0]
    avg = np.empty(m_len)
    filled = np.empty(m_len)
    for m in range(m_len):
        avg[m], filled[m] = slippage_nb.walk_book_at(
            side[m], qty[m], px3, q3, book_idx[m], 0, 0, slippage_nb.CANCEL_REST, 0.0
        )
    return avg, filled


def numpy_walk(qty: np.ndarray, book_idx: np.ndarray, px: np.ndarray, q: np.ndarray,
               chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Vectorized VWAP walk: cumsum of depth, one searchsorted on row-offset cumulative depth."""
    avg = np.empty(qty.size)
    filled = np.empty(qty.size)
    for s in range(0, qty.size, chunk):
        qq, bi = qty[s : s + chunk], book_idx[s : s + chunk]
        p, d = px[bi], q[bi]
        cum = np.cumsum(d, axis=1)
        cumv = np.cumsum(p * d, axis=1)
        tot = cum[:, -1]
        want = np.minimum(qq, tot)
        offset = (np.arange(qq.size) * (tot.max() * 2 + 1))[:, None]
        k = (
            np.searchsorted((cum + offset).ravel(), want + offset[:, 0])
            - np.arange(qq.size) * (cum.shape[1])
        )
        k = np.minimum(k, cum.shape[1] - 1)
        rows = np.arange(qq.size)
        before_q = np.where(k > 0, cum[rows, k - 1], 0.0)
        before_v = np.where(k > 0, cumv[rows, k - 1], 0.0)
        cost = before_v + (want - before_q) * p[rows, k]
        avg[s : s + chunk] = cost / want
        filled[s : s + chunk] = want
    return avg, filled


def python_walk(qty: np.ndarray, book_idx: np.ndarray, px: list, q: list) -> list[float]:
    out = []
    for m in range(len(qty)):
        rem, cost = float(qty[m]), 0.0
        bp, bq = px[book_idx[m]], q[book_idx[m]]
        for j in range(len(bp)):
            take = min(bq[j], rem)
            cost += take * bp[j]
            rem -= take
            if rem <= 0:
                break
        out.append(cost / (qty[m] - rem))
    return out


def make_books(n_books: int, levels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ticks = rng.integers(1, 4, (n_books, levels)).astype(np.float64) * 0.1
    px = 100.0 + np.cumsum(ticks, axis=1)
    q = rng.lognormal(np.log(500.0), 1.0, (n_books, levels))
    return px, q


def walk_case(rows: int, levels: int, seed: int, timing: dict[str, Any]) -> BenchCase:
    px, q = make_books(1000, levels, seed)
    rng = np.random.default_rng(seed + 1)
    qty = rng.lognormal(np.log(5000.0), 1.0, rows)
    book_idx = np.arange(rows) % 1000
    side = np.ones(rows)
    px3, q3 = px[:, None, :].copy(), q[:, None, :].copy()
    t0 = time.perf_counter()
    walk_orders(side[:10], qty[:10], book_idx[:10], px3, q3)
    timing["jit_s"] = time.perf_counter() - t0
    sl = 20_000
    pl, ql = px.tolist(), q.tolist()
    t0 = time.perf_counter()
    python_walk(qty[:sl], book_idx[:sl], pl, ql)
    timing["python_extrapolated_s"] = (time.perf_counter() - t0) * rows / sl

    def check(a: Any, b: Any) -> None:
        np.testing.assert_allclose(a[0], b[0], rtol=1e-9)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-9)
        ref = python_walk(qty[:200], book_idx[:200], pl, ql)
        np.testing.assert_allclose(a[0][:200], ref, rtol=1e-9)

    return BenchCase("walk", lambda: walk_orders(side, qty, book_idx, px3, q3),
                     lambda: numpy_walk(qty, book_idx, px, q), check)  # fmt: skip


def engine_case(rows: int, levels: int, seed: int, timing: dict[str, Any]) -> BenchCase:
    k_len = 100
    t_len = rows // k_len + 1
    px, q = make_books(t_len, levels, seed)
    bid_px = (200.0 - px)[:, None, :].copy()  # mirror: bids below 100, asks above
    book = BookLevels(bid_px, q[:, None, :].copy(), px[:, None, :].copy(), q[:, None, :].copy())
    mid = 0.5 * (bid_px[:, 0, 0] + px[:, 0])
    w = np.where(np.arange(t_len) % 2 == 0, 1.0, -1.0)
    weights = np.repeat(w[:, None, None], k_len, axis=2)
    gross = np.linspace(0.1, 1.0, k_len)
    kw: dict[str, Any] = {"close": mid, "open": mid, "lag": 1, "init_cash": 1e6,
                          "max_gross": gross}  # fmt: skip
    walk = Slippage("book_walk", book=book, exhaustion=Exhaustion.CANCEL_REST)
    t0 = time.perf_counter()
    run_backtest(weights[:50, :, :2], **{**kw, "close": mid[:50], "open": mid[:50],
                 "max_gross": gross[:2]}, slippage=Slippage("book_walk", book=book.take(
                     slice(0, 50), slice(None))))  # fmt: skip
    timing["engine_jit_s"] = time.perf_counter() - t0
    rec = run_backtest(weights[:, :, :2], **{**kw, "max_gross": gross[:2]}, slippage=walk,
                       record_trades=True).trades  # fmt: skip
    t0 = time.perf_counter()
    base = run_backtest(weights, **kw, slippage_bps=1.0)
    timing["engine_fixed_bps_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = run_backtest(weights, **kw, slippage=walk)
    timing["engine_walk_s"] = time.perf_counter() - t0
    timing["engine_fills"] = int(np.sum(ours.n_fills))
    timing["engine_fixed_fills"] = int(np.sum(base.n_fills))
    # the numpy anchor walks the same (order, book) pairs: order sizes from a recorded run
    sizes = np.resize(np.abs(rec["qty"]) + np.abs(rec["unfilled_qty"]), timing["engine_fills"])
    rows_idx = np.resize(rec["row"], sizes.size)

    def check(a: Any, b: Any) -> None:
        buys = rec[rec["qty"] > 0]
        ask_avg, _ = numpy_walk(np.abs(buys["qty"]), buys["row"], px, q)
        np.testing.assert_allclose(buys["fill_px"], ask_avg, rtol=1e-9)

    return BenchCase("engine_walk", lambda: run_backtest(weights, **kw, slippage=walk),
                     lambda: numpy_walk(sizes, rows_idx, px, q), check)  # fmt: skip


def dict_replay(bid: np.ndarray, px: np.ndarray, qty: np.ndarray) -> tuple[dict, dict]:
    """The anchor: a Python dict per side, rows applied in order (no sequence checks)."""
    books: tuple[dict[float, float], dict[float, float]] = ({}, {})
    for b, p, x in zip(bid.tolist(), px.tolist(), qty.tolist(), strict=True):
        side = books[0] if b else books[1]
        if x > 0:
            side[p] = x
        else:
            side.pop(p, None)
    return books


def rebuild_cases(repeat: int, check: bool) -> list[dict[str, Any]]:
    """Rebuild each real recording: the snapshot and the diffs after it (u > lastUpdateId)."""
    from alphaforge.data.recordings import read_hftbacktest
    from alphaforge.engine.book import rebuild_books

    out = []
    for name, files in RECORDINGS.items():
        paths = [REAL / f for f in files if (REAL / f).is_file()]
        if not paths:
            continue
        depth = read_hftbacktest(paths).depth_updates
        ts = np.array([depth["local_ts"].cast("int64").to_numpy().max()])
        t0 = time.perf_counter()
        rb = rebuild_books(depth, ts, levels=20)  # JIT on the first recording (else cache)
        first = time.perf_counter() - t0
        secs, api = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            rb = rebuild_books(depth, ts, levels=20)
            api.append(time.perf_counter() - t0)
            secs.append(rb.stats[rb.symbols[0]]["seconds"])
        snap = depth["is_snapshot"].to_numpy(zero_copy_only=False)
        last = depth["last_update_id"].fill_null(-1).to_numpy()
        snap_id = int(last[snap][0])
        first_snap = int(np.flatnonzero(snap)[0])
        use = snap.copy()
        use[first_snap:] |= last[first_snap:] > snap_id  # after the snapshot line: u > L
        use[:first_snap] |= last[:first_snap] > snap_id  # buffered before it: u > L
        order = np.concatenate([np.flatnonzero(snap), np.flatnonzero(use & ~snap)])
        bid = depth["is_bid"].to_numpy(zero_copy_only=False)[order]
        px, qty = depth["price"].to_numpy()[order], depth["qty"].to_numpy()[order]
        t0 = time.perf_counter()
        bids, asks = dict_replay(bid, px, qty)
        t_dict = time.perf_counter() - t0
        if check:
            top_b = sorted(bids, reverse=True)[:20]
            top_a = sorted(asks)[:20]
            np.testing.assert_array_equal(rb.levels.bid_px[0, 0], top_b)
            np.testing.assert_array_equal(rb.levels.ask_px[0, 0], top_a)
            np.testing.assert_array_equal(rb.levels.ask_qty[0, 0], [asks[p] for p in top_a])
        n = depth.num_rows
        out.append({"recording": name, "rows": n, "kernel_s": min(secs), "api_s": min(api),
                    "first_call_s": first, "updates_per_s": n / min(secs),
                    "api_updates_per_s": n / min(api), "dict_replay_s": t_dict,
                    "dict_updates_per_s": order.size / t_dict})  # fmt: skip
    return out


def timed(fn: Callable[[], Any], repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="orders / fills")
    ap.add_argument("--cols", type=int, default=100, help="book levels per side")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="check parity before timing")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--no-rebuild", action="store_true", help="skip the real-recording case")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                       "numpy": np.__version__, "numba": numba.__version__,
                                       "cpus": os.cpu_count(),
                                       "numba_threads": numba.get_num_threads()},
                           "cases": {}}  # fmt: skip
    for make in (walk_case, engine_case):
        timing: dict[str, Any] = {}
        case = make(args.rows, args.cols, args.seed, timing)
        if args.check:
            case.check(case.ours(), case.anchor())
        t_ours = timed(case.ours, args.repeat, args.warmup)
        t_anchor = timed(case.anchor, args.repeat, args.warmup)
        out["cases"][case.name] = {"ours_s": t_ours, "numpy_s": t_anchor,
                                   "numpy_over_ours": t_anchor / t_ours, **timing}  # fmt: skip
        if not args.json:
            print(case.name, json.dumps(out["cases"][case.name]))
    if not args.no_rebuild:
        out["rebuild"] = rebuild_cases(args.repeat, args.check)
        if not args.json:
            for r in out["rebuild"]:
                print("rebuild", json.dumps(r))
    if args.json:
        print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
