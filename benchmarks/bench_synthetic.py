"""Synthetic-market benchmark: ``data.synthetic.generate_market`` at scale.

Cases (each a ``BenchCase``; anchors measured in the same run):

- ``garch``: the blocked GARCH(1,1) variance recursion of ``data.synthetic_bars.garch`` on
  (cols + 1, rows) innovations vs the textbook per-bar numpy recursion (anchor), parity-checked
  (rtol 1e-9) before timing;
- ``klines``: the whole ``generate_market(n_symbols=cols, n_bars=rows, book_levels=0)`` (klines,
  planted signal, funding) vs the floor of drawing its random numbers alone with numpy (anchor:
  one Student-t, two exponential and two normal draws per cell); parity = same row count;
- ``books``: ``generate_market`` with 20-level book snapshots every bar on a tenth of the bars vs
  the same call without books (anchor), reported per book value written.

No numba here, so there is no JIT time to report. Run:
``python benchmarks/bench_synthetic.py --rows 100000 --cols 100 --repeat 3 --check``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.data import synthetic_bars  # noqa: E402
from alphaforge.data.synthetic import generate_market  # noqa: E402
from benchmarks.common import best_of  # noqa: E402


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One timed comparison: ours vs an anchor, with a parity check run first."""

    name: str
    ours: Callable[[], Any]
    anchor: Callable[[], Any]
    check: Callable[[Any, Any], None]
    cells: int  # units of work, for ns per unit


def garch_per_bar(z: np.ndarray) -> np.ndarray:
    """Textbook GARCH(1,1) recursion, one numpy step per bar (the anchor)."""
    a, b = synthetic_bars.GARCH_A, synthetic_bars.GARCH_B
    h = np.empty_like(z)
    h[:, 0] = 1.0
    for t in range(1, z.shape[1]):
        h[:, t] = (1 - a - b) + (a * z[:, t - 1] ** 2 + b) * h[:, t - 1]
    return h


def rng_floor(rows: int, cols: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    n = rows * cols
    rng.standard_t(synthetic_bars.T_DOF, n)
    rng.standard_exponential(2 * n)
    rng.standard_normal(2 * n)
    return n


def _parity_garch(ours: np.ndarray, anchor: np.ndarray) -> None:
    np.testing.assert_allclose(ours, anchor, rtol=1e-9)


def cases(rows: int, cols: int, seed: int) -> list[BenchCase]:
    z = synthetic_bars.student_t(np.random.default_rng(seed), (cols + 1, rows))
    book_rows = max(rows // 10, 2)

    def same_rows(a: Any, b: Any) -> None:
        assert a.klines.num_rows == rows * cols == b, (a.klines.num_rows, b)

    def books_ok(a: Any, b: Any) -> None:
        assert a.books.num_rows == book_rows * cols
        assert a.klines.equals(b.klines)  # books never change the klines

    return [
        BenchCase("garch", lambda: synthetic_bars.garch(z), lambda: garch_per_bar(z),
                  _parity_garch, z.size),
        BenchCase("klines", lambda: generate_market(cols, rows, seed=seed, book_levels=0),
                  lambda: rng_floor(rows, cols, seed), same_rows, rows * cols),
        BenchCase("books",
                  lambda: generate_market(cols, book_rows, seed=seed, book_levels=20),
                  lambda: generate_market(cols, book_rows, seed=seed, book_levels=0),
                  books_ok, book_rows * cols * 20 * 4),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="bars per symbol")
    ap.add_argument("--cols", type=int, default=100, help="symbols")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="check parity before timing")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1m": os.getloadavg()[0]},
        "rows": args.rows, "cols": args.cols, "cases": {},
    }  # fmt: skip
    for case in cases(args.rows, args.cols, args.seed):
        if args.check:
            case.check(case.ours(), case.anchor())
        ours, ours_cpu = best_of(case.ours, args.repeat, args.warmup)
        anchor, anchor_cpu = best_of(case.anchor, args.repeat, args.warmup)
        out["cases"][case.name] = {
            "ours_s": round(ours, 4), "anchor_s": round(anchor, 4),
            "ours_cpu_s": round(ours_cpu, 4), "anchor_cpu_s": round(anchor_cpu, 4),
            "ours_cpu_ns_per_unit": round(ours_cpu / case.cells * 1e9, 2),
            "anchor_over_ours_cpu": round(anchor_cpu / ours_cpu, 2),
        }  # fmt: skip
        if not args.json:
            ns = ours_cpu / case.cells * 1e9
            print(f"{case.name:8s} wall ours {ours:7.3f} s anchor {anchor:7.3f} s | cpu ours "
                  f"{ours_cpu:7.3f} s anchor {anchor_cpu:7.3f} s anchor/ours "
                  f"{anchor_cpu / ours_cpu:5.2f} | {ns:7.2f} cpu ns/unit")  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
