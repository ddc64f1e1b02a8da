"""Public API, factor side: factor handles, scoring results as pandas, proposals.

Shaped after alphalens (factor values + forward returns -> IC, quantile returns, decay as
pandas objects) while every number comes from ``alphaforge.factors.score.score_factor``, the
function behind ``alphaforge score``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from alphaforge.engine.defaults import DEFAULTS, Execution
from alphaforge.engine.panel import Panel
from alphaforge.factors.expr import parse
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.library import LIBRARY
from alphaforge.factors.llm import Budget, LLMClient
from alphaforge.factors.propose import Gate, Study, StudyConfig, StudyResult
from alphaforge.factors.rank_library import rank_library as _rank_library
from alphaforge.factors.registry import Registry, ledger_path
from alphaforge.factors.resolve import FactorInput, resolve_factor
from alphaforge.factors.score import DEFAULT_HORIZONS, score_factor
from alphaforge.factors.score_result import FactorScore

if TYPE_CHECKING:
    import pandas as pd
else:
    from alphaforge.lazy import LazyModule

    pd = LazyModule("pandas")  # imported on first use (alphaforge.lazy)

F64 = npt.NDArray[np.float64]

__all__ = ["Factor", "ScoreResult", "factor", "propose", "score"]


@dataclass(frozen=True, slots=True)
class Factor:
    """A library factor or a parsed expression, ready to evaluate on any Panel.

    Attributes:
        name: the library name, or the canonical expression text.
        expr: canonical expression text.
        lookback: rows of history the first valid value needs.
        fields: panel fields the expression reads.
        doc: the library's description ("" for an ad-hoc expression).
    """

    name: str
    expr: str
    lookback: int
    fields: frozenset[str]
    doc: str = ""

    def evaluate(self, panel: Panel) -> F64:
        """(T, N) float64 values on ``panel`` (NaN where the look-back is not yet filled)."""
        return resolve_factor(self.expr, panel)[2]

    def frame(self, panel: Panel) -> pd.DataFrame:
        """The values as a DataFrame indexed by UTC bar time, one column per symbol."""
        values = self.evaluate(panel)
        return panel.with_fields(__factor=values).to_pandas("__factor")

    def __str__(self) -> str:
        return self.expr


def factor(name_or_expr: str | Factor) -> Factor:
    """A library factor by name (``"mom_20"``) or an expression (``"cs_rank(-ts_delta(close,5))"``).

    Raises:
        ExprError: the text is neither a library name nor a valid expression (with the position
            of the bad token).
    """
    if isinstance(name_or_expr, Factor):
        return name_or_expr
    text = name_or_expr.strip()
    if text in LIBRARY:
        lib = LIBRARY[text]
        node = parse(lib.expr)
        return Factor(text, str(node), node.lookback, node.fields(), lib.doc)
    node = parse(text)
    return Factor(str(node), str(node), node.lookback, node.fields())


FactorArg: TypeAlias = "str | Factor | F64 | pd.DataFrame | Callable[[Panel], Any]"
"""A library name, expression, ``af.factor(...)``, (T, N) values, or a callable on the panel."""


def as_factor_input(f: FactorArg) -> FactorInput:
    if isinstance(f, Factor):
        return f.expr
    if isinstance(f, pd.DataFrame):
        return np.ascontiguousarray(f.to_numpy(dtype=np.float64))
    return f


class ScoreResult:
    """A factor's score as pandas objects (all numbers from ``FactorScore``).

    Attributes:
        raw: the underlying ``FactorScore`` (``.to_dict()`` for JSON).
        ic, rank_ic: DataFrame, one row per horizon (bars): mean, std, icir, t_stat, se, n.
        quantiles: DataFrame, one row per horizon, one column per bin (lowest factor first):
            mean forward return per bar held.
        decay: Series horizon -> mean RankIC with the single bar h bars after entry.
        turnover, costs, dsr: dicts as in ``FactorScore``.
        lookahead: {"status", "detail"}: how the factor was cleared of reading the future.
        warnings: what makes these numbers optimistic (timing, unverified values).
    """

    def __init__(self, raw: FactorScore) -> None:
        self.raw = raw
        self.ic = _horizon_frame(raw.ic)
        self.rank_ic = _horizon_frame(raw.rank_ic)
        q = {h: list(v) for h, v in raw.quantile_returns.items()}
        self.quantiles = pd.DataFrame.from_dict(q, orient="index")
        self.quantiles.columns = [f"q{i + 1}" for i in range(self.quantiles.shape[1])]
        self.quantiles.index.name = "horizon"
        self.decay = pd.Series(dict(raw.decay), name="rank_ic", dtype=float)
        self.decay.index.name = "horizon"
        self.turnover = dict(raw.turnover)
        self.costs = dict(raw.costs)
        self.dsr = dict(raw.dsr)
        self.test = ScoreResult(raw.test) if raw.test is not None else None
        self.lookahead = dict(raw.lookahead or {})
        self.warnings = list(raw.warnings)

    def summary(self) -> pd.DataFrame:
        """The summary table of ``alphaforge score`` (metric, value)."""
        return pd.DataFrame(self.raw.summary_rows(), columns=["metric", "value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (what ``alphaforge score --json`` prints)."""
        return self.raw.to_dict()

    def plot(self) -> Any:
        """A matplotlib Figure: RankIC by horizon, quantile returns, RankIC decay."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        self.rank_ic["mean"].plot.bar(ax=axes[0], title="mean RankIC by horizon (bars)")
        if not self.quantiles.empty:
            h = self.quantiles.index[0]
            self.quantiles.loc[h].plot.bar(ax=axes[1], title=f"mean return by quantile (h={h})")
        self.decay.plot(ax=axes[2], marker="o", title="RankIC decay")
        for ax in axes:
            ax.axhline(0, color="grey", lw=0.8)
        fig.suptitle(f"{self.raw.name}")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        return f"ScoreResult({self.raw.name!r}, rows={self.raw.n_rows}, assets={self.raw.n_assets})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{html.escape(v)}</td></tr>"
                       for m, v in self.raw.summary_rows())  # fmt: skip
        title = html.escape(self.raw.name)
        return f"<p><b>score of {title}</b></p><table><tbody>{rows}</tbody></table>"


def _horizon_frame(stats: Mapping[int, Mapping[str, float]]) -> pd.DataFrame:
    df = pd.DataFrame.from_dict({h: dict(v) for h, v in stats.items()}, orient="index")
    df.index.name = "horizon"
    return df


def score(
    factor_: FactorArg,
    panel: Panel,
    *,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    lag: int = DEFAULTS.lag,
    quantiles: int = 5,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage_bps: float = DEFAULTS.slippage_bps,
    rebalance_every: int = DEFAULTS.rebalance_every,
    split: float | str | None = None,
    test: bool = False,
    n_trials: int | None = None,
    redundancy: bool = False,
    available_us: Any | None = None,
    ledger: str | Path | None = None,
    study: str | None = None,
    reuse_holdout: bool = False,
) -> ScoreResult:
    """IC, RankIC, decay, quantile returns, turnover, costs and deflated Sharpe of a factor, as
    ``alphaforge score`` computes them.

    Args:
        factor_: library name, expression, ``af.factor(...)``, (T, N) values (array or a
            DataFrame aligned with the panel) or a function ``Panel -> (T, N)``, which is
            checked for lookahead first (a leak raises ``LookaheadError``).
        panel: the data.
        available_us: for values, when each became known ((T,) or (T, N) UTC us); values
            without it are scored with an "unverified" lookahead warning.
        n_trials: trials behind the factor for the DSR; default: the ledger's count of
            distinct trials on this data over every study, command and API call.
        ledger: the research ledger (default ``$ALPHAFORGE_LEDGER`` or
            ``.alphaforge/ledger.sqlite``): this score is recorded as a trial, and a ``test``
            look at the holdout is refused (``HoldoutReused``) when the same signal, recognised
            by its values, already looked at it, unless ``reuse_holdout``.
        Other arguments: see ``alphaforge.factors.score.score_factor``.
    """
    raw = score_factor(as_factor_input(factor_), panel, horizons=horizons, lag=lag,
                       quantiles=quantiles, fee_bps=fee_bps, slippage_bps=slippage_bps,
                       rebalance_every=rebalance_every, split=split, test=test, n_trials=n_trials,
                       redundancy=redundancy, available_us=available_us,
                       registry=Registry(ledger), study=study,
                       allow_holdout_reuse=reuse_holdout)  # fmt: skip
    return ScoreResult(raw)


def propose(
    panel: Panel,
    *,
    rounds: int = 3,
    per_round: int = 10,
    study: str = "default",
    ledger: str | Path | None = None,
    offline: bool = False,
    base_url: str | None = None,
    model: str | None = None,
    budget: Budget | None = None,
    min_t: float = 3.0,
    min_sharpe: float = 0.0,
    seed: int = 0,
    cache_dir: str | None = ".alphaforge/llm-cache",
    progress: Callable[[str], None] | None = None,
    split: float = 0.7,
    horizon: int = 1,
    lag: int = DEFAULTS.lag,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage_bps: float = DEFAULTS.slippage_bps,
    rebalance_every: int = DEFAULTS.rebalance_every,
) -> StudyResult:
    """Candidate factors from an OpenAI-compatible LLM (or the offline generator when
    ``offline`` or no key is configured), through parse, de-duplication, lookahead, train
    scoring, the gate and a one-shot holdout; every trial lands in the ``ledger``. Nothing an
    LLM returns is executed: candidates are parsed by the expression language only.

    ``split`` is the train share of the panel's rows (the rest is the one-shot holdout);
    ``horizon`` the RankIC horizon in bars; ``lag``, ``fee_bps``, ``slippage_bps`` and
    ``rebalance_every`` the gate's long-short backtest (engine.defaults)."""
    client = LLMClient(base_url=base_url, model=model, cache_dir=cache_dir,
                       budget=budget or Budget())  # fmt: skip
    use_llm = not offline and client.has_key
    cfg = StudyConfig(study=study, rounds=rounds, per_round=per_round, seed=seed,
                      gate=Gate(min_abs_t=min_t, min_sharpe=min_sharpe), split=split,
                      horizon=horizon, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
                      rebalance_every=rebalance_every)  # fmt: skip
    path = ledger_path(ledger)  # the research registry's file: one count, one holdout
    path.parent.mkdir(parents=True, exist_ok=True)
    return Study(panel, cfg, Ledger(path), client if use_llm else None,
                 progress=progress or (lambda _m: None)).run()  # fmt: skip


def rank_library(
    panel: Panel,
    expressions: Mapping[str, str] | None = None,
    *,
    horizon: int = 1,
    lag: int = DEFAULTS.lag,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage_bps: float = DEFAULTS.slippage_bps,
    rebalance_every: int = DEFAULTS.rebalance_every,
    split: float | str | None = None,
    ledger: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Every library factor the panel can feed (plus ``expressions``: name -> text) ranked in
    one call by |t| of RankIC at ``horizon``, as ``alphaforge score --library``: a DataFrame
    indexed by factor name (rank, group, expression, rank_ic, t_stat, icir, coverage, net and
    gross Sharpe of the long-short backtest, turnover, break-even cost, edge kept, DSR at the
    study-wide trial count). Every ranked factor is recorded in the research ``ledger``; the
    full result (skipped factors with the dataset they need, trial count, execution) is in
    ``df.attrs["ranking"]``."""
    res = _rank_library(panel, dict(expressions or {}), horizon=horizon, split=split,
                        execution=Execution(lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
                                            rebalance_every=rebalance_every),
                        registry=Registry(ledger), progress=progress)  # fmt: skip
    df = pd.DataFrame(res.rows).set_index("name")
    df.attrs["ranking"] = res.to_dict()
    return df
