"""Reports show annualised figures, rolling windows and heat maps only where the span supports
them (engine.report_metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alphaforge.engine.report import ReportInputs, build_report
from alphaforge.engine.report_metrics import (
    DAY_US,
    heat_map_ok,
    metric_rows,
    rolling_window,
    span_text,
    span_us,
)

HOUR = 3_600_000_000
METRICS = {"total_return": -0.02, "cagr": -1.0, "sharpe": -89.0, "sortino": -90.0,
           "annual_volatility": 0.3, "calmar": -3.0, "annual_turnover": 5000.0,
           "turnover_per_bar": 0.5, "max_drawdown": -0.03, "max_drawdown_duration": 10,
           "hit_rate": 0.4, "exposure": 1.0, "n_fills": 100}  # fmt: skip


def _labels(days: float, ppy: float = 525_600.0) -> list[str]:
    r = np.random.default_rng(0).normal(0, 1e-3, 100)
    return [k for k, _ in metric_rows(METRICS, r, int(days * DAY_US), ppy)]


def test_short_spans_show_period_figures_only() -> None:
    short = _labels(15 / 24)
    assert not [k for k in short if "(annualised" in k or k in ("CAGR", "Calmar")]
    assert "return over the period (15 hours)" in short
    assert "Sharpe over the period (15 hours, not annualised)" in short
    mid = _labels(90)
    assert "Sharpe (annualised)" in mid
    assert "CAGR" not in mid  # compounding 3 months into a year is extrapolation
    full = _labels(400)
    assert {"CAGR", "Calmar", "Sharpe (annualised)"} <= set(full)


def test_period_sharpe_is_mean_over_std_times_sqrt_n() -> None:
    r = np.random.default_rng(1).normal(1e-4, 1e-3, 500)
    rows = dict(metric_rows(METRICS, r, 2 * DAY_US, 525_600.0))
    want = r.mean() / r.std(ddof=1) * np.sqrt(r.size)
    assert rows["Sharpe over the period (2 days, not annualised)"] == pytest.approx(want)


@pytest.mark.parametrize(("n_bars", "step", "want"), [
    (900, 60_000_000, None),  # 15 hours of 1m bars: no whole window fits 4 times
    (10_080, 60_000_000, (1440, 1)),  # a week of 1m bars: 1-day windows
    (24 * 200, HOUR, (720, 30)),  # 200 days of 1h bars: 30-day windows
    (800, 86_400_000_000, (90, 90)),  # 800 daily bars: 90-day windows
])  # fmt: skip
def test_rolling_window_fits_the_bar_size(n_bars: int, step: int, want: tuple | None) -> None:
    assert rolling_window(n_bars, step) == want


def test_heat_map_needs_two_months() -> None:
    ts = 1_704_067_200_000_000 + HOUR * np.arange(24 * 20, dtype=np.int64)  # 20 days
    assert not heat_map_ok(ts, span_us(ts, HOUR))
    ts = 1_704_067_200_000_000 + HOUR * np.arange(24 * 70, dtype=np.int64)
    assert heat_map_ok(ts, span_us(ts, HOUR))
    assert span_text(span_us(ts, HOUR)) == "2.3 months"


def test_a_15_hour_report_draws_no_calendar_and_no_annualised_figure(tmp_path: Path) -> None:
    t = 900
    ts = 1_704_067_200_000_000 + 60_000_000 * np.arange(1, t + 1, dtype=np.int64)
    eq = np.cumprod(1 + np.random.default_rng(2).normal(-1e-4, 1e-3, t))
    paths = build_report(ReportInputs(title="short", ts_us=ts, equity=eq, interval_us=60_000_000,
                                      periods_per_year=525_600.0, metrics=METRICS),
                         tmp_path)  # fmt: skip
    assert set(paths.figures) == {"equity_drawdown"}
    doc = json.loads(paths.json.read_text())
    assert doc["span"] == "15 hours"
    assert not [k for k in doc["performance"] if "(annualised" in k or k == "CAGR"]
    html = paths.html.read_text()
    assert "<th>metric</th><th>value</th>" in html  # no blank headers
    assert "-100" not in html
