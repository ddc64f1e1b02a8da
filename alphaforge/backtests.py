"""A factor's long-short backtest on a Panel (the factors -> engine seam).

``factor_weights`` / ``factor_returns`` live in engine.portfolio and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.defaults import DEFAULTS, describe
from alphaforge.engine.errors import InputError
from alphaforge.engine.metrics import compute_metrics
from alphaforge.engine.panel import Panel
from alphaforge.engine.portfolio import factor_returns, factor_weights, funding_of
from alphaforge.engine.slippage import execution_book
from alphaforge.engine.timing import timing_warnings
from alphaforge.factors.dsr import return_moments
from alphaforge.factors.registry import Registry, deflate
from alphaforge.factors.resolve import FactorInput, resolve_factor
from alphaforge.factors.score import trial_key

F64 = npt.NDArray[np.float64]
__all__ = ["FactorBacktest", "factor_returns", "factor_weights", "run_factor_backtest"]


@dataclass(frozen=True, slots=True)
class FactorBacktest:
    """A factor's long-short backtest: the result, its metrics and what was run.

    Attributes:
        factor: library name or expression text. expr: canonical expression (None for arrays).
        weights: (T, N) target weights. result: the engine's BacktestResult.
        metrics: compute_metrics(result, periods_per_year). settings: every option used
            (with ``lookahead``, the factor's verdict, ``factors.resolve``).
        warnings: what makes the result optimistic (fills that can see the decision bar, an
            unverified precomputed factor); shown by every renderer.
    """

    factor: str
    expr: str | None
    weights: F64
    result: Any
    metrics: dict[str, Any]
    settings: dict[str, Any]
    warnings: tuple[str, ...] = ()
    trials: dict[str, Any] | None = None
    values: F64 | None = None


def run_factor_backtest(
    panel: Panel,
    factor: FactorInput,
    *,
    scheme: str = DEFAULTS.scheme,
    gross: float = DEFAULTS.gross,
    quantile: float = 0.2,
    lag: int = DEFAULTS.lag,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage: Any | None = None,
    slippage_bps: float = DEFAULTS.slippage_bps,
    use_funding: bool = True,
    record_trades: bool = True,
    rebalance_every: int = DEFAULTS.rebalance_every,
    init_cash: float = 1.0,
    available_us: Any | None = None,
    registry: Registry | None = None,
) -> FactorBacktest:
    """Evaluate ``factor`` on ``panel``, turn it into weights and backtest it.

    Execution follows design.md: a decision at row t fills at the open of row t + lag.
    Funding (when the panel has ``funding_paid``) is charged on held positions. With
    ``rebalance_every`` = k > 1, targets are set on every k-th row only and positions are held
    in between (NaN targets). A callable factor is checked for lookahead first and an array
    with ``available_us`` for availability (``factors.resolve``).
    """
    name, expr, values, verdict = resolve_factor(factor, panel, available_us=available_us)
    slippage = slippage_model(slippage, panel, lag, slippage_bps)
    weights = factor_weights(values, panel, scheme=scheme, gross=gross, quantile=quantile,
                             rebalance_every=rebalance_every, lag=lag)  # fmt: skip
    funding = funding_of(panel, use_funding)
    result = run_backtest(
        weights, close=panel["close"], open=panel.fields.get("open"),
        lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps, slippage=slippage,
        funding=funding, record_trades=record_trades, symbols=panel.symbols, init_cash=init_cash,
    )  # fmt: skip
    metrics = compute_metrics(result, panel.periods_per_year)
    settings = {
        "scheme": scheme, "gross": gross, "quantile": quantile, "lag": lag,
        "fee_bps": fee_bps, "slippage_bps": slippage_bps if slippage is None else None,
        "slippage_model": result.meta["slippage"], "funding": funding is not None,
        "rebalance_every": rebalance_every, "lookahead": verdict.detail,
    }  # fmt: skip
    settings["execution"] = describe(settings)
    warns = timing_warnings(lag, "open" in panel)
    if verdict.status == "unverified":
        warns.append(verdict.detail)
    trials = None
    if registry is not None:
        trials = _count_trial(registry, panel, name, expr, values, result.returns, settings)
    return FactorBacktest(name, expr, weights, result, metrics, settings, tuple(warns), trials,
                          values)  # fmt: skip


def _count_trial(registry: Registry, panel: Panel, name: str, expr: str | None, values: F64,
                 returns: F64, settings: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Record the backtest as a trial; its DSR at the study-wide count of trials on this data."""
    sr, n_obs, skew, kurt = return_moments(returns)
    variant = {k: settings[k] for k in ("scheme", "lag", "fee_bps", "slippage_bps",
                                        "rebalance_every")}  # fmt: skip
    registry.record_trial(panel, "backtest", trial_key(name, expr, values, **variant), name=name,
                          sr_per_bar=sr, n_obs=n_obs)  # fmt: skip
    count = registry.trial_count(panel)
    d = deflate(count, {"sr": sr, "n_obs": n_obs, "skew": skew, "kurtosis": kurt},
                panel.periods_per_year)  # fmt: skip
    return {
        "n_trials": count.n_trials,
        "by_kind": count.by_kind,
        "psr": d.get("psr"),
        "dsr": d.get("dsr"),
        "sr_needed_annual": d.get("sr_needed_annual"),
    }


def slippage_model(spec: Any, panel: Panel, lag: int, bps: float) -> Any:
    """A ``Slippage`` from a model name (or the object itself, or None = fixed bps).

    ``"book_walk"`` fills every order against the panel's recorded book in force at execution
    (``panel.book`` shifted to execution rows by ``execution_book``); ``"book_walk:K"`` walks
    the first K levels only. ``"fixed_bps"`` is ``bps`` of notional, ``"none"`` no slippage.

    Raises:
        InputError: book_walk on a panel without a book (the datasets that give one named), or
            an unknown model name.
    """
    if spec is None or not isinstance(spec, str):
        return spec
    name, _, k = spec.partition(":")
    if name == "book_walk":
        if panel.book is None:
            raise InputError(
                "book_walk slippage needs order-book data for the panel's symbols: ingest depth "
                "recordings (depth_updates) or Tardis book_snapshot files, or pull them"
            )
        return Slippage("book_walk", book=execution_book(panel.book, lag),
                        book_levels=int(k or 0))  # fmt: skip
    if name == "fixed_bps":
        return None  # run_backtest's own fixed-bps path (slippage_bps)
    if name == "none":
        return Slippage("none")
    raise InputError(f"unknown slippage model {spec!r}; expected fixed_bps, none, book_walk or "
                     "book_walk:<levels>")  # fmt: skip
