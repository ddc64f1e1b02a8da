"""The threads that run ranges of the ``nogil`` kernels (expressions, weights, scoring).

Those kernels are numba functions that fill a range of rows, column blocks or cells of an
output allocated by their Python caller. Run on a small thread pool, they use every core as
numba's ``parallel=True`` did, but each compiles as a plain function: the parallel versions
cost 1.5-5 s more compile time apiece on a first run (measured: ``ts_window`` 7.0 s -> 4.7 s).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba

PARALLEL_MIN_CELLS = 200_000
"""Outputs with fewer cells are computed on the calling thread (a hand-off costs more)."""

_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The shared threads (created once, on first use; ``NUMBA_NUM_THREADS`` of them)."""
    with _POOL_LOCK:
        if not _POOL:
            n = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
            _POOL.append(ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="af-pool"))
        return _POOL[0]


def run_ranges(fn: Callable[[int, int], None], n_items: int, n_cells: int,
               align: int = 1) -> None:  # fmt: skip
    """Call ``fn(lo, hi)`` over ``[0, n_items)``: in one call below ``PARALLEL_MIN_CELLS``
    cells or with one thread (``numba.get_num_threads()``), else one contiguous range per
    thread (range bounds multiples of ``align`` items), on the shared pool.

    The ranges write disjoint parts of the output, so the result does not depend on the split.
    """
    threads = numba.get_num_threads() if n_cells >= PARALLEL_MIN_CELLS else 1
    step = -(-n_items // max(1, threads))
    step = max(align, -(-step // align) * align)
    ranges = [(lo, min(n_items, lo + step)) for lo in range(0, n_items, step)]
    if len(ranges) <= 1:
        fn(0, n_items)
        return
    for f in [pool().submit(fn, lo, hi) for lo, hi in ranges]:
        f.result()
