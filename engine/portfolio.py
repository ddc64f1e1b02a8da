"""Factor values -> target weights -> net returns, under the execution rules every command
shares (engine.defaults, engine.tradable).

``factor_weights`` is the one place that turns (T, N) factor values into the targets a
backtest trades: the weighting scheme, targets on every ``rebalance_every``-th row only (NaN =
hold in between), and no position where it could not be filled or closed (the universe and
tradable mask). ``backtest``, ``report``, ``score``'s long-short block, sweeps (batched, same
rule) and walk-forward all go through it, so the same factor and settings give the same numbers
from every command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.backtest import BacktestResult, run_backtest
from alphaforge.engine.defaults import DEFAULTS
from alphaforge.engine.panel import Panel
from alphaforge.engine.tradable import executable_mask, mask_weights
from alphaforge.engine.weights import weights_from_signals

F64 = npt.NDArray[np.float64]


def factor_weights(values: F64, panel: Panel, *, scheme: str = DEFAULTS.scheme,
                   gross: float = DEFAULTS.gross, quantile: float = 0.2,
                   rebalance_every: int = DEFAULTS.rebalance_every,
                   lag: int = DEFAULTS.lag) -> F64:  # fmt: skip
    """(T, N) target weights of factor values: the scheme, NaN (hold) off the rebalance rows
    (every ``rebalance_every``-th row by absolute row index), no order that cannot fill."""
    if rebalance_every > 1:  # weigh the rebalance rows only (rows are independent)
        rows = np.arange(0, len(values), rebalance_every)
        weights = np.full(np.shape(values), np.nan)
        weights[rows] = weights_from_signals(np.asarray(values)[rows], scheme, gross=gross,
                                             quantile=quantile)  # fmt: skip
    else:
        weights = weights_from_signals(values, scheme, gross=gross, quantile=quantile)
    mask_weights(weights, executable_mask(panel, lag))
    return weights


def funding_of(panel: Panel, use_funding: bool = True) -> F64 | None:
    """The per-bar funding paid on held positions (``funding_paid``), when the panel has it."""
    return panel["funding_paid"] if use_funding and "funding_paid" in panel else None


def weights_backtest(weights: F64, panel: Panel, *, lag: int = DEFAULTS.lag,
                     fee_bps: float = DEFAULTS.fee_bps,
                     slippage_bps: float = DEFAULTS.slippage_bps, use_funding: bool = True,
                     **kw: Any) -> BacktestResult:  # fmt: skip
    """``run_backtest`` of (T, N) weights on the panel's prices with its funding."""
    funding = funding_of(panel, use_funding)
    return run_backtest(weights, close=panel["close"], open=panel.fields.get("open"), lag=lag,
                        fee_bps=fee_bps, slippage_bps=slippage_bps, funding=funding,
                        symbols=panel.symbols, **kw)  # fmt: skip


def factor_returns(values: F64, panel: Panel, *, scheme: str = DEFAULTS.scheme,
                   lag: int = DEFAULTS.lag, fee_bps: float = DEFAULTS.fee_bps,
                   slippage_bps: float = DEFAULTS.slippage_bps,
                   rebalance_every: int = DEFAULTS.rebalance_every,
                   use_funding: bool = True) -> F64:  # fmt: skip
    """(T,) net per-bar returns of the portfolio of (T, N) factor values on ``panel``, started
    flat at its first row (the same weights and costs as ``alphaforge backtest``)."""
    w = factor_weights(values, panel, scheme=scheme, rebalance_every=rebalance_every, lag=lag)
    res = weights_backtest(w, panel, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
                           use_funding=use_funding)  # fmt: skip
    return np.asarray(res.returns, dtype=np.float64)


def breakeven_bps(mean_gross_per_bar: float, turnover_per_bar: float) -> float:
    """The cost per unit of traded notional (bps) at which a portfolio earns nothing: mean gross
    per-bar return / mean per-bar one-way turnover x 1e4 (NaN without turnover)."""
    return mean_gross_per_bar / turnover_per_bar * 1e4 if turnover_per_bar > 0 else math.nan


def edge_kept(breakeven: float, cost_bps: float) -> float:
    """The share of the gross edge left after paying ``cost_bps`` per trade (1: free trading,
    0: costs eat it all, < 0: costs exceed it); NaN without a positive break-even."""
    return 1.0 - cost_bps / breakeven if breakeven > 0 else math.nan


@dataclass(frozen=True, slots=True)
class LongShort:
    """A factor's rank long-short portfolio at gross 1, run without costs and with them.

    Attributes:
        gross, net: the engine's BacktestResults. turnover_per_bar: one-way turnover of the
            gross run per bar. mean_gross: its mean per-bar return (finite bars).
        breakeven_bps, edge_kept: see ``breakeven_bps`` and ``edge_kept``.
    """

    gross: BacktestResult
    net: BacktestResult
    turnover_per_bar: float
    mean_gross: float
    breakeven_bps: float
    edge_kept: float


def long_short(values: F64, panel: Panel, *, lag: int = DEFAULTS.lag,
               fee_bps: float = DEFAULTS.fee_bps, slippage_bps: float = DEFAULTS.slippage_bps,
               rebalance_every: int = DEFAULTS.rebalance_every) -> LongShort:  # fmt: skip
    """The rank long-short portfolio of (T, N) factor values, as ``score`` and the library
    ranking report it: the same weights as ``alphaforge backtest --scheme rank``, run gross
    and net of ``fee_bps + slippage_bps``."""
    w = factor_weights(values, panel, scheme="rank", gross=1.0, lag=lag,
                       rebalance_every=rebalance_every)  # fmt: skip
    gross = weights_backtest(w, panel, lag=lag, fee_bps=0.0, slippage_bps=0.0)
    net = weights_backtest(w, panel, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps)
    turn = float(gross.turnover) / max(len(gross.returns), 1)
    r = np.asarray(gross.returns, dtype=np.float64)
    ok = np.isfinite(r)
    mean_gross = float(r[ok].mean()) if ok.any() else math.nan
    be = breakeven_bps(mean_gross, turn)
    return LongShort(gross, net, turn, mean_gross, be, edge_kept(be, fee_bps + slippage_bps))
