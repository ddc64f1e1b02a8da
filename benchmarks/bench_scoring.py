"""Scoring benchmark: RankIC at 3 horizons plus quintile mean returns, ours vs pandas vs alphalens.

Default: a cross-sectional factor over 200 assets x 20,000 timestamps (random-walk prices,
a factor with a small true IC, 2% missing factor cells). Every tool computes, from the same
factor and the same execution prices (next-bar open):

- forward returns at horizons 1, 5, 15 bars;
- the per-timestamp Spearman RankIC at each horizon;
- the per-timestamp mean forward return of each of 5 equal-count factor quantiles (pandas.qcut
  bins, alphalens' default).

Tools:
- ``ours``: ``factors.returns.forward_returns`` + ``factors.ic.cross_section`` (numba,
  parallel over timestamps; it also computes the Pearson IC in the same pass);
- ``pandas``: a long (date, asset) frame, ``groupby(date).rank()`` then per-date Pearson of the
  ranks from grouped sums, per-date quantile edges from ``groupby(date).quantile`` and
  ``groupby([date, bin]).mean()``;
- ``alphalens``: ``get_clean_factor_and_forward_returns`` + ``factor_information_coefficient`` +
  ``mean_return_by_quantile(by_date=True)``; it is run on the first ``--alphalens-rows``
  timestamps and its time is extrapolated linearly to ``--rows`` (its cost is per date).

Parity is checked before timing (``--check``): RankIC and quintile means of pandas and
alphalens against ours on the alphalens slice (rtol 1e-9). The first call of ours (numba
compile, or cache load with ``NUMBA_CACHE_DIR``) is reported separately as ``jit_s``.

Run: ``python benchmarks/bench_scoring.py --rows 20000 --cols 200 --repeat 3 --check``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.engine.panel import Panel  # noqa: E402
from alphaforge.factors import ic  # noqa: E402
from alphaforge.factors.returns import execution_prices, forward_returns  # noqa: E402

HORIZONS = (1, 5, 15)
QUANTILES = 5
Result = tuple[np.ndarray, np.ndarray]  # rank_ic (H, T), qmean (H, T, q)


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One tool: ``run(factor, panel) -> (rank_ic, qmean)`` on (T, N) inputs."""

    name: str
    ours: bool
    run: Callable[[np.ndarray, Panel], Result]
    check: float  # rtol of the parity check against ours


