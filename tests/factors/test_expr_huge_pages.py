"""A plan run's new arrays get numpy's huge-page advice once it has taken 1 GiB of new memory
(``compile.BufferPool``, ``engine.huge_pages``), and a user's ``NUMPY_MADVISE_HUGEPAGE=0`` wins.

Read from the kernel's own record: ``madvise(MADV_HUGEPAGE)`` marks the advised memory ``hg``
in ``/proc/self/smaps``. Runs in fresh processes, where importing alphaforge has turned
numpy's process-wide advice off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alphaforge.engine.huge_pages import advice_setter

_PROBE = r"""
import json
import numpy as np
import alphaforge  # turns numpy's advice off for the process
from alphaforge.factors.expr.compile import BufferPool
from alphaforge.engine.huge_pages import advice_setter


def advised(a):
    addr = a.ctypes.data + a.nbytes // 2  # numpy advises from the first whole page on
    span = None
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            span = lo <= addr < hi
        elif head == "VmFlags:" and span:
            return "hg" in line.split()[1:]
    raise AssertionError("array not found in smaps")


shape = (8192, 1024)  # 64 MiB: 16 of them fill the first GiB
pool = BufferPool(shape)
first = [pool.alloc(shape) for _ in range(16)]
later = [pool.alloc(shape) for _ in range(2)]
pool.give(first[0])
reused = pool.alloc(shape)
outside = np.empty(shape)  # after the pool's block: the process setting again
print(json.dumps({"first": [advised(a) for a in first], "later": [advised(a) for a in later],
                  "reused_is_first": reused is first[0], "outside": advised(outside),
                  "process_advice": bool(advice_setter()(False)), "new_bytes": pool.new_bytes}))
"""


def _probe(**env_set: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    env.update(env_set)
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.skipif(
    not Path("/proc/self/smaps").exists()
    or not Path("/sys/kernel/mm/transparent_hugepage/enabled").exists()
    or advice_setter() is None,
    reason="needs Linux with transparent huge pages and numpy's huge-page switch",
)
def test_plan_buffers_get_the_advice_after_the_first_gib() -> None:
    got = _probe()
    assert got["first"] == [False] * 16  # the first GiB in small pages, as the process has it
    assert got["later"] == [True, True]  # then the advice
    assert got["reused_is_first"] is True  # a freed buffer is handed out again, not new memory
    assert got["outside"] is False  # the setting is restored after the pool's block
    assert got["process_advice"] is False
    assert got["new_bytes"] == 18 * 64 << 20
    user_off = _probe(NUMPY_MADVISE_HUGEPAGE="0")
    assert user_off["later"] == [False, False]  # the user's choice wins


@pytest.mark.skipif(advice_setter() is None, reason="no numpy huge-page switch")
def test_overlapping_blocks_in_two_threads_restore_the_setting_from_before() -> None:
    import threading

    from alphaforge.engine.huge_pages import huge_pages

    setter = advice_setter()
    assert setter is not None
    before = setter(False)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:  # enters first, leaves while b is still inside
        with huge_pages():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b() -> None:
        a_in.wait(10)
        with huge_pages():
            b_in.set()
            a_out.wait(10)
            inside.append(setter(True))  # still on after a left (reads it, sets it back on)

    inside: list[bool] = []
    try:
        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert inside == [True]
        assert setter(False) is False  # off again once both have left
    finally:
        setter(before)
