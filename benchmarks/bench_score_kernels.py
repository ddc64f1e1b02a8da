"""Scoring, weight and proposal kernels one by one: time of each public call on one (T, N) panel.

    python benchmarks/bench_score_kernels.py [--rows 20000] [--cols 200] [--repeat 5] [--json]

Times, best of ``--repeat`` after one untimed call (compile or cache load), the calls the
ranking, ``score`` and ``propose`` make: forward returns (3 horizons), the cross-section (IC,
RankIC, quintile means), quantile bins, rank autocorrelation, quantile turnover, time-series IC,
rank weights, row ranks, the RankIC rows of two ranked factors and one candidate against 8
ranked library members. Only public functions are called, so the same script times an older
checkout of the package (run it with that checkout's interpreter) for an old-vs-new ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from alphaforge.engine.panel import Panel
from alphaforge.engine.weights import weights_from_signals
from alphaforge.factors import ic
from alphaforge.factors.propose_score import RankSet, rank_rows
from alphaforge.factors.returns import forward_returns


def _rank_corr_rows() -> Callable[[Any, Any], Any]:
    try:
        from alphaforge.factors.propose_score import rank_corr_rows

        return lambda a, b: rank_corr_rows(a, b, 3)
    except ImportError:  # before the kernels ran on the shared threads
        from alphaforge.factors import propose_nb

        return lambda a, b: propose_nb.rank_corr_rows(a[0], a[1], b[0], b[1], 3)


def cases(t: int, n: int, seed: int) -> dict[str, Callable[[], Any]]:
    """Name -> call, on a random-walk market with a weakly predictive factor (2 % missing)."""
    rng = np.random.default_rng(seed)
    px = np.ascontiguousarray(100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, (t, n)), axis=0)))
    minute = 60_000_000
    panel = Panel(np.arange(t, dtype=np.int64) * minute, tuple(f"S{j:03d}" for j in range(n)),
                  {"close": px}, interval_us=minute)  # fmt: skip
    hs = (1, 5, 15)
    fwd = forward_returns(panel, hs, 1)
    f = np.nan_to_num(fwd[0], nan=0.0) + rng.normal(0, 3e-3, (t, n))
    f[rng.random(f.shape) < 0.02] = np.nan
    bins = ic.quantile_bins(f, 5)
    rs = RankSet()
    for k in range(8):
        rs.add(f"m{k}", rs.ranks(f + rng.normal(0, 3e-3 * (k + 1), f.shape)))
    fr, rr = rank_rows(f), rank_rows(fwd[0])
    corr_rows = _rank_corr_rows()
    return {
        "forward_returns (3 horizons)": lambda: forward_returns(panel, hs, 1),
        "cross_section (IC, RankIC, quintiles)": lambda: ic.cross_section(f, fwd, quantiles=5),
        "quantile_bins": lambda: ic.quantile_bins(f, 5),
        "rank_autocorrelation": lambda: ic.rank_autocorrelation(f, lag=1),
        "quantile_turnover": lambda: ic.quantile_turnover(bins, 4, lag=1),
        "ts_ic (spearman)": lambda: ic.ts_ic(f, fwd[0]),
        "weights rank": lambda: weights_from_signals(f, "rank"),
        "rank_rows": lambda: rank_rows(f),
        "rank_corr_rows": lambda: corr_rows(fr, rr),
        "RankSet.corrs (8 members)": lambda: rs.corrs(fr),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--cols", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    out: dict[str, Any] = {"rows": args.rows, "cols": args.cols, "load_before": load_before}
    times: dict[str, dict[str, float]] = {}
    for name, call in cases(args.rows, args.cols, args.seed).items():
        t0 = time.perf_counter()
        call()
        first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - t0)
        times[name] = {"first_s": first, "best_s": best}
    out["times"] = times
    out["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.rows} x {args.cols}, best of {args.repeat}; load {load_before:.2f} before, "
          f"{out['load_after']:.2f} after")  # fmt: skip
    for name, v in times.items():
        print(f"{name:40s} first {v['first_s']:7.3f} s   best {v['best_s']:7.4f} s")


if __name__ == "__main__":
    main()
