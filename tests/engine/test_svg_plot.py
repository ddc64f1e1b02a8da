"""The report's SVG charts (engine.svg_ticks, engine.svg_plot, engine.report): ticks, thinning,
gaps, escaping, and figures whose marks read back, through their own labelled grid lines, to
the numbers they draw."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.engine.report import ReportInputs, build_report
from alphaforge.engine.svg_plot import Frame, heat_colour, line, thin
from alphaforge.engine.svg_ticks import time_ticks, value_ticks

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_704_067_200_000_000  # 2024-01-01 00:00 UTC, µs
HOUR = 3_600_000_000


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e7, 1e7), st.floats(1e-6, 1e7), st.integers(5, 10))
def test_value_ticks_are_round_evenly_spaced_and_inside(lo: float, span: float, k: int) -> None:
    hi = lo + span
    if hi - lo < abs(lo) * 1e-9:
        return  # below float resolution: not an axis anyone draws
    ticks, labels = value_ticks(lo, hi, k)
    assert 2 <= len(ticks) <= k
    step = ticks[1] - ticks[0]
    assert all(lo - step * 1e-6 <= t <= hi + step * 1e-6 for t in ticks)
    assert np.allclose(np.diff(ticks), step, rtol=1e-6)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(abs(mantissa - m) < 1e-6 for m in (1.0, 2.0, 2.5, 5.0, 10.0))
    assert len(set(labels)) == len(labels)  # the labels resolve the step
    for t, label in zip(ticks, labels, strict=True):
        assert float(label) == pytest.approx(t, abs=step * 0.01, rel=2e-3)


def test_value_tick_labels_carry_the_decimals_of_the_step() -> None:
    assert value_ticks(0.0, 0.001, 6)[1] == ["0", "0.0002", "0.0004", "0.0006", "0.0008",
                                             "0.0010"]  # fmt: skip
    assert value_ticks(-5.3, 5.1, 6)[1] == ["-5.0", "-2.5", "0", "2.5", "5.0"]
    assert value_ticks(2.0, 2.0)[1] == ["2"]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60 * 365 * 24 * 60), st.integers(2, 100 * 365 * 24 * 60))
def test_time_ticks_fall_on_calendar_steps_inside_the_axis(start_min: int, span_min: int) -> None:
    lo = T0 + start_min * 60_000_000
    hi = lo + span_min * 60_000_000
    ticks, labels = time_ticks(lo, hi, 8)
    assert 2 <= len(ticks) <= 8
    assert all(lo <= t <= hi for t in ticks)
    assert all(np.diff(ticks) > 0)
    assert len(set(labels)) == len(labels)
    stamps = [datetime.fromtimestamp(t / 1e6, tz=UTC) for t in ticks]
    assert all(s.second == 0 and s.microsecond == 0 for s in stamps)
    if ticks[1] - ticks[0] >= 28 * 24 * HOUR:  # month steps start months, year labels years
        assert all(s.day == 1 and s.hour == 0 for s in stamps)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=600))
def test_thinning_keeps_each_columns_extremes_and_ends(columns: int, ys: list[float]) -> None:
    py = np.array(ys)
    px = np.sort(np.random.default_rng(len(ys)).uniform(0, 100, py.size))
    kx, ky = thin(px, py, columns)
    assert kx.size <= max(4 * columns, py.size)
    assert (kx[0], kx[-1], ky[0], ky[-1]) == (px[0], px[-1], py[0], py[-1])
    if py.size > 4 * columns:
        col = np.minimum(((px - px[0]) / ((px[-1] - px[0]) or 1.0) * columns).astype(int),
                         columns - 1)  # fmt: skip
        kcol = np.minimum(((kx - px[0]) / ((px[-1] - px[0]) or 1.0) * columns).astype(int),
                          columns - 1)  # fmt: skip
        for c in np.unique(col):
            assert ky[kcol == c].min() == py[col == c].min()
            assert ky[kcol == c].max() == py[col == c].max()
    # every kept point is an input point, in input order
    pos = np.searchsorted(px, kx)
    assert np.array_equal(px[pos], kx)
    assert np.all(np.diff(pos) > 0)


def test_a_line_breaks_at_gaps_and_maps_its_extremes_to_the_frame_edges() -> None:
    f = Frame(10.0, 20.0, 200.0, 100.0, 0.0, 9.0, -1.0, 3.0)
    y = np.array([0.0, 1.0, 3.0, np.nan, np.nan, -1.0, 2.0, np.nan, 1.0, 1.0])
    line(f, np.arange(10.0), y)
    (d,) = re.findall(r'd="([^"]+)"', f.parts[0])
    subpaths = [p for p in d.split("M") if p.strip()]
    assert len(subpaths) == 3  # three finite runs: [0..2], [5..6], [8..9]
    points = [tuple(map(float, xy.split(","))) for xy in re.findall(r"[-\d.]+,[-\d.]+", d)]
    assert np.allclose(points[2], (f.left + 2 / 9 * 200, 20.0), atol=0.05)  # y=3: the top
    assert np.allclose(points[3], (f.left + 5 / 9 * 200, 120.0), atol=0.05)  # y=-1: the bottom
    assert len(points) == 7


def _grid_map(svg: ET.Element) -> tuple[float, float]:
    """(value per px, value at px 0) from the labelled horizontal grid lines of the first plot."""
    ys, vals = [], []
    texts = {round(float(t.get("y")) - 4, 1): t.text for t in svg.iter(f"{SVG}text")
             if t.get("text-anchor") == "end" and t.get("transform") is None}  # fmt: skip
    for ln in svg.iter(f"{SVG}line"):
        if ln.get("stroke") == "#ddd" and round(float(ln.get("y1")), 1) in texts:
            ys.append(float(ln.get("y1")))
            vals.append(float(texts[round(float(ln.get("y1")), 1)]))
    assert len(ys) >= 2
    slope, icept = np.polyfit(ys, vals, 1)
    return float(slope), float(icept)


def _bars(svg: ET.Element) -> list[tuple[float, float, str]]:
    """(value at the rect's top, value at its bottom, tip) of every bar with a tip."""
    slope, icept = _grid_map(svg)
    out = []
    for r in svg.iter(f"{SVG}rect"):
        tip = r.find(f"{SVG}title")
        if tip is not None:
            y, h = float(r.get("y")), float(r.get("height"))
            out.append((slope * y + icept, slope * (y + h) + icept, tip.text or ""))
    return out


def test_the_gap_waterfall_reads_back_to_its_components(tmp_path: Path) -> None:
    parts = {"delay": 1.5, "half_spread": 2.0, "impact": -0.75, "fees": 1.0}
    paths = build_report(ReportInputs(title="g", gap_components=parts), tmp_path)
    svg = ET.parse(paths.figures["gap_waterfall"]).getroot()
    bars = _bars(svg)
    assert [b[2].split(":")[0] for b in bars] == [*parts, "total"]
    running = 0.0
    for (top, bottom, _), v in zip(bars, [*parts.values()], strict=False):
        lo, hi = sorted((running, running + v))
        assert (bottom, top) == (pytest.approx(lo, abs=0.01), pytest.approx(hi, abs=0.01))
        running += v
    assert (bars[-1][1], bars[-1][0]) == (pytest.approx(0, abs=0.01),
                                          pytest.approx(sum(parts.values()), abs=0.01))  # fmt: skip


def test_the_monthly_heat_map_writes_each_months_compounded_return(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 24 * 75  # 75 days of hourly bars from 1 Jan: January, February and half of March
    r = rng.normal(0, 0.01, n)
    eq = np.cumprod(1 + r)
    ts = T0 + HOUR * np.arange(n, dtype=np.int64)
    paths = build_report(ReportInputs(title="m", ts_us=ts, equity=eq, periods_per_year=8760.0,
                                      interval_us=HOUR), tmp_path)  # fmt: skip
    svg = ET.parse(paths.figures["monthly_returns"]).getroot()
    cells = [(r_.get("fill"), r_.find(f"{SVG}title").text) for r_ in svg.iter(f"{SVG}rect")
             if r_.find(f"{SVG}title") is not None]  # fmt: skip
    rets = np.r_[0.0, eq[1:] / eq[:-1] - 1]
    month = (ts // 1000).astype("datetime64[ms]").astype("datetime64[M]")
    want = [np.prod(1 + rets[month == m]) - 1 for m in np.unique(month)]
    assert [c[1] for c in cells] == [f"2024 {m}: {v:.1%}" for m, v in
                                     zip(("Jan", "Feb", "Mar"), want, strict=True)]  # fmt: skip
    for (fill, _), v in zip(cells, want, strict=True):
        red, green = int(fill[1:3], 16), int(fill[3:5], 16)
        assert (green > red) == (v > 0)
    lim = max(abs(v) for v in want)  # the colour scale runs from -lim to +lim
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert f"{-lim:.1%}" in texts
    assert f"{lim:.1%}" in texts


def test_heat_colours_run_red_to_green() -> None:
    assert heat_colour(-1.0, 1.0) == "#d73027"
    assert heat_colour(0.0, 1.0) == "#ffffbf"
    assert heat_colour(5.0, 1.0) == "#1a9850"  # clipped at the scale's end


def test_labels_from_users_are_escaped_and_every_figure_parses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    ts = T0 + HOUR * np.arange(n, dtype=np.int64)
    evil = '<script>alert("x")</script>'
    paths = build_report(ReportInputs(
        title=evil, ts_us=ts, equity=np.cumprod(1 + rng.normal(0, 0.01, n)),
        periods_per_year=8760.0, costs={evil: 1.0}, curves={evil: rng.normal(0, 0.01, n)},
        gap_components={evil: 1.0}, slippage_bps=rng.normal(0, 1, 50),
        turnover=np.full(n, 0.1), ic_series=np.full(n, np.nan)), tmp_path)  # fmt: skip
    html = paths.html.read_text()
    assert "<script>" not in html
    for p in paths.figures.values():
        assert p.suffix == ".svg"
        root = ET.parse(p).getroot()  # well-formed
        assert "<script" not in p.read_text()
        assert root.get("width") == "900" or p.stem == "monthly_returns"
    assert set(paths.figures) >= {"equity_drawdown", "cost_breakdown", "cumulative_returns",
                                  "gap_waterfall", "slippage_distribution", "turnover"}  # fmt: skip


def test_degenerate_series_still_draw(tmp_path: Path) -> None:
    """A flat equity curve, a single turnover value, identical slippages and an all-NaN IC
    series: every figure is drawn with a usable axis (no division by a zero span)."""
    ts = T0 + HOUR * np.arange(2, dtype=np.int64)
    paths = build_report(ReportInputs(title="flat", ts_us=ts, equity=np.ones(2),
                                      turnover=np.array([0.5]), slippage_bps=np.full(9, 2.0),
                                      ic_series=np.full(2, np.nan)), tmp_path)  # fmt: skip
    assert set(paths.figures) == {"equity_drawdown", "turnover", "slippage_distribution",
                                  "ic_over_time"}  # fmt: skip
    for p in paths.figures.values():
        text = p.read_text()
        ET.fromstring(text)
        assert "nan" not in text.lower()
