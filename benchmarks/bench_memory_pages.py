"""New-array cost with and without numpy's huge-page advice (``alphaforge.huge_pages``).

    python benchmarks/bench_memory_pages.py [--arrays 20] [--mb 80] [--repeat 3]

Each run is a fresh process that writes ``--arrays`` new float64 arrays of ``--mb`` MB each
(kept alive, so every one is new memory) with ``NUMPY_MADVISE_HUGEPAGE`` set to 1 (numpy's
default advice) or 0 (what importing alphaforge selects); the two settings alternate. Reports
seconds and system seconds per run, ms per MB and the ratio of the medians, with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

_CHILD = """
import resource, sys, time
import numpy as np
n, cells = int(sys.argv[1]), int(sys.argv[2])
keep = []
t0 = time.perf_counter()
for _ in range(n):
    a = np.empty(cells)
    a[:] = 1.0
    keep.append(a)
wall = time.perf_counter() - t0
print(wall, resource.getrusage(resource.RUSAGE_SELF).ru_stime)
"""


def _run(advice: str, arrays: int, mb: int) -> tuple[float, float]:
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": advice}
    cells = mb * 1_000_000 // 8
    out = subprocess.run([sys.executable, "-c", _CHILD, str(arrays), str(cells)], env=env,
                         check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arrays", type=int, default=20)
    ap.add_argument("--mb", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    runs: dict[str, list[tuple[float, float]]] = {"1": [], "0": []}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for advice in ("1", "0"):
            runs[advice].append(_run(advice, args.arrays, args.mb))
            load.append(os.getloadavg()[0])
    total_mb = args.arrays * args.mb
    res: dict[str, Any] = {"arrays": args.arrays, "mb": args.mb, "load": load}
    for advice, label in (("1", "advice"), ("0", "no_advice")):
        walls = [w for w, _ in runs[advice]]
        res[label] = {"wall_s": walls, "sys_s": [s for _, s in runs[advice]],
                      "median_ms_per_mb": statistics.median(walls) / total_mb * 1e3}  # fmt: skip
    res["ratio_median"] = statistics.median(res["advice"]["wall_s"]) / statistics.median(
        res["no_advice"]["wall_s"]
    )
    if args.json:
        print(json.dumps(res))
    else:
        for label in ("advice", "no_advice"):
            r = res[label]
            walls = ", ".join(f"{w:.2f}" for w in r["wall_s"])
            syss = ", ".join(f"{s:.2f}" for s in r["sys_s"])
            print(f"{label:10s} wall [{walls}] s, sys [{syss}] s, "
                  f"median {r['median_ms_per_mb']:.2f} ms/MB")  # fmt: skip
        print(f"advice / no advice (medians): {res['ratio_median']:.1f}x; load {load}")
    return res


if __name__ == "__main__":
    main()