def make_inputs(rows: int, cols: int, seed: int) -> tuple[np.ndarray, Panel]:
    """Random-walk open/close (1m bars) and a factor with IC ~ 0.03 to the next bar's return."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.001, (rows + 1, cols))
    close = 100.0 * np.exp(np.cumsum(r, axis=0))[1:]
    open_ = 100.0 * np.exp(np.cumsum(r, axis=0))[:-1]
    panel = Panel(
        (np.arange(1, rows + 1, dtype=np.int64) * 60_000_000),
        tuple(f"A{j:03d}" for j in range(cols)),
        {"open": open_, "close": close},
        interval_us=60_000_000,
    )
    nxt = np.vstack([r[2:], np.zeros((1, cols))])
    factor = 0.03 * nxt / 0.001 + rng.standard_normal((rows, cols))
    factor[rng.random((rows, cols)) < 0.02] = np.nan
    return factor, panel


def run_ours(factor: np.ndarray, panel: Panel) -> Result:
    fwd = forward_returns(panel, HORIZONS, lag=1)
    cs = ic.cross_section(factor, fwd, quantiles=QUANTILES, min_obs=2)
    return cs.rank_ic, cs.qmean


def _long_frame(factor: np.ndarray, panel: Panel) -> pd.DataFrame:
    px = pd.DataFrame(execution_prices(panel, 1))
    data = {"factor": factor.ravel()}
    for h in HORIZONS:
        data[f"r{h}"] = (px.shift(-h) / px - 1.0).to_numpy().ravel()
    t, n = factor.shape
    df = pd.DataFrame(data)
    df["date"] = np.repeat(np.arange(t), n)
    return df


def run_pandas(factor: np.ndarray, panel: Panel) -> Result:
    df = _long_frame(factor, panel)
    t = factor.shape[0]
    ric = np.full((len(HORIZONS), t), np.nan)
    qm = np.full((len(HORIZONS), t, QUANTILES), np.nan)
    probs = ic.qcut_probabilities(QUANTILES)
    for i, h in enumerate(HORIZONS):
        d = df[["date", "factor", f"r{h}"]].dropna()
        rk = d.groupby("date")[["factor", f"r{h}"]].rank()
        rk["date"] = d["date"].to_numpy()
        rk["xy"] = rk["factor"] * rk[f"r{h}"]
        rk["xx"] = rk["factor"] ** 2
        rk["yy"] = rk[f"r{h}"] ** 2
        g = rk.groupby("date")
        s, n = g.sum(), g.size()
        cov = s["xy"] - s["factor"] * s[f"r{h}"] / n
        vx = s["xx"] - s["factor"] ** 2 / n
        vy = s["yy"] - s[f"r{h}"] ** 2 / n
        ric[i, s.index.to_numpy()] = (cov / np.sqrt(vx * vy)).to_numpy()
        edges = d.groupby("date")["factor"].quantile(probs).unstack()
        e = edges.loc[d["date"]].to_numpy()
        x = d["factor"].to_numpy()[:, None]
        d = d.assign(q=(x > e[:, 1:QUANTILES]).sum(axis=1))
        means = d.groupby(["date", "q"])[f"r{h}"].mean().unstack()
        qm[i, means.index.to_numpy()] = means.reindex(columns=range(QUANTILES)).to_numpy()
    return ric, qm


def run_alphalens(factor: np.ndarray, panel: Panel) -> Result:
    import alphalens as al

    t = factor.shape[0]
    idx = pd.to_datetime(panel.ts_us, unit="us", utc=True)
    fac = pd.DataFrame(factor, index=idx, columns=list(panel.symbols)).stack()
    fac.index.names = ["date", "asset"]
    px = pd.DataFrame(execution_prices(panel, 1), index=idx, columns=list(panel.symbols))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        fd = al.utils.get_clean_factor_and_forward_returns(
            fac, px.dropna(how="all"), periods=HORIZONS, quantiles=QUANTILES,
            filter_zscore=None, max_loss=1.0,
        )  # fmt: skip
        ic_df = al.performance.factor_information_coefficient(fd)
        q_df, _ = al.performance.mean_return_by_quantile(fd, by_date=True, demeaned=False)
    rows = np.searchsorted(idx, ic_df.index)
    ric = np.full((len(HORIZONS), t), np.nan)
    qm = np.full((len(HORIZONS), t, QUANTILES), np.nan)
    for i, col in enumerate(ic_df.columns):
        ric[i, rows] = ic_df[col].to_numpy()
        for k in range(QUANTILES):
            s = q_df[col].xs(k + 1, level="factor_quantile")
            qm[i, np.searchsorted(idx, s.index), k] = s.to_numpy()
    return ric, qm


def _timed(fn: Callable[[], Any], repeat: int, warmup: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run): CPU time is steadier on a shared box."""
    for _ in range(warmup):
        fn()
    best = (math.inf, math.inf)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


