"""The pieces of a factor score, each a plain function over arrays (used by factors.score).

Every function returns plain dicts of floats so ``FactorScore`` stays JSON-friendly.
Definitions (documented once here, shown by ``alphaforge score``):

- IC / RankIC per horizon h: per-row cross-sectional Pearson / Spearman correlation of the
  factor at row t with the forward return ``exec_px[t+h] / exec_px[t] - 1`` (see
  factors.returns), summarized by ``factors.ic.ic_summary`` (mean, std, ICIR, t-stat).
- quantile returns: per row, equal-count bins of the factor (pandas.qcut, alphalens'
  default), mean forward return per bin; then the mean over rows. spread = top - bottom bin;
  spread_per_bar = spread / h.
- decay: RankIC of the factor at t with the single-bar return ``h`` bars after entry,
  ``exec_px[t+h] / exec_px[t+h-1] - 1``: how much of the signal is left h bars later.
  half_life: least-squares fit of decay(h) = a * exp(-lam * h), ln 2 / lam (factors.ic.half_life).
- turnover: mean lag-1 rank autocorrelation of the factor; mean share of the top / bottom
  bin's members that are new each row (alphalens quantile_turnover).
- backtest: rank long-short weights (scheme "rank", gross 1) by the rules every backtesting
  command shares (engine.portfolio.factor_weights: rebalance rows, universe, flat by the last
  tradable bar; funding when the panel has it), run through engine.backtest with the same lag,
  once without costs (gross) and once with fee_bps and slippage_bps (net), so its figures
  equal ``alphaforge backtest --scheme rank`` with the same settings; metrics from
  engine.metrics.
- costs: breakeven_bps = mean gross per-bar return / mean per-bar one-way turnover * 1e4,
  the cost per unit of traded notional at which the long-short earns nothing;
  edge_kept = 1 - cost_bps / breakeven_bps with cost_bps = fee_bps + slippage_bps: the share
  of the gross edge left after costs (1: free trading, 0: costs eat it all, negative: costs
  exceed it); NaN when breakeven_bps <= 0 (no gross edge to keep).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.defaults import DEFAULTS, describe
from alphaforge.engine.metrics import compute_metrics
from alphaforge.engine.panel import Panel
from alphaforge.engine.portfolio import long_short
from alphaforge.factors import ic
from alphaforge.factors.dsr import deflated_sharpe_ratio
from alphaforge.factors.returns import execution_prices, forward_returns

F64 = npt.NDArray[np.float64]


def _f(x: Any) -> float:
    return float(x) if x is not None else math.nan


def _nanmean(x: F64) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else math.nan


def ic_block(
    factor: F64,
    panel: Panel,
    horizons: Sequence[int],
    lag: int,
    quantiles: int,
    min_obs: int,
) -> dict[str, Any]:
    """IC / RankIC summaries, quantile mean returns and spreads for every horizon.

    One horizon at a time, so memory stays at a few (T, N) arrays however many horizons.
    """
    ppy = panel.periods_per_year if panel.interval_us else None
    out: dict[str, Any] = {"ic": {}, "rank_ic": {}, "quantile_returns": {}, "spread": {}}
    order = ic.argsort_rows(factor)
    for i, h in enumerate(horizons):
        fwd = forward_returns(panel, (h,), lag)
        cs = ic.cross_section(factor, fwd, quantiles=quantiles, min_obs=min_obs, f_order=order)
        if i == 0:
            out["rank_ic_series_h1"] = cs.rank_ic[0]
            out["fwd1"] = fwd[0]
        out["ic"][h] = ic.ic_summary(cs.ic[0], h, ppy)
        out["rank_ic"][h] = ic.ic_summary(cs.rank_ic[0], h, ppy)
        qm = cs.qmean[0]
        means = [_nanmean(qm[:, k]) for k in range(quantiles)]
        out["quantile_returns"][h] = means
        spread_rows = qm[:, -1] - qm[:, 0]
        s = ic.ic_summary(spread_rows, h)
        out["spread"][h] = {
            "mean": s["mean"],
            "per_bar": s["mean"] / h,
            "t_stat": s["t_stat"],
        }
    return out


def decay_block(
    factor: F64, panel: Panel, horizons: Sequence[int], lag: int, min_obs: int
) -> dict[str, Any]:
    """RankIC with the single bar h bars after entry, per horizon, and its half-life."""
    px = execution_prices(panel, lag)
    order = ic.argsort_rows(factor)
    values = {}
    for h in horizons:
        r = ic.marginal_returns(px, h)
        values[h] = _nanmean(ic.cs_ic(factor, r, "spearman", min_obs, f_order=order))
    return {"decay": values, "half_life": ic.half_life(list(values), list(values.values()))}


def turnover_block(factor: F64, quantiles: int, min_obs: int) -> dict[str, float]:
    """Mean rank autocorrelation (lag 1) and top/bottom quantile turnover."""
    bins = ic.quantile_bins(factor, quantiles, min_obs)
    return {
        "rank_autocorr": _nanmean(ic.rank_autocorrelation(factor, 1, min_obs)),
        "turnover_top": _nanmean(ic.quantile_turnover(bins, quantiles - 1, 1)),
        "turnover_bottom": _nanmean(ic.quantile_turnover(bins, 0, 1)),
    }


def ts_block(factor: F64, fwd1: F64, symbols: Sequence[str]) -> dict[str, float]:
    """Whole-period time-series RankIC per asset (single-asset research)."""
    vals = ic.ts_ic(factor, fwd1, "spearman", min_obs=10)
    return {s: float(v) for s, v in zip(symbols, vals, strict=True)}


def backtest_block(
    factor: F64,
    panel: Panel,
    lag: int,
    fee_bps: float,
    slippage_bps: float,
    n_trials: int,
    var_trials: float | None,
    rebalance_every: int = DEFAULTS.rebalance_every,
) -> dict[str, Any]:
    """Long-short backtest through the engine (gross and net), costs and Deflated Sharpe."""
    ls = long_short(factor, panel, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
                    rebalance_every=rebalance_every)  # fmt: skip
    gross, net = ls.gross, ls.net
    ppy = panel.periods_per_year
    m_net = compute_metrics(net, ppy)
    m_gross = compute_metrics(gross, ppy)
    keys = ("sharpe", "sortino", "max_drawdown", "total_return", "annual_volatility", "cagr")
    bt = {k: _f(m_net[k]) for k in keys}
    bt.update(
        gross_sharpe=_f(m_gross["sharpe"]),
        turnover_per_bar=ls.turnover_per_bar,
        annual_turnover=_f(m_net["annual_turnover"]),
        fees=_f(m_net["fees"]),
        slippage=_f(m_net["slippage"]),
    )
    costs = {
        "fee_bps": float(fee_bps),
        "slippage_bps": float(slippage_bps),
        "breakeven_bps": ls.breakeven_bps,
        "edge_kept": ls.edge_kept,
        "rebalance_every": int(rebalance_every),
        "execution": describe(
            {
                "scheme": "rank",
                "gross": 1.0,
                "lag": lag,
                "fee_bps": fee_bps,
                "slippage_bps": slippage_bps,
                "rebalance_every": rebalance_every,
            }
        ),
        "mean_gross_return_per_bar": ls.mean_gross,
        "mean_net_return_per_bar": _nanmean(net.returns),
    }
    dsr = deflated_sharpe_ratio(net.returns, n_trials=n_trials, var_trials=var_trials)
    return {"backtest": bt, "costs": costs, "dsr": dsr.to_dict(), "net_returns": net.returns}


def redundancy_block(factor: F64, others: Mapping[str, F64], min_obs: int) -> dict[str, float]:
    """Mean per-row cross-sectional rank correlation of the factor with each other factor."""
    out = {}
    for name, g in others.items():
        out[name] = _nanmean(ic.cs_ic(factor, g, "spearman", min_obs))
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1]) if math.isfinite(kv[1]) else 0))
