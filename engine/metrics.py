"""Performance metrics of per-bar simple returns, with explicit annualization.

Every function takes returns of shape (T,) or (T, K) (one column per parameter set) and works
along axis 0, returning a float or a (K,) array. ``periods_per_year`` is always explicit: bars
per 365-day year (``Panel.periods_per_year``, or ``periods_per_year_from_interval``); there is
no 252 default.

NaN policy (all metrics): NaN returns are skipped, never zero-filled (compounding metrics
treat a NaN bar as "no change", as empyrical does); fewer than 2 valid values gives NaN; zero
variance gives +-inf or NaN as empyrical does.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.errors import OptionError

F64 = npt.NDArray[np.float64]
US_PER_YEAR = 365 * 86_400 * 1_000_000


def periods_per_year_from_interval(interval_us: int) -> float:
    """Bars per 365-day year for a bar length in microseconds (1m -> 525,600)."""
    if interval_us <= 0:
        raise OptionError(f"interval_us must be positive; got {interval_us}")
    return US_PER_YEAR / interval_us


def _check_ppy(periods_per_year: float) -> float:
    if not (
        isinstance(periods_per_year, int | float)
        and math.isfinite(periods_per_year)
        and periods_per_year > 0
    ):
        raise OptionError(f"periods_per_year must be a positive number; got {periods_per_year!r}")
    return float(periods_per_year)


def _out(x: np.ndarray) -> Any:
    return x.item() if x.ndim == 0 else x


def _valid_count(r: F64) -> np.ndarray:
    return np.asarray(np.sum(~np.isnan(r), axis=0))


def total_return(returns: F64) -> Any:
    """Compounded return over the whole period.

    Formula: prod(1 + r) - 1.
    NaN: NaN bars count as 0 return; no valid value gives NaN.
    """
    r = np.asarray(returns, dtype=np.float64)
    out = np.prod(1.0 + np.nan_to_num(r, nan=0.0), axis=0) - 1.0
    return _out(np.where(_valid_count(r) > 0, out, np.nan))


def cagr(returns: F64, periods_per_year: float) -> Any:
    """Compound annual growth rate (empyrical ``annual_return``).

    Formula: (prod(1 + r)) ** (ppy / T) - 1, T = number of bars (NaN bars included).
    NaN: as total_return.
    """
    ppy = _check_ppy(periods_per_year)
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 1:
        return math.nan
    growth = 1.0 + np.asarray(total_return(r))
    with np.errstate(
        invalid="ignore", divide="ignore", over="ignore"
    ):  # +inf: too good to annualise
        out = np.power(growth, ppy / r.shape[0]) - 1.0
    return _out(np.asarray(out))


def annual_volatility(returns: F64, periods_per_year: float) -> Any:
    """Annualized standard deviation of returns.

    Formula: std(r, ddof=1) * sqrt(ppy).
    NaN: skipped; fewer than 2 valid values gives NaN.
    """
    ppy = _check_ppy(periods_per_year)
    r = np.asarray(returns, dtype=np.float64)
    return _out(_nanstd(r) * math.sqrt(ppy))


def _nanstd(r: F64) -> np.ndarray:
    """Sample std (ddof=1) skipping NaN; exactly 0 for constant columns (no 1e-18 residue
    from the floating-point mean, which would turn an infinite ratio into ~1e16)."""
    n = _valid_count(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nansum(r, axis=0) / n
        ss = np.nansum((r - mu) ** 2, axis=0)
        sd = np.sqrt(ss / (n - 1))
    if r.shape[0]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            constant = np.nanmax(r, axis=0) == np.nanmin(r, axis=0)
        sd = np.where(constant, 0.0, sd)
    return np.where(n >= 2, sd, np.nan)


def sharpe_ratio(returns: F64, periods_per_year: float, risk_free: float = 0.0) -> Any:
    """Annualized Sharpe ratio.

    Formula: mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy); rf is per bar.
    NaN: skipped; fewer than 2 valid values gives NaN; zero std gives +-inf (NaN if mean 0).
    """
    ppy = _check_ppy(periods_per_year)
    r = np.asarray(returns, dtype=np.float64) - risk_free
    n = _valid_count(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nansum(r, axis=0) / n
        out = mu / _nanstd(r) * math.sqrt(ppy)
    return _out(np.where(n >= 2, out, np.nan))


def downside_risk(returns: F64, periods_per_year: float, required_return: float = 0.0) -> Any:
    """Annualized downside deviation below ``required_return`` (per bar).

    Formula: sqrt(mean(min(r - req, 0) ** 2)) * sqrt(ppy).
    NaN: skipped; no valid value gives NaN.
    """
    ppy = _check_ppy(periods_per_year)
    r = np.asarray(returns, dtype=np.float64) - required_return
    d = np.minimum(r, 0.0)
    n = _valid_count(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(np.nansum(d * d, axis=0) / n) * math.sqrt(ppy)
    return _out(np.where(n >= 1, out, np.nan))


def sortino_ratio(returns: F64, periods_per_year: float, required_return: float = 0.0) -> Any:
    """Annualized Sortino ratio.

    Formula: mean(r - req) * ppy / downside_risk(r, ppy, req).
    NaN: skipped; fewer than 2 valid values gives NaN; no downside gives +inf (NaN if mean 0).
    """
    ppy = _check_ppy(periods_per_year)
    r = np.asarray(returns, dtype=np.float64)
    n = _valid_count(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.nansum(r - required_return, axis=0) / n
        out = mu * ppy / np.asarray(downside_risk(r, ppy, required_return))
    return _out(np.where(n >= 2, out, np.nan))


def drawdown_series(returns: F64) -> F64:
    """Drawdown after each bar, relative to the running peak of equity (starting at 1).

    Formula: E_t = prod_{s<=t}(1 + r_s), E_{-1} = 1; dd_t = E_t / max(E_{-1..t}) - 1 (<= 0).
    NaN: NaN bars count as 0 return.
    """
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    eq = np.cumprod(1.0 + r, axis=0)
    peak = np.maximum(np.maximum.accumulate(eq, axis=0), 1.0)
    return np.asarray(eq / peak - 1.0)


def max_drawdown(returns: F64) -> Any:
    """Largest peak-to-trough loss, a number <= 0 (empyrical ``max_drawdown``).

    Formula: min_t dd_t (see drawdown_series). NaN: empty input gives NaN.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 1:
        return math.nan
    return _out(np.min(drawdown_series(r), axis=0))


