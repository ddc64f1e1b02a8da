"""Walk-forward evaluation of a selection rule (the ``walkforward`` command and ``af.walkforward``).

Candidates are factors (library names or expressions, safe by construction) crossed with an
optional parameter grid (as a sweep). On every window (``engine.walkforward``: rolling or
expanding train, purge, embargo) the rule picks one candidate from the train rows only:

- ``rule="rank_ic"``: the largest |t-stat| of the 1-horizon RankIC (Newey-West errors) on the
  train rows whose labels end before the purge gap; the candidate is traded with the sign of
  its train RankIC;
- ``rule="sharpe"``: the largest net Sharpe of the candidate's portfolio on the train rows (the
  "best sweep trial" rule, no sign flip).

The chosen candidate is then backtested on the test window alone (started flat: entering costs
count) and the test windows' returns are stitched into the out-of-sample curve. Beside it, the
in-sample curve is what a researcher without walk-forward would show: the candidate the same
rule picks on *all* rows, backtested on all rows. Each window also ranks the selected candidate
among all candidates' test Sharpe ratios; the fraction of windows where it lands at or below
the median is the probability of backtest overfitting on these splits (``pbo``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.backtests import factor_returns
from alphaforge.engine import metrics as m
from alphaforge.engine.errors import OptionError
from alphaforge.engine.formatting import fmt
from alphaforge.engine.panel import Panel
from alphaforge.engine.report import ReportInputs, ReportPaths, build_report
from alphaforge.engine.sweep import expand_trials
from alphaforge.engine.timing import timing_warnings
from alphaforge.engine.walkforward import Split, overfit_logit, sharpe_per_bar, walk_forward_splits
from alphaforge.factors import ic
from alphaforge.factors.registry import Registry
from alphaforge.factors.resolve import SAFE
from alphaforge.factors.returns import forward_returns
from alphaforge.factors.score import evaluate_all
from alphaforge.sweeps import canonical_factor

F64 = npt.NDArray[np.float64]
RULES = ("rank_ic", "sharpe")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A factor with the portfolio settings it is traded with (one sweep trial)."""

    factor: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """``factor`` plus the non-default settings, e.g. ``mom_20 [rebalance_every=15]``."""
        shown = {k: v for k, v in self.params.items() if k in self._varied}
        return self.factor + (f" [{', '.join(f'{k}={v}' for k, v in shown.items())}]"
                              if shown else "")  # fmt: skip

    _varied: tuple[str, ...] = ()


@dataclass
class WalkForwardResult:
    """Walk-forward windows, the stitched out-of-sample curve and the in-sample one.

    Attributes:
        windows: one dict per window: train/test first and last times (UTC us), rows, the
            selected candidate, its sign, train score (|t| or Sharpe), train Sharpe and test
            Sharpe (annualised), test RankIC, and its overfit logit.
        ts_us: (T,) bar times. oos_returns: (T,) stitched test returns (NaN outside tests).
        is_returns: (T,) returns of the full-sample pick on every row; is_selected its label.
        oos_metrics, is_metrics: metrics of the two curves (over the test rows / all rows).
        pbo: fraction of windows whose pick ranked at or below the test median (NaN with one
            candidate). selection_stability: share of windows that picked the modal candidate.
        n_candidates, rule, settings, warnings: what was run.
    """

    windows: list[dict[str, Any]]
    ts_us: npt.NDArray[np.int64]
    oos_returns: F64
    is_returns: F64
    is_selected: str
    oos_metrics: dict[str, Any]
    is_metrics: dict[str, Any]
    pbo: float
    selection_stability: float
    n_candidates: int
    rule: str
    settings: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def curves(self) -> Any:
        """pandas DataFrame indexed by UTC bar time: ``out_of_sample`` (stitched test returns,
        NaN outside test windows) and ``in_sample`` (the full-sample pick on every bar)."""
        import pandas as pd

        idx = pd.DatetimeIndex(pd.to_datetime(self.ts_us, unit="us", utc=True), name="ts")
        return pd.DataFrame({"out_of_sample": self.oos_returns, "in_sample": self.is_returns},
                            index=idx)  # fmt: skip

    def report(self, out_dir: str | Path = "alphaforge-out") -> ReportPaths:
        """HTML report: both cumulative curves, the metrics side by side and every window."""
        cols = ["window", "train_rows", "test_start", "selected", "sign", "train_sharpe",
                "test_sharpe", "test_rank_ic", "overfit_logit"]  # fmt: skip
        rows = [[w["window"], w["train_rows"], _iso(w["test_start_us"]), w["selected"],
                 w["sign"], w["train_sharpe"], w["test_sharpe"], w["test_rank_ic"],
                 w["overfit_logit"]] for w in self.windows]  # fmt: skip
        side = {f"{k} (in / out of sample)": f"{fmt(self.is_metrics[k])} / "
                f"{fmt(self.oos_metrics[k])}" for k in self.oos_metrics}  # fmt: skip
        summary = {"rule": self.rule, "candidates": self.n_candidates,
                   "in-sample pick (all rows)": self.is_selected,
                   "PBO on these splits": self.pbo,
                   "selection stability": self.selection_stability, **side}  # fmt: skip
        return build_report(ReportInputs(
            title=f"alphaforge walk-forward: {self.rule}", ts_us=self.ts_us,
            periods_per_year=None, warnings=self.warnings,
            curves={"out of sample (stitched test windows)": self.oos_returns,
                    f"in sample ({self.is_selected}, picked on all rows)": self.is_returns},
            sections=[("Walk-forward", summary), ("Settings", self.settings)],
            tables=[("Windows", cols, rows)]), out_dir)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (curves omitted)."""
        return {"rule": self.rule, "n_candidates": self.n_candidates, "pbo": self.pbo,
                "selection_stability": self.selection_stability,
                "in_sample": {"selected": self.is_selected, **self.is_metrics},
                "out_of_sample": self.oos_metrics, "windows": self.windows,
                "settings": self.settings, "warnings": self.warnings}  # fmt: skip


def _iso(ts_us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts_us / 1e6))


def _candidates(factors: Sequence[str], grid: dict[str, list[Any]]) -> list[Candidate]:
    trials = expand_trials(list(factors), grid or {})
    varied = tuple(k for k, v in grid.items() if len(v) > 1)
    return [Candidate(t.factor, dict(t.params), varied) for t in trials]


def _train_ic_score(values: F64, fwd: F64, rows: npt.NDArray[np.int64]) -> tuple[float, float]:
    """(|t|, sign) of the candidate's RankIC over the train rows."""
    s = ic.ic_summary(ic.cs_ic(values[rows], fwd[rows], "spearman", 3), 1)
    t = s["t_stat"]
    return (abs(t) if math.isfinite(t) else -math.inf), (-1.0 if s["mean"] < 0 else 1.0)


