"""Compile, in a second process, the kernels a long command will need later.

Numba compiles on first call, in the calling thread, one kernel after another: a cold
``alphaforge demo`` spends most of its first minute compiling while the machine's other cores
sit idle. ``start(plan)`` spawns a helper process that runs a tiny version of the later steps of
``plan`` (same dtypes and array layouts, so the same kernel signatures) and lets numba write
them to the shared on-disk cache (``alphaforge.numba_cache``: parent and helper resolve the same
folder). When the main process reaches those steps, numba loads the kernels from the cache
instead of compiling them; if it gets there first it compiles them itself, so the helper can only
save time, never change a result.

The helper is skipped when the cache already looks warm (``WARM_INDEX_FILES`` index files),
when only one CPU is available, or with ``ALPHAFORGE_NO_WARMUP=1``; it is a daemon process, so it
never outlives the command.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Final

WARM_INDEX_FILES: Final = 40
"""Cache index files (``*.nbi``) from which the cache counts as warm."""


def _cache_is_warm() -> bool:
    cache = os.environ.get("NUMBA_CACHE_DIR")  # set by alphaforge.numba_cache at import
    if not cache or not Path(cache).is_dir():
        return False
    return sum(1 for _ in Path(cache).rglob("*.nbi")) >= WARM_INDEX_FILES


def start(plan: str) -> BaseProcess | None:
    """Spawn the helper for ``plan`` ("demo"); None when it is not worth it (module docstring)."""
    if os.environ.get("ALPHAFORGE_NO_WARMUP") == "1" or (os.cpu_count() or 1) < 2:
        return None
    if _cache_is_warm():
        return None
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_run, args=(plan,), daemon=True, name=f"alphaforge-warmup-{plan}")
    proc.start()
    return proc


def _run(plan: str) -> None:
    """The helper's body: a tiny run of the steps ``plan`` reaches last (errors are ignored: the
    main process compiles whatever the helper did not)."""
    try:
        if plan == "demo":
            _demo_tail()
    except Exception:
        return


def _demo_tail() -> None:
    """The demo's later steps on a tiny demo market: book-walk backtests, the holdout score,
    the lookahead check of a callable, paper-live fills and the gap."""
    import numpy as np

    from alphaforge.backtests import run_factor_backtest
    from alphaforge.engine.gap import Quotes, analyze_gap
    from alphaforge.engine.paper_live import LatencyModel, simulate_fills
    from alphaforge.factors.lookahead import check_lookahead
    from alphaforge.factors.score import score_factor
    from alphaforge.orders_io import orders_table
    from alphaforge.panels import demo_panel

    panel = demo_panel(n_symbols=4, weeks=1).panel
    test = panel.take_rows(slice(panel.T // 2, None))
    run = run_factor_backtest(test, "taker_imbalance_20", rebalance_every=12,
                              init_cash=100_000.0, slippage="book_walk")  # fmt: skip
    score_factor("taker_imbalance_20", panel, horizons=(12,), split=0.5, test=True,
                 rebalance_every=12)  # fmt: skip
    check_lookahead(lambda p: np.asarray(p["close"]) * 1.0, panel)
    assert test.book is not None
    orders = orders_table(run, test)
    fills = simulate_fills(orders, test.ts_us, test.symbols, test.book, fee_bps=5.0,
                           latency=LatencyModel(1_000_000, 20_000_000, 7))  # fmt: skip
    b0, a0 = test.book.bid_px[:, :, 0], test.book.ask_px[:, :, 0]
    quotes = Quotes(np.repeat(test.ts_us, test.N), np.tile(np.asarray(test.symbols), test.T),
                    b0.ravel(), a0.ravel())  # fmt: skip
    analyze_gap(orders, fills, quotes=quotes, window_us=600_000_000)
