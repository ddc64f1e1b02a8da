"""Shared helpers of the benchmark scripts: cases, timing, machine description, tables.

Timing reports the best wall time over ``repeat`` runs after ``warmup`` runs, and the best
process CPU time (user + system, all threads) over the same runs: on the shared 2-core
development machine other jobs inflate wall times several-fold, while CPU time mostly does not.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One comparison: our implementation against an anchor, measured in the same run.

    Attributes:
        name: case name, e.g. "W1 vs vectorbt".
        ours: zero-argument callable running our implementation, returning its output.
        anchor: zero-argument callable running the anchor (reference tool), same output form.
        check: ``check(ours_out, anchor_out)`` raises AssertionError on a parity failure.
    """

    name: str
    ours: Callable[[], Any]
    anchor: Callable[[], Any]
    check: Callable[[Any, Any], None]


@dataclass(frozen=True, slots=True)
class Timing:
    """Best-of-``repeat`` wall time and best-of-``repeat`` CPU time (all threads), seconds."""

    wall_s: float
    cpu_s: float


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads, seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fn: Callable[[], Any], repeat: int, warmup: int) -> Timing:
    """Run ``fn`` warmup times untimed, then ``repeat`` times; the minimum wall and CPU times."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(max(repeat, 1)):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    return Timing(min(walls), min(cpus))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(*packages: str) -> dict[str, Any]:
    """nproc, CPU model, load average, Python and package versions."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "loadavg_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{p: _version(p) for p in ("numpy", *packages)},
    }


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub markdown table of ``rows`` (dicts) in ``columns`` order; floats to 4 s.f."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def best_of(fn: Callable[[], Any], repeat: int, warmup: int) -> tuple[float, float]:
    """(best wall time, best process CPU time) in seconds; CPU time is the steadier figure on
    a shared machine (it includes system time, e.g. page faults)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)