def run_walkforward(
    panel: Panel,
    factors: Sequence[str],
    *,
    grid: dict[str, list[Any]] | None = None,
    rule: str = "rank_ic",
    train: int | None = None,
    test: int | None = None,
    step: int | None = None,
    mode: str = "expanding",
    purge: int | None = None,
    embargo: int = 0,
    horizon: int = 1,
    registry: Registry | None = None,
    progress: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Walk-forward evaluation of ``rule`` over ``factors`` x ``grid`` (module docstring).

    Args:
        panel: the data (fixed interval).
        factors: library names or expressions.
        grid: sweep parameters (scheme, lag, fee_bps, slippage_bps, rebalance_every) -> values.
        rule: "rank_ic" or "sharpe".
        train, test, step: rows; defaults: train a third of the panel, 8 test windows.
        mode: "expanding" or "rolling". purge: default lag + horizon (the least that keeps
            train labels out of the test window; smaller is refused). embargo: rows after a
            test window no later window trains on.
        horizon: bars of the forward return the rank_ic rule scores.
        registry: every candidate is recorded as a trial on this data.

    Raises:
        OptionError: an unknown rule, a purge shorter than lag + horizon, windows that do not
            fit; ExprError / UnknownFactor for bad factor text.
    """
    if rule not in RULES:
        raise OptionError(f"rule must be one of {RULES}; got {rule!r}")
    say = progress or (lambda _m: None)
    cands = _candidates(factors, dict(grid or {}))
    lag = max(int(c.params["lag"]) for c in cands)
    need = lag + horizon
    purge = need if purge is None else int(purge)
    if purge < need:
        raise OptionError(f"purge {purge} < lag + horizon = {need}: the last train rows' labels "
                          "would reach into the test window")  # fmt: skip
    train = panel.T // 3 if train is None else int(train)
    test = max((panel.T - train - purge) // 8, 1) if test is None else int(test)
    splits = walk_forward_splits(panel.T, train, test, step=step, mode=mode, purge=purge,
                                 embargo=embargo)  # fmt: skip
    say(f"{len(cands)} candidate(s), {len(splits)} window(s)")
    names = sorted({c.factor for c in cands})
    values = evaluate_all({n: n for n in names}, panel)
    fwd = forward_returns(panel, (horizon,), lag)[0]
    # each candidate's returns on every row, both signs for rank_ic (the rule may flip it)
    signs = (1.0, -1.0) if rule == "rank_ic" else (1.0,)
    full: dict[tuple[int, float], F64] = {}
    for i, c in enumerate(cands):
        for sg in signs:
            full[(i, sg)] = _returns(sg * values[c.factor], panel, c.params)
        say(f"candidate {i + 1}/{len(cands)}: {c.label}")
    ppy = panel.periods_per_year
    windows, oos = [], np.full(panel.T, np.nan)
    for k, sp in enumerate(splits):
        scores = _scores(rule, cands, values, fwd, full, sp.train)
        pick = _pick(scores)
        score, sign = scores[pick]
        c = cands[pick]
        r = _returns(sign * values[c.factor][sp.test], panel.take_rows(sp.test), c.params)
        oos[sp.test] = r
        # every candidate traded as the rule would have traded it (its own train sign)
        test_sr = np.array([sharpe_per_bar(full[(i, scores[i][1])][sp.test])
                            for i in range(len(cands))])  # fmt: skip
        ric = ic.cs_ic(sign * values[c.factor][sp.test], fwd[sp.test], "spearman", 3)
        windows.append(_window(k, sp, panel, c.label, sign, score, full[(pick, sign)][sp.train],
                               r, ric, ppy, overfit_logit(pick, test_sr)))  # fmt: skip
        say(f"window {k + 1}/{len(splits)}: {c.label}")
    all_rows = np.arange(panel.T, dtype=np.int64)
    whole = _scores(rule, cands, values, fwd, full, all_rows[: panel.T - need])
    pick = _pick(whole)
    sign = whole[pick][1]
    is_returns = full[(pick, sign)]
    if registry is not None:  # the same key as a sweep trial: one trial, counted once
        for i, c in enumerate(cands):
            key = f"{canonical_factor(c.factor)}|{json.dumps(c.params, sort_keys=True)}"
            registry.record_trial(panel, "walkforward", key, name=c.label,
                                  sr_per_bar=sharpe_per_bar(full[(i, 1.0)]),
                                  n_obs=panel.T)  # fmt: skip
    tested = np.isfinite(oos)
    logits = [w["overfit_logit"] for w in windows]
    picks = [w["selected"] for w in windows]
    modal = max(set(picks), key=picks.count)
    settings = {"train": train, "test": test, "step": step or test, "mode": mode,
                "purge": purge, "embargo": embargo, "horizon": horizon, "lag": lag,
                "grid": grid or {}, "lookahead": SAFE.detail}  # fmt: skip
    warns = timing_warnings(lag, "open" in panel)
    return WalkForwardResult(
        windows=windows, ts_us=panel.ts_us, oos_returns=oos, is_returns=is_returns,
        is_selected=f"{'-' if sign < 0 else ''}{cands[pick].label}",
        oos_metrics=curve_metrics(oos[tested], ppy),
        is_metrics=curve_metrics(is_returns, ppy),
        pbo=float(np.mean(np.asarray(logits) <= 0)) if len(cands) > 1 else math.nan,
        selection_stability=picks.count(modal) / len(picks), n_candidates=len(cands),
        rule=rule, settings=settings, warnings=warns,
    )  # fmt: skip


def _returns(values: F64, panel: Panel, params: dict[str, Any]) -> F64:
    return factor_returns(values, panel, scheme=str(params["scheme"]), lag=int(params["lag"]),
                          fee_bps=float(params["fee_bps"]),
                          slippage_bps=float(params["slippage_bps"]),
                          rebalance_every=int(params["rebalance_every"]))  # fmt: skip


def _scores(rule: str, cands: list[Candidate], values: dict[str, F64], fwd: F64,
            full: dict[tuple[int, float], F64],
            rows: npt.NDArray[np.int64]) -> list[tuple[float, float]]:  # fmt: skip
    """(score, sign) of every candidate on the train ``rows`` (-inf: no finite score)."""
    out = []
    for i, c in enumerate(cands):
        if rule == "rank_ic":
            out.append(_train_ic_score(values[c.factor], fwd, rows))
        else:
            sr = sharpe_per_bar(full[(i, 1.0)][rows])
            out.append((sr if math.isfinite(sr) else -math.inf, 1.0))
    if not any(math.isfinite(sc) for sc, _ in out):
        raise OptionError("no candidate has a finite score on the train rows")
    return out


def _pick(scores: list[tuple[float, float]]) -> int:
    return max(range(len(scores)), key=lambda i: scores[i][0])


def curve_metrics(returns: F64, periods_per_year: float) -> dict[str, Any]:
    """Sharpe, total return, CAGR, volatility, max drawdown and bar count of a return series."""
    r = np.asarray(returns, dtype=np.float64)
    return {"sharpe": m.sharpe_ratio(r, periods_per_year), "total_return": m.total_return(r),
            "cagr": m.cagr(r, periods_per_year),
            "annual_volatility": m.annual_volatility(r, periods_per_year),
            "max_drawdown": m.max_drawdown(r), "bars": int(r.size)}  # fmt: skip


def _window(k: int, sp: Split, panel: Panel, label: str, sign: float, score: float,
            train_r: F64, test_r: F64, ric: F64, ppy: float,
            logit: float) -> dict[str, Any]:  # fmt: skip
    ann = math.sqrt(ppy)
    finite = ric[np.isfinite(ric)]
    return {"window": k, "train_start_us": int(panel.ts_us[sp.train[0]]),
            "train_end_us": int(panel.ts_us[sp.train[-1]]), "train_rows": int(sp.train.size),
            "test_start_us": int(panel.ts_us[sp.test_start]),
            "test_end_us": int(panel.ts_us[sp.test_end - 1]),
            "test_rows": sp.test_end - sp.test_start, "selected": label,
            "sign": int(sign), "train_score": score,
            "train_sharpe": sharpe_per_bar(train_r) * ann,
            "test_sharpe": sharpe_per_bar(test_r) * ann,
            "test_rank_ic": float(finite.mean()) if finite.size else math.nan,
            "overfit_logit": logit}  # fmt: skip