def max_drawdown_duration(returns: F64) -> Any:
    """Longest run of bars spent below a previous equity peak (recovered or not), in bars.

    NaN: NaN bars count as 0 return (they extend a drawdown).
    """
    dd = drawdown_series(returns)
    under = dd < 0
    flat = under.reshape(under.shape[0], -1)
    out = np.zeros(flat.shape[1], dtype=np.int64)
    for k in range(flat.shape[1]):
        col = flat[:, k].astype(np.int8)
        if not col.any():
            continue
        padded = np.concatenate(([0], col, [0]))
        edges = np.diff(padded)
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        out[k] = int((ends - starts).max())
    return out[0].item() if under.ndim == 1 else out


def calmar_ratio(returns: F64, periods_per_year: float) -> Any:
    """CAGR over the absolute maximum drawdown (empyrical ``calmar_ratio``).

    Formula: cagr(r, ppy) / |max_drawdown(r)|.
    NaN: NaN when there is no drawdown or the ratio is infinite.
    """
    mdd = np.asarray(max_drawdown(returns))
    growth = np.asarray(cagr(returns, periods_per_year))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(mdd < 0, growth / np.abs(mdd), np.nan)
    return _out(np.where(np.isinf(out), np.nan, out))


def hit_rate(returns: F64) -> Any:
    """Fraction of bars with a positive return among bars with a non-zero return.

    NaN: skipped; no non-zero bar gives NaN.
    """
    r = np.asarray(returns, dtype=np.float64)
    pos = np.sum(r > 0, axis=0)
    nz = np.sum((r != 0) & ~np.isnan(r), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(nz > 0, pos / nz, np.nan))


METRIC_NAMES = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration",
    "calmar",
    "hit_rate",
    "turnover_per_bar",
    "annual_turnover",
    "exposure",
    "fees",
    "slippage",
    "funding",
    "n_fills",
)


def compute_metrics(result: Any, periods_per_year: float) -> dict[str, Any]:
    """Every metric of a BacktestResult (single run: floats; batch: (K,) arrays).

    Turnover: one-way traded notional / equity, averaged per bar and annualized (x ppy).
    Costs (fees, slippage, funding) are in quote currency.
    """
    ppy = _check_ppy(periods_per_year)
    r = result.returns
    t_len = r.shape[0]
    return {
        "total_return": total_return(r),
        "cagr": cagr(r, ppy),
        "annual_volatility": annual_volatility(r, ppy),
        "sharpe": sharpe_ratio(r, ppy),
        "sortino": sortino_ratio(r, ppy),
        "max_drawdown": max_drawdown(r),
        "max_drawdown_duration": max_drawdown_duration(r),
        "calmar": calmar_ratio(r, ppy),
        "hit_rate": hit_rate(r),
        "turnover_per_bar": _out(np.asarray(result.turnover) / max(t_len, 1)),
        "annual_turnover": _out(np.asarray(result.turnover) / max(t_len, 1) * ppy),
        "exposure": result.exposure,
        "fees": result.fees,
        "slippage": result.slippage,
        "funding": result.funding,
        "n_fills": result.n_fills,
    }
