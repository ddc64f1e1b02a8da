"""numpy's huge-page advice for the arrays allocated inside a block (``huge_pages()``).

Importing alphaforge turns numpy's ``madvise(MADV_HUGEPAGE)`` off for the process
(``alphaforge.array_memory``): for the arrays a command writes, frees and writes again, the
kernel's compaction at the first write of an advised array costs more than 2 MiB pages save.
A computation that keeps many GB of new results at once is the exception: there the 4 KiB
page faults cost more (the whole library in one shared plan on 100 x 100,000, after other
work: 35-37 s without the advice and 27-28 s with it in one session, within noise of each
other in another; ``benchmarks/README.md``, "Array memory"). Such a computation
allocates its results inside ``huge_pages()``; ``factors.expr.compile.BufferPool`` does so
once a plan run has taken ``HUGE_AFTER_BYTES`` of new memory.

A user's own ``NUMPY_MADVISE_HUGEPAGE`` (numpy's switch) wins: ``0`` keeps the advice off here
too, ``1`` had it on all along.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import numpy as np

HUGE_AFTER_BYTES: Final = 1 << 30
"""New memory a plan run takes in small pages before its further results get the advice."""


def advice_setter() -> Callable[[bool], Any] | None:
    """numpy's switch of the advice (``_set_madvise_hugepage``: sets it, returns the previous
    setting), None where numpy has none."""
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    fn = getattr(multiarray, "_set_madvise_hugepage", None)
    return fn if callable(fn) else None


_LOCK = threading.Lock()
_open = 0  # blocks inside huge_pages() now, in any thread
_before = False  # the setting when the first of them began


@contextmanager
def huge_pages() -> Iterator[bool]:
    """Arrays numpy allocates inside the block get the huge-page advice (numpy advises arrays
    of 4 MiB and more); the setting from before is restored when the last block open in any
    thread ends (numpy's switch is process-wide, so blocks that overlap in two threads must
    not restore each other's setting). Yields whether the advice is on inside (False where
    numpy has no switch or ``NUMPY_MADVISE_HUGEPAGE`` is ``0``)."""
    global _open, _before
    setter = advice_setter()
    user = os.environ.get("NUMPY_MADVISE_HUGEPAGE", "").strip()
    if setter is None or user == "0":
        yield False
        return
    with _LOCK:
        if _open == 0:
            _before = bool(setter(True))
        _open += 1
    try:
        yield True
    finally:
        with _LOCK:
            _open -= 1
            if _open == 0:
                setter(_before)
