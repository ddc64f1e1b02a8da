"""Cold start: `alphaforge demo` in fresh processes on an empty numba cache, with and without the
warm-up helper (alphaforge.warmup), then warm; wall and CPU seconds with the load average.

    python benchmarks/bench_cold_start.py [--repeat 1]

Each cold run gets its own empty ``NUMBA_CACHE_DIR``; the warm run reuses the last cold run's
cache. The "no helper" run (``ALPHAFORGE_NO_WARMUP=1``) is the baseline of the same code. A
second warm run keeps numpy's huge-page advice (``NUMPY_MADVISE_HUGEPAGE=1``), which importing
alphaforge otherwise turns off (``alphaforge.array_memory``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cache: Path, out: Path, no_helper: bool, advice: str | None = None) -> tuple[float, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("NUMPY_MADVISE_HUGEPAGE", None)
    if advice is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = advice
    if no_helper:
        env["ALPHAFORGE_NO_WARMUP"] = "1"
    else:
        env.pop("ALPHAFORGE_NO_WARMUP", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from alphaforge.cli import main; main()", "demo",
                    "--out", str(out)], env=env, check=True, capture_output=True)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for k in range(args.repeat):
            for label, no_helper in (("cold, no helper (baseline)", True), ("cold, helper", False)):
                cache = base / f"cache-{label[:10].replace(' ', '')}-{k}"
                wall, cpu = _run(cache, base / "out", no_helper)
                print(f"{label:28s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                      f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
            for label, advice in (("warm", None), ("warm, numpy's huge pages", "1")):
                wall, cpu = _run(cache, base / "out", False, advice)
                print(f"{label:28s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                      f"load {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
