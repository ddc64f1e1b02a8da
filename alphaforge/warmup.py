"""Compile, in a second process, the kernels a long command will need later.

Numba compiles on first call, in the calling thread, one kernel after another: a cold
``alphaforge demo`` spends most of its first minute compiling while the machine's other cores
sit idle. ``start(plan)`` spawns a helper process that runs a tiny version of ``plan``'s steps
(same dtypes and array layouts, so the same kernel signatures), in an order that meets the main
process in the middle (``_demo_tail``), and lets numba write them to the shared on-disk cache
(``alphaforge.numba_cache``: parent and helper resolve the same folder). When the main process
reaches those steps, numba loads the kernels from the cache instead of compiling them; if it
gets there first it compiles them itself, so the helper can only save time, never change a
result.

The helper is skipped when the cache already looks warm (``WARM_INDEX_FILES`` index files),
when only one CPU is available, or with ``ALPHAFORGE_NO_WARMUP=1``; it is a daemon process, so it
never outlives the command.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from alphaforge.engine.panel import Panel

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
    """The demo's kernels on a tiny demo market (4 symbols x 2 weeks), in the order that
    splits the compile work between the two processes:

    1. the ranking's per-factor kernels (forward returns, row ranks, RankIC rows, rank weights,
       the backtest loop), which the main process needs once it has validated the data and
       evaluated its first batch of factors;
    2. ``_late_kernels``: the expression kernels the first batch reaches last, then the test
       split's scoring kernels, called on ready-made arrays, so the helper does not compile
       the expression kernels the main process is compiling at that moment;
    3. the remaining steps last to first: the test split's look, the leak check, the bounce,
       the proposals, the library's expression batches last to first, the whole ranking.

    The main process runs forwards, so the two processes compile from opposite ends and meet
    in the middle: only the kernels at the meeting point are compiled twice (numba has no
    lock between processes; each compiles what it does not find in the cache).
    """
    import tempfile

    import numpy as np

    from alphaforge.demo import HOURLY, TRAIN_SHARE, _bounce, _leak, _offline_proposals
    from alphaforge.demo import _test_split as _holdout_look
    from alphaforge.engine.defaults import Execution
    from alphaforge.engine.tradable import universe_values
    from alphaforge.factors.expr.compile import evaluate_many
    from alphaforge.factors.propose_score import rank_rows
    from alphaforge.factors.rank_library import BATCH, _one, library_candidates, rank_library
    from alphaforge.factors.registry import Registry
    from alphaforge.factors.returns import forward_returns
    from alphaforge.panels import demo_panel

    panel = demo_panel(n_symbols=4, weeks=2).panel
    cut = int(panel.T * TRAIN_SHARE)
    train, test = panel.take_rows(slice(0, cut)), panel.take_rows(slice(cut, None))
    hourly = Execution(rebalance_every=HOURLY)
    fwd_r = rank_rows(forward_returns(train, (HOURLY,), hourly.lag)[0])
    values = universe_values(np.ascontiguousarray(train["close"], dtype=np.float64), train)
    _one("mom_20", "close", values, train, fwd_r, HOURLY, hourly)
    _late_kernels(panel, cut)
    with tempfile.TemporaryDirectory(prefix="alphaforge-warmup-") as tmp:
        ledger = Path(tmp) / "ledger.sqlite"
        registry = Registry(ledger)
        _holdout_look(panel, cut, test, "taker_imbalance_20", registry)
        _leak(train)
        _bounce(train, registry)
        _offline_proposals(train, ledger, 7, lambda _m: None)
        todo, _ = library_candidates(train)
        names = list(todo)
        for start in reversed(range(0, len(names), BATCH)):
            evaluate_many([todo[n] for n in names[start : start + BATCH]], train)
        rank_library(train, horizon=HOURLY, execution=hourly)


def _late_kernels(panel: Panel, cut: int) -> None:
    """The first library batch's last expression kernels (measured order of first use in the
    main process: ts_shift, fused, cross_section, ts_window, arith, ts_pair, binary, ts_ewm;
    here from the end, ts_window excluded), then the test split's scoring kernels through
    ``score_factor`` on an array (no expression evaluated)."""
    import numpy as np

    from alphaforge.demo import HOURLY
    from alphaforge.factors.expr import kernels, ops_nb, ts_nb
    from alphaforge.factors.score import score_factor

    x = np.ascontiguousarray(panel["close"], dtype=np.float64)
    y = np.ascontiguousarray(panel["volume"], dtype=np.float64)
    kernels.ts_ewm(x, 12)
    kernels.binary(x, y, ops_nb.MAX)
    kernels.ts_pair(x, y, 10, ts_nb.CORR)
    kernels.arith(x, y, ops_nb.DIV)
    score_factor(-x, panel, horizons=(HOURLY,), split=int(panel.ts_us[cut]), test=True,
                 rebalance_every=HOURLY)  # fmt: skip


def window_families() -> None:
    """Compile every family of window kernel in this process (``ts_nb.window_kernel``), on a
    tiny array.

    The demo's main process calls this before it ranks the library when the helper runs: the
    families are separate kernels so that a command compiles only the ones it uses, but the
    demo's ranking reaches all of them, and compiling them one batch after another brought the
    main process to its first factor's scoring kernels (rank rows, RankIC, rank weights, the
    backtest loop) about 6 s earlier, before the helper had finished them, so both processes
    compiled the backtest loop. Compiled up front, they keep the main process busy while the
    helper finishes (the balance of ``_demo_tail``'s docstring).
    """
    import numpy as np

    from alphaforge.factors.expr import kernels, ts_nb

    x = np.linspace(1.0, 2.0, 64).reshape(16, 4)
    one_per_family = {ts_nb.window_kernel(c, 5): c for c in ts_nb.WINDOW_CODES}
    for code in one_per_family.values():
        kernels.ts_window(x, 5, code)
