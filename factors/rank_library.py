"""Rank the whole factor library (plus the user's own expressions) on one panel in one call.

What ``alphaforge score --library`` runs. Shared work, done once for all factors: the forward
returns and their row ranks, the execution mask, and the factor values themselves (evaluated
in batches through ``evaluate_many``'s shared plan, so common subexpressions are computed once
per batch; a batch is also the unit of progress). Per factor:

- RankIC at ``horizon`` (row-wise Spearman with the forward return, ``factors.ic.cs_ic``
  semantics, computed from precomputed ranks), its t-stat (``ic.ic_summary``: the larger of
  the overlapping-windows and Newey-West errors) and ICIR;
- the long-short backtest of the factor **as defined** (rank weights, gross 1) with the
  shared execution defaults (``engine.portfolio``): net and gross Sharpe, turnover per bar,
  break-even cost and the share of the gross edge kept after costs;
- the Deflated Sharpe at the study-wide trial count: every ranked factor is recorded as a
  trial in the research registry (the same key ``alphaforge score`` uses), so ranking 70
  factors makes the bar every one of them must clear 70 trials high, and a later ``score`` or
  ``backtest`` on this data counts them too.

Factors are ordered by |t| of the RankIC (a factor that is defined on only a few rows cannot
top the list on a noisy mean); a factor whose sign is negative is reported as such, never
silently flipped. A library factor the panel cannot feed is listed in ``skipped`` with the
dataset it needs, never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.defaults import DEFAULTS, Execution, describe
from alphaforge.engine.metrics import sharpe_ratio
from alphaforge.engine.panel import Panel
from alphaforge.engine.portfolio import long_short
from alphaforge.engine.tradable import universe_values
from alphaforge.factors import ic
from alphaforge.factors.dsr import return_moments
from alphaforge.factors.errors import ScoreError
from alphaforge.factors.expr import parse
from alphaforge.factors.expr.compile import evaluate_many
from alphaforge.factors.fields import SOURCES, available_fields
from alphaforge.factors.library import LIBRARY
from alphaforge.factors.propose_score import MIN_OBS, rank_corr_rows, rank_rows
from alphaforge.factors.registry import Registry, TrialCount, deflate
from alphaforge.factors.resolve import check_factor_text
from alphaforge.factors.returns import forward_returns
from alphaforge.factors.score import split_row, trial_key

F64 = npt.NDArray[np.float64]
BATCH = 8
"""Factors evaluated per shared plan (and per progress line)."""


@dataclass(frozen=True, slots=True)
class LibraryRanking:
    """The ranked factors and what they were ranked on.

    Attributes:
        rows: one dict per factor, best |t| first: rank, name, group, expression, rank_ic,
            t_stat, icir, sharpe (net), gross_sharpe, turnover_per_bar, breakeven_bps,
            edge_kept, dsr, coverage (share of rows with a RankIC).
        skipped: [{name, needs}] library factors the panel cannot feed.
        n_rows, n_assets, horizon: the data ranked on (train rows only with a split).
        trials: the study-wide trial count on this data after recording these, and the Sharpe
            needed to beat luck at that count (annualised).
        execution: the backtest settings (engine.defaults.describe).
        split: {"train_rows", "cut_us"} when ranked on the train part only.
    """

    rows: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    n_rows: int
    n_assets: int
    horizon: int
    trials: dict[str, Any]
    execution: str
    settings: dict[str, Any]
    split: dict[str, int] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"n_factors": len(self.rows), "n_rows": self.n_rows, "n_assets": self.n_assets,
                "horizon": self.horizon, "trials": self.trials, "execution": self.execution,
                "settings": self.settings, "split": self.split, "warnings": self.warnings,
                "rows": self.rows, "skipped": self.skipped}  # fmt: skip


def library_candidates(panel: Panel,
                       extra: Mapping[str, str] | None = None,
                       ) -> tuple[dict[str, str], list[dict[str, str]]]:  # fmt: skip
    """({name: canonical expression} to rank, [{name, needs}] library factors skipped).

    ``extra`` (the user's expressions) are checked like any command's factor: a bad one
    raises before any work (``check_factor_text``).
    """
    have = available_fields(panel)
    todo: dict[str, str] = {}
    skipped: list[dict[str, str]] = []
    for name, f in LIBRARY.items():
        lacking = sorted(set(f.needs) - have)
        if lacking:
            needs = "; ".join(SOURCES.get(x, x) for x in lacking)
            skipped.append({"name": name, "needs": f"{', '.join(lacking)} ({needs})"})
        else:
            todo[name] = str(parse(f.expr))
    for name, text in (extra or {}).items():
        if name in todo or name in LIBRARY:
            raise ScoreError(f"expression name {name!r} is a library factor's name; rename it")
        todo[name] = check_factor_text(text, panel)
    return todo, skipped


def rank_library(
    panel: Panel,
    extra: Mapping[str, str] | None = None,
    *,
    horizon: int = 1,
    execution: Execution = DEFAULTS,
    split: float | int | str | None = None,
    registry: Registry | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> LibraryRanking:
    """Rank every library factor the panel can feed, plus ``extra`` (name -> expression).

    Args:
        panel: the data (the universe mask applies as in every command).
        extra: the user's own expressions, by name.
        horizon: RankIC horizon in bars.
        execution: the long-short backtest's settings (scheme/gross are fixed: rank, 1).
        split: rank on the rows before this cut only (fraction, ISO time or µs), keeping the
            rest for a later one-shot holdout look (``alphaforge score --split --test``).
        registry: records every factor as a trial; DSR at the study-wide count.
        progress: called as (done, total, message) after each batch.

    Raises:
        ScoreError: a bad split or horizon; ExprError / UnknownFactor for a bad expression.
    """
    todo, skipped = library_candidates(panel, extra)
    split_info = None
    if split is not None:
        cut = split_row(panel, split)
        if not 0 < cut < panel.T:
            raise ScoreError(f"split {split!r} falls at row {cut}; the panel has {panel.T} rows")
        split_info = {"train_rows": cut, "cut_us": int(panel.ts_us[cut])}
        panel = panel.take_rows(slice(0, cut))
    if horizon < 1 or horizon + execution.lag + 10 > panel.T:
        raise ScoreError(f"horizon {horizon} does not fit a panel of {panel.T} rows")
    say = progress or (lambda _d, _t, _m: None)
    fwd = forward_returns(panel, (horizon,), execution.lag)[0]
    fwd_r = rank_rows(fwd)
    names = list(todo)
    rows: list[dict[str, Any]] = []
    moments: list[tuple[str, str, tuple[float, int, float, float]]] = []
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        values = evaluate_many([todo[n] for n in batch], panel)
        for name, v in zip(batch, values, strict=True):
            v = universe_values(np.ascontiguousarray(v, dtype=np.float64), panel)
            row, rets = _one(name, todo[name], v, panel, fwd_r, horizon, execution)
            rows.append(row)
            key = trial_key(name, todo[name], v, lag=execution.lag)  # keep the key, not v
            moments.append((name, key, return_moments(rets)))
        say(min(start + BATCH, len(names)), len(names), ", ".join(batch))
    trials = _deflate(rows, moments, panel, registry)
    rows.sort(key=lambda r: -abs(r["t_stat"]) if math.isfinite(r["t_stat"]) else math.inf)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    settings = {**execution.to_dict(), "scheme": "rank", "gross": 1.0, "horizon": horizon}
    warnings = [] if "open" in panel else ["no open prices: fills at the close (optimistic)"]
    return LibraryRanking(rows, skipped, panel.T, panel.N, horizon, trials,
                          describe(settings), settings, split_info, warnings)  # fmt: skip


def _one(name: str, expr: str, values: F64, panel: Panel,
         fwd_r: tuple[npt.NDArray[np.float32], F64], horizon: int,
         ex: Execution) -> tuple[dict[str, Any], F64]:  # fmt: skip
    """One factor's row and its net per-bar returns."""
    r = rank_rows(values)
    ic_rows = rank_corr_rows(r, fwd_r, MIN_OBS)
    summ = ic.ic_summary(ic_rows, horizon)
    ls = long_short(values, panel, lag=ex.lag, fee_bps=ex.fee_bps,
                    slippage_bps=ex.slippage_bps, rebalance_every=ex.rebalance_every)  # fmt: skip
    ppy = panel.periods_per_year
    group = LIBRARY[name].group if name in LIBRARY else "user"
    row = {
        "name": name, "group": group, "expression": expr,
        "rank_ic": float(summ["mean"]), "t_stat": float(summ["t_stat"]),
        "icir": float(summ["icir"]), "coverage": float(np.isfinite(ic_rows).mean()),
        "sharpe": float(sharpe_ratio(ls.net.returns, ppy)),
        "gross_sharpe": float(sharpe_ratio(ls.gross.returns, ppy)),
        "turnover_per_bar": ls.turnover_per_bar, "breakeven_bps": ls.breakeven_bps,
        "edge_kept": ls.edge_kept,
    }  # fmt: skip
    return row, np.asarray(ls.net.returns, dtype=np.float64)


def _deflate(rows: Sequence[dict[str, Any]],
             moments: Sequence[tuple[str, str, tuple[float, int, float, float]]],
             panel: Panel, registry: Registry | None) -> dict[str, Any]:  # fmt: skip
    """Record each factor (name, trial key, return moments) as a trial, in one transaction,
    and add its DSR at the study-wide count (or at the number ranked here without a
    registry)."""
    if registry is not None:
        registry.record_trials(
            panel, "score", [(key, name, sr, n_obs) for name, key, (sr, n_obs, _s, _k) in moments]
        )
        count = registry.trial_count(panel)
    else:
        srs = np.array([m[2][0] for m in moments], dtype=np.float64)
        count = TrialCount(len(moments), srs[np.isfinite(srs)], {"score": len(moments)})
    needed = math.nan
    for row, (_n, _k, (sr, n_obs, skew, kurt)) in zip(rows, moments, strict=True):
        d = deflate(count, {"sr": sr, "n_obs": n_obs, "skew": skew, "kurtosis": kurt},
                    panel.periods_per_year)  # fmt: skip
        row["dsr"] = d.get("dsr", math.nan)
        needed = d.get("sr_needed_annual", needed)
    return {"n_trials": count.n_trials, "by_kind": dict(count.by_kind),
            "sr_needed_annual": needed}  # fmt: skip