def check_parity(case: BenchCase, ref: Result, got: Result, rows_ok: np.ndarray) -> None:
    """Compare rank_ic and qmean on the rows every horizon can score (alphalens drops others)."""
    for name, a, b in (("rank_ic", ref[0], got[0]), ("qmean", ref[1], got[1])):
        np.testing.assert_allclose(
            b[:, rows_ok], a[:, rows_ok], rtol=case.check, atol=1e-14,
            err_msg=f"{case.name} {name} differs from ours",
        )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=20_000, help="timestamps T")
    p.add_argument("--cols", type=int, default=200, help="assets N")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--alphalens-rows", type=int, default=1000, help="alphalens slice length")
    p.add_argument("--check", action="store_true", help="check parity before timing")
    p.add_argument("--json", action="store_true", help="print JSON only")
    a = p.parse_args(argv)

    factor, panel = make_inputs(a.rows, a.cols, a.seed)
    al_rows = min(a.alphalens_rows, a.rows)
    f_small, p_small = factor[:al_rows], panel.take_rows(slice(0, al_rows))
    t0 = time.perf_counter()
    run_ours(f_small[:50], p_small.take_rows(slice(0, 50)))
    jit_s = time.perf_counter() - t0
    cases = [
        BenchCase("ours", True, run_ours, 0.0),
        BenchCase("pandas", False, run_pandas, 1e-9),
        BenchCase("alphalens", False, run_alphalens, 1e-9),
    ]
    if a.check:
        ref = run_ours(f_small, p_small)
        # rows where every horizon has a forward return for some asset (alphalens' kept dates)
        ok = np.arange(al_rows) < al_rows - max(HORIZONS) - 1
        for c in cases[1:]:
            check_parity(c, ref, c.run(f_small, p_small), ok)
    out: dict[str, Any] = {
        "rows": a.rows, "cols": a.cols, "horizons": list(HORIZONS), "quantiles": QUANTILES,
        "jit_s": jit_s, "parity_checked": bool(a.check), "alphalens_rows": al_rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "numba_threads": _threads()},
        "versions": _versions(), "seconds": {},
    }  # fmt: skip
    cpu: dict[str, float] = {}
    s = out["seconds"]
    s["ours"], cpu["ours"] = _timed(lambda: run_ours(factor, panel), a.repeat, a.warmup)
    s["pandas"], cpu["pandas"] = _timed(lambda: run_pandas(factor, panel), 1, 0)
    al_s, al_c = _timed(lambda: run_alphalens(f_small, p_small), 1, 0)
    s["alphalens_slice"], cpu["alphalens_slice"] = al_s, al_c
    s["alphalens"], cpu["alphalens"] = al_s * a.rows / al_rows, al_c * a.rows / al_rows
    out["cpu_seconds"] = cpu
    out["alphalens_extrapolated"] = al_rows < a.rows
    out["speedup"] = {
        "vs_pandas": s["pandas"] / s["ours"],
        "vs_alphalens": s["alphalens"] / s["ours"],
    }
    out["speedup_cpu"] = {
        "vs_pandas": cpu["pandas"] / cpu["ours"],
        "vs_alphalens": cpu["alphalens"] / cpu["ours"],
    }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{a.rows} timestamps x {a.cols} assets, RankIC at {HORIZONS} + {QUANTILES} quantiles"
        )
        print(f"  jit/cache load (ours, first call): {jit_s:.2f} s")
        for k, v in s.items():
            print(f"  {k:16s} {v:9.3f} s wall  {cpu[k]:9.3f} s cpu")
        extra = (
            f" (alphalens extrapolated from {al_rows} rows)"
            if out["alphalens_extrapolated"]
            else ""
        )
        print(f"  speedup: {out['speedup']['vs_pandas']:.1f}x vs pandas, "
              f"{out['speedup']['vs_alphalens']:.0f}x vs alphalens{extra}")  # fmt: skip
        sc = out["speedup_cpu"]
        print(
            f"  CPU-time ratios: {sc['vs_pandas']:.1f}x vs pandas, "
            f"{sc['vs_alphalens']:.0f}x vs alphalens"
        )
    return out


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _versions() -> dict[str, str]:
    import alphalens
    import numba

    return {"numpy": np.__version__, "pandas": pd.__version__, "numba": numba.__version__,
            "alphalens": alphalens.__version__}  # fmt: skip


if __name__ == "__main__":
    main()
