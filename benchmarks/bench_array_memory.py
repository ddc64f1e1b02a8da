"""Array memory: numpy's and glibc's defaults against ``alphaforge.array_memory``'s settings.

    python benchmarks/bench_array_memory.py [--arrays 20] [--renew 40] [--mb 80] [--repeat 3]

Each run is a fresh process that imports alphaforge and then, timed:

- ``new``: writes ``--arrays`` new float64 arrays of ``--mb`` MB each, all kept alive (a
  shared plan's results: every one is new memory);
- ``renewed``: ``--renew`` times, computes ``x * 2`` of one ``--mb`` MB array into a new result
  and frees it (one factor at a time: the memory of the last result serves the next).

Three settings, alternating within each repeat: ``system`` (``ALPHAFORGE_ARRAY_MEMORY=system``:
numpy's huge-page advice and glibc's thresholds as they come), ``no_advice`` (the same with
``NUMPY_MADVISE_HUGEPAGE=0``) and ``alphaforge`` (the settings importing alphaforge applies).
Reports seconds per run, the medians, and the load average before and after each run.
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
import sys, time
import numpy as np
import alphaforge  # applies (or, with ALPHAFORGE_ARRAY_MEMORY=system, skips) the settings
n, renew, cells = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
x = np.ones(cells)
t0 = time.perf_counter()
for _ in range(renew):
    y = x * 2.0
    del y
renewed = time.perf_counter() - t0
keep = []
t0 = time.perf_counter()
for _ in range(n):
    a = np.empty(cells)
    a[:] = 1.0
    keep.append(a)
print(time.perf_counter() - t0, renewed)
"""

SETTINGS = {
    "system": {"ALPHAFORGE_ARRAY_MEMORY": "system"},
    "no_advice": {"ALPHAFORGE_ARRAY_MEMORY": "system", "NUMPY_MADVISE_HUGEPAGE": "0"},
    "alphaforge": {},
}


def _run(setting: str, arrays: int, renew: int, mb: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALPHAFORGE_ARRAY_MEMORY", "NUMPY_MADVISE_HUGEPAGE", "GLIBC_TUNABLES")
           and not k.startswith("MALLOC_")}  # fmt: skip
    env.update(SETTINGS[setting])
    cells = mb * 1_000_000 // 8
    cmd = [sys.executable, "-c", _CHILD, str(arrays), str(renew), str(cells)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arrays", type=int, default=20)
    ap.add_argument("--renew", type=int, default=40)
    ap.add_argument("--mb", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in SETTINGS}
    load = [round(os.getloadavg()[0], 2)]
    for _ in range(args.repeat):
        for setting in SETTINGS:
            runs[setting].append(_run(setting, args.arrays, args.renew, args.mb))
            load.append(round(os.getloadavg()[0], 2))
    res: dict[str, Any] = {"arrays": args.arrays, "renew": args.renew, "mb": args.mb,
                           "load": load}  # fmt: skip
    for setting, rs in runs.items():
        new, renewed = [r[0] for r in rs], [r[1] for r in rs]
        res[setting] = {"new_s": new, "renewed_s": renewed,
                        "new_median_s": statistics.median(new),
                        "renewed_median_s": statistics.median(renewed)}  # fmt: skip
    if args.json:
        print(json.dumps(res))
        return res
    for setting in SETTINGS:
        r = res[setting]
        new = ", ".join(f"{v:.2f}" for v in r["new_s"])
        renewed = ", ".join(f"{v:.2f}" for v in r["renewed_s"])
        print(f"{setting:10s} new {args.arrays} x {args.mb} MB: [{new}] s   "
              f"renewed {args.renew} x: [{renewed}] s")  # fmt: skip
    print(f"load: {load}")
    return res


if __name__ == "__main__":
    main()
