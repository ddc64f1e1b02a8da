"""Where large arrays get their memory: reused inside the process, in small pages.

A factor evaluation, a ranking or a backtest writes many (T, N) arrays of tens of MB, most of
them freed soon after. By default two things make every one of those writes pay for memory
again:

- **glibc** serves every block above its mmap threshold (at most 32 MB, adjusted on the fly)
  with a fresh ``mmap`` and gives it back with ``munmap`` when it is freed, so the next array
  of the same size faults its pages in again;
- **numpy** advises the kernel (``madvise(MADV_HUGEPAGE)``) to back every large array with
  2 MiB pages. Where the kernel's huge-page defragmentation mode is ``madvise`` (the usual
  default) the first write to a new array then waits while the kernel compacts memory into
  free 2 MiB blocks; on virtual machines whose free memory goes back to the host (balloon or
  free page reporting, as on this project's 2-core Firecracker guest) that wait is long.

Measured on that machine (``benchmarks/README.md``, "Array memory"): twenty new 80 MB arrays
took 8-12 s with numpy's advice (0.4 s once, when freed huge pages happened to be at hand)
and 0.85-1.2 s without it; forty freed-and-renewed 80 MB results took 0.5-1.5 s with numpy's
defaults, 2.3-2.8 s without the advice, and 0.37-0.45 s without it and with the freed blocks
kept in the process.

So importing alphaforge (``configure``):

1. turns numpy's huge-page advice off, unless ``NUMPY_MADVISE_HUGEPAGE`` (numpy's own switch,
   ``1`` keeps the advice) is set;
2. on glibc, raises the mmap threshold and the heap's trim threshold to ``KEEP_BYTES`` (1 GiB),
   so freed blocks below 1 GiB stay in the process and serve the next arrays without new page
   faults, unless ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``
   (glibc's own switches) are set.

The price of 2: a process keeps the memory it has used for arrays (up to its peak use, plus
1 GiB of free heap top) until it exits, instead of returning it when they are freed. A command
ends soon; a long notebook session can give the free part back with ``release()``.
``ALPHAFORGE_ARRAY_MEMORY=system`` leaves both settings as numpy and glibc have them. A
computation that keeps many GB of new results at once (the whole library in one shared plan
after other work: 27-28 s with the advice, 35-37 s without) does better with the advice:
an expression plan that has taken 1 GiB of new memory allocates its further results under
it (``alphaforge.engine.huge_pages``); ``NUMPY_MADVISE_HUGEPAGE=1`` turns it on everywhere.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from typing import Any, Final

from alphaforge.engine.huge_pages import advice_setter

KEEP_BYTES: Final = 1 << 30
"""glibc's mmap and trim thresholds after ``configure``: blocks below this come from the heap,
and up to this much free memory at the heap's top stays in the process."""

_M_TRIM_THRESHOLD: Final = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD: Final = -3
_GLIBC_SWITCHES: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _glibc() -> Any | None:
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``).

    Looked up among the symbols already loaded (``CDLL(None)``), not by
    ``ctypes.util.find_library``, which runs ``ldconfig`` in a subprocess at every import."""
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # no handle to the running process (Windows)
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def configure(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Apply the module docstring's two settings where the user has not chosen.

    Returns:
        What this call changed: ``numpy_advice`` (the advice in force before, when turned
        off) and ``glibc_keep_bytes`` (when the thresholds were raised).
    """
    env = os.environ if environ is None else environ
    changed: dict[str, Any] = {}
    if env.get("ALPHAFORGE_ARRAY_MEMORY", "").strip().lower() == "system":
        return changed
    setter = advice_setter()
    if setter is not None and not env.get("NUMPY_MADVISE_HUGEPAGE", "").strip():
        changed["numpy_advice"] = bool(setter(False))
    libc = _glibc()
    if libc is not None and not any(env.get(k, "").strip() for k in _GLIBC_SWITCHES):
        kept = libc.mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES) == 1
        kept = libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES) == 1 and kept
        if kept:
            changed["glibc_keep_bytes"] = KEEP_BYTES
    return changed


def release() -> bool:
    """Give the heap's free memory back to the system (glibc ``malloc_trim``); True when some
    was returned. For a long session after a large computation; never needed by a command."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
