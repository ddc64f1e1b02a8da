"""Importing alphaforge turns numpy's huge-page advice off and keeps freed array blocks in the
process (glibc), unless the user chose otherwise (``alphaforge.array_memory``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from alphaforge import array_memory
from alphaforge.engine.huge_pages import advice_setter

# Runs in a fresh process: numpy's advice after importing alphaforge, and how many blocks glibc
# serves by mmap (mallinfo2's hblks) before and after allocating one 80 MB array.
_PROBE = """
import ctypes, json
import numpy as np
import alphaforge
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
before = libc.mallinfo2().hblks
a = np.ones(10_000_000)
mapped = libc.mallinfo2().hblks - before
print(json.dumps({"advice": np._core.multiarray._set_madvise_hugepage(False), "mapped": mapped}))
"""

_GLIBC = array_memory._glibc()


def _clean_env(**env_set: str) -> dict[str, str]:
    """This process's environment without any user choice of numpy's or glibc's settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMPY_MADVISE_HUGEPAGE", "ALPHAFORGE_ARRAY_MEMORY", "GLIBC_TUNABLES")
           and not k.startswith("MALLOC_")}  # fmt: skip
    return {**env, **env_set}


def _probe(**env_set: str) -> dict[str, object]:
    env = _clean_env(**env_set)
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, check=True, timeout=300)  # fmt: skip
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.skipif(
    _GLIBC is None or not hasattr(_GLIBC, "mallinfo2") or advice_setter() is None,
    reason="needs glibc >= 2.33 (mallinfo2) and numpy's huge-page switch",
)
def test_import_configures_array_memory_unless_the_user_chose() -> None:
    assert _probe() == {"advice": False, "mapped": 0}  # no advice; the block comes from the heap
    assert _probe(ALPHAFORGE_ARRAY_MEMORY="system") == {"advice": True, "mapped": 1}
    assert _probe(NUMPY_MADVISE_HUGEPAGE="1") == {"advice": True, "mapped": 0}
    assert _probe(MALLOC_MMAP_THRESHOLD_="131072") == {"advice": False, "mapped": 1}


@pytest.mark.skipif(advice_setter() is None, reason="no numpy huge-page switch")
def test_configure_reports_what_it_changed() -> None:
    fn = advice_setter()
    assert fn is not None
    before = fn(True)
    try:
        changed = array_memory.configure({})
        assert changed["numpy_advice"] is True  # it was on, the call turned it off
        assert fn(False) is False
        if _GLIBC is not None:
            assert changed["glibc_keep_bytes"] == array_memory.KEEP_BYTES
        assert array_memory.configure({"ALPHAFORGE_ARRAY_MEMORY": "system"}) == {}
        fn(True)
        kept = array_memory.configure({"NUMPY_MADVISE_HUGEPAGE": "1", "GLIBC_TUNABLES": "x"})
        assert kept == {}
        assert fn(False) is True
    finally:
        fn(before)


_RELEASE_PROBE = """
import json
import numpy as np
from alphaforge import array_memory
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024
a = np.ones(20_000_000)  # 160 MB, from the heap
with_array = rss_mb()
del a
kept = rss_mb()
released = array_memory.release()
print(json.dumps({"with_array": with_array, "kept": kept, "released": released,
                  "after": rss_mb()}))
"""


@pytest.mark.skipif(_GLIBC is None or not os.path.exists("/proc/self/status"),
                    reason="needs glibc and /proc")  # fmt: skip
def test_freed_blocks_stay_until_release() -> None:
    done = subprocess.run([sys.executable, "-c", _RELEASE_PROBE], env=_clean_env(),
                          capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["kept"] > r["with_array"] - 20  # the freed 160 MB stays for the next arrays
    assert r["released"] is True
    assert r["after"] < r["kept"] - 140  # release() gave it back
