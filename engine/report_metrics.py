"""Which backtest figures a report may show for the span it covers, and how they are labelled.

A figure annualised from too short a span reads as a forecast: -100 % CAGR "per year" from 15
hours of a losing strategy, or a rolling Sharpe of +300 from one afternoon. The rules
(``SPAN_RULES``), by the span from the first to the end of the last bar:

- at least 365 days: every figure, annualised ones included (CAGR, annual volatility, Sharpe,
  Sortino, Calmar, annual turnover);
- 30 to 365 days: ratios that scale with the square root of time (Sharpe, Sortino, annual
  volatility) and annual turnover stay annualised and say so; CAGR and Calmar (which compound
  a part of a year into a whole one) are replaced by the return over the period;
- under 30 days: no annualised figure at all: return, volatility and Sharpe over the period
  (mean / std x sqrt(bars)), turnover per day.

Rolling windows (``rolling_window``) are whole calendar lengths that fit the span at least four
times with at least 30 bars each: a 30-day rolling Sharpe on hourly bars, a one-day rolling
return on one-minute bars over a week. Calendar heat maps need at least two months of data
(``heat_map_ok``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

DAY_US = 86_400_000_000
SPAN_RULES = {"annualised": 365, "ratios_only": 30}
"""Days of data from which every annualised figure, or only square-root-of-time ratios, show."""
ROLLING_DAYS = (1, 7, 30, 90, 365)


def span_us(ts_us: npt.ArrayLike, interval_us: int | None) -> int:
    """From the first bar's start to the last bar's end, µs (row times are bar closes)."""
    ts = np.asarray(ts_us, dtype=np.int64)
    if ts.size == 0:
        return 0
    step = int(interval_us or (np.median(np.diff(ts)) if ts.size > 1 else 0))
    return int(ts[-1] - ts[0]) + step


def span_text(us: int) -> str:
    """'15 hours', '6.5 days', '3.1 months', '2.4 years'."""
    days = us / DAY_US
    if days < 2:
        return f"{us / 3_600_000_000:.3g} hours"
    if days < 60:
        return f"{days:.3g} days"
    if days < 730:
        return f"{days / 30.44:.3g} months"
    return f"{days / 365.25:.3g} years"


def metric_rows(metrics: Mapping[str, Any], returns: npt.ArrayLike, span: int,
                periods_per_year: float) -> list[tuple[str, Any]]:  # fmt: skip
    """(label, value) rows of a backtest's metrics, annualised only as the span allows.

    Args:
        metrics: ``engine.metrics.compute_metrics`` of the run.
        returns: (T,) per-bar net returns (for the over-the-period figures).
        span: µs covered (``span_us``). periods_per_year: bars per year.
    """
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    days = span / DAY_US
    period = span_text(span)
    rows: list[tuple[str, Any]] = [(f"return over the period ({period})",
                                    metrics.get("total_return"))]  # fmt: skip
    if days >= SPAN_RULES["annualised"]:
        rows += [("CAGR", metrics.get("cagr")), ("Calmar", metrics.get("calmar"))]
    if days >= SPAN_RULES["ratios_only"]:
        rows += [("Sharpe (annualised)", metrics.get("sharpe")),
                 ("Sortino (annualised)", metrics.get("sortino")),
                 ("volatility (annualised)", metrics.get("annual_volatility")),
                 ("turnover (annualised, x equity)", metrics.get("annual_turnover"))]  # fmt: skip
    else:
        n = r.size
        sd = float(np.std(r, ddof=1)) if n > 1 else math.nan
        sr = float(np.mean(r)) / sd * math.sqrt(n) if n > 1 and sd > 0 else math.nan
        per_day = (metrics.get("turnover_per_bar") or math.nan) * periods_per_year / 365.0
        rows += [(f"Sharpe over the period ({period}, not annualised)", sr),
                 (f"volatility over the period ({period})",
                  sd * math.sqrt(n) if n > 1 else math.nan),
                 ("turnover per day (x equity)", per_day)]  # fmt: skip
    rows += [("max drawdown", metrics.get("max_drawdown")),
             ("max drawdown duration (bars)", metrics.get("max_drawdown_duration")),
             ("hit rate (bars with a gain)", metrics.get("hit_rate")),
             ("exposure (share of bars invested)", metrics.get("exposure")),
             ("fills", metrics.get("n_fills"))]  # fmt: skip
    return rows


def rolling_window(n_bars: int, interval_us: int | None) -> tuple[int, int] | None:
    """(bars, days) of the rolling window for a run of ``n_bars`` bars, or None when no whole
    calendar window fits four times with at least 30 bars each."""
    if not interval_us or n_bars < 2:
        return None
    best = None
    for days in ROLLING_DAYS:
        bars = int(days * DAY_US // interval_us)
        if bars >= 30 and n_bars >= 4 * bars:
            best = (bars, days)
    return best


def heat_map_ok(ts_us: npt.ArrayLike, span: int) -> bool:
    """At least two calendar months touched and 60 days of data."""
    ts = np.asarray(ts_us, dtype=np.int64)
    if ts.size == 0:
        return False
    months = np.unique((ts // 1000).astype("datetime64[ms]").astype("datetime64[M]"))
    return months.size >= 2 and span >= 60 * DAY_US
