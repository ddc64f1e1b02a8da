"""Whether numpy asks the kernel for transparent huge pages for its large arrays.

numpy advises the kernel (``madvise(MADV_HUGEPAGE)``) to back every large array with 2 MiB
pages. Where the kernel's huge-page defragmentation mode is ``madvise`` (the common default),
that advice makes the first write to a new array wait while the kernel compacts memory into
free 2 MiB blocks. On virtual machines whose free memory goes back to the host (balloon or free
page reporting, as on this project's 2-core Firecracker guest) the wait is long: writing twenty
new 80 MB arrays took 7-12 s with the advice and 0.9-1.3 s without it, and ``alphaforge demo``
(peak 670 MB, most of it new arrays) ran 2-3 s faster without it (``benchmarks/README.md``).
A machine with plenty of unfragmented memory loses little without the advice: the kernel
then maps 4 KiB pages, as it does for every allocation numpy does not advise.

So importing alphaforge turns numpy's advice off, unless the user decided already: a set
``NUMPY_MADVISE_HUGEPAGE`` (numpy's own switch, read when numpy is imported; ``1`` keeps the
advice, ``0`` drops it) is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def _setter() -> Callable[[bool], Any] | None:
    """numpy's switch of the advice (``_set_madvise_hugepage``), None where numpy has none."""
    core = getattr(np, "_core", None)
    multiarray = getattr(core, "multiarray", None)
    fn = getattr(multiarray, "_set_madvise_hugepage", None)
    return fn if callable(fn) else None


def configure(environ: Mapping[str, str] | None = None) -> bool | None:
    """Turn numpy's huge-page advice off unless ``NUMPY_MADVISE_HUGEPAGE`` is set.

    Returns:
        The advice in force before the call when this call changed it, None when it left the
        setting alone (the variable is set, or this numpy has no switch).
    """
    env = os.environ if environ is None else environ
    if env.get("NUMPY_MADVISE_HUGEPAGE", "").strip():
        return None
    fn = _setter()
    if fn is None:
        return None
    return bool(fn(False))
