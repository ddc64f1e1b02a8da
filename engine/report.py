"""Reports: a self-contained HTML tear sheet (figures inline) and the same figures as SVG files.

``build_report(inputs, out_dir)`` draws every figure for which ``ReportInputs`` carries data
(equity and drawdown, monthly returns heat map, rolling Sharpe, IC over time, IC decay,
quantile returns, turnover, cost breakdown, slippage distribution, gap waterfall) and writes
``report.html`` (opens offline: the figures are inline SVG, with hover tips on bars and cells)
plus one ``.svg`` per figure and ``report.json`` (every number shown). engine.report_figures
draws the figures with engine.svg_plot, without a plotting library: matplotlib's import and
layout had cost about 1.6 s per report. Inputs are plain arrays and dicts, so this module
needs neither data/ nor factors/; the pipeline converts their objects.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine import report_figures
from alphaforge.engine.formatting import fmt, json_safe
from alphaforge.engine.report_metrics import (
    metric_rows,
    span_text,
    span_us,
)

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """What a report can show; every part is optional except the title.

    Attributes:
        title: heading of the tear sheet.
        ts_us: (T,) int64 UTC µs row times of the backtest.
        equity: (T,) equity curve (quote currency). periods_per_year: annualization basis.
        metrics: name -> value table of the backtest.
        turnover: (T,) traded notional / equity per row.
        costs: cost name -> total paid (fees, slippage, funding ...), quote currency.
        slippage_bps: per-fill slippage in bps of the arrival price.
        ic_series: (T,) per-timestamp RankIC of the factor; ic_decay: horizon -> mean RankIC.
        quantile_returns: bin -> mean forward return (lowest factor first).
        gap_components: component -> contribution to the backtest-vs-live gap (bps).
        quality_html: an HTML fragment (the data-quality section) shown as is.
        sections: extra (title, mapping) tables to show.
        notes: free text lines (e.g. "SYNTHETIC market").
        warnings: what makes the numbers optimistic (fills that see the decision bar, an
            unverified factor, a trial count); shown in a box above everything else.
        curves: label -> (T,) per-bar returns (NaN = not in that curve) drawn together as
            cumulative returns on the ``ts_us`` axis (e.g. in-sample vs out-of-sample).
        tables: (title, column names, rows) tables shown after the figures.
        interval_us: bar length; with ``ts_us`` it decides which figures the span supports
            (engine.report_metrics: annualised figures, rolling windows, the heat map).
        returns: (T,) per-bar net returns (default: from ``equity``).
        top_sections: (title, mapping) tables shown right after the performance table (costs,
            research honesty); ``sections`` come after the figures.
    """

    title: str
    ts_us: npt.NDArray[np.int64] | None = None
    equity: F64 | None = None
    periods_per_year: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    turnover: F64 | None = None
    costs: Mapping[str, float] = field(default_factory=dict)
    slippage_bps: F64 | None = None
    ic_series: F64 | None = None
    ic_decay: Mapping[int, float] = field(default_factory=dict)
    quantile_returns: Sequence[float] = ()
    gap_components: Mapping[str, float] = field(default_factory=dict)
    quality_html: str | None = None
    sections: Sequence[tuple[str, Mapping[str, Any]]] = ()
    notes: Sequence[str] = ()
    warnings: Sequence[str] = ()
    curves: Mapping[str, F64] = field(default_factory=dict)
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = ()
    interval_us: int | None = None
    returns: F64 | None = None
    top_sections: Sequence[tuple[str, Mapping[str, Any]]] = ()

    @property
    def span(self) -> int:
        """µs covered by the rows (0 without times)."""
        return 0 if self.ts_us is None else span_us(self.ts_us, self.interval_us)

    @property
    def step_us(self) -> int | None:
        """The bar length: ``interval_us`` or the median spacing of ``ts_us``."""
        if self.interval_us:
            return int(self.interval_us)
        if self.ts_us is None or len(self.ts_us) < 2:
            return None
        return int(np.median(np.diff(np.asarray(self.ts_us, dtype=np.int64))))


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where ``build_report`` wrote its files."""

    html: Path
    json: Path
    figures: Mapping[str, Path]


FIGURE_TITLES = {
    "equity_drawdown": "Equity and drawdown", "monthly_returns": "Monthly returns",
    "rolling_sharpe": "Rolling performance", "ic_over_time": "RankIC over time",
    "ic_decay": "IC decay by horizon", "quantile_returns": "Returns by factor quantile",
    "turnover": "Turnover", "cost_breakdown": "Costs paid", "slippage_distribution":
    "Slippage per fill", "gap_waterfall": "Backtest vs live", "cumulative_returns":
    "Cumulative returns",
}  # fmt: skip


def _metric_rows(inputs: ReportInputs) -> list[tuple[str, Any]]:
    """The metrics as the span allows (engine.report_metrics), or as given without times."""
    if inputs.ts_us is None or not inputs.periods_per_year:
        return list(inputs.metrics.items())
    returns = report_figures.bar_returns(inputs)
    return metric_rows(inputs.metrics, returns, inputs.span, inputs.periods_per_year)


def _rows_html(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)  # fmt: skip
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _table_html(title: str, values: Mapping[str, Any] | Sequence[tuple[str, Any]],
                headers: tuple[str, str] = ("", "value")) -> str:  # fmt: skip
    items = list(values.items()) if isinstance(values, Mapping) else list(values)
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt(v))}</td></tr>" for k, v in items
    )
    head = "".join(f"<th>{html.escape(h or 'item')}</th>" for h in headers)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{rows}</table>"


_CSS = ("body{font-family:sans-serif;max-width:980px;margin:auto;padding:1em}"
        "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 8px}"
        "figure{margin:0.5em 0}figure svg{max-width:100%;height:auto;display:block}"
        ".note{color:#a00}"
        ".warning{background:#fee;border:1px solid #c00;padding:0.4em;"
        "font-weight:bold}")  # fmt: skip


def build_report(inputs: ReportInputs, out_dir: str | Path) -> ReportPaths:
    """Draw every available figure and write report.html, report.json and the SVG figures.

    Args:
        inputs: what to show. out_dir: created if missing.

    Returns:
        ReportPaths with the HTML, JSON and figure (``<name>.svg``) paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    parts = [f"<h1>{html.escape(inputs.title)}</h1>"]
    parts += [f'<p class="warning">WARNING: {html.escape(w)}</p>' for w in inputs.warnings]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in inputs.notes]
    if inputs.metrics:
        parts.append(_table_html("Performance", _metric_rows(inputs), ("metric", "value")))
    for title, values in inputs.top_sections:
        parts.append(_table_html(title, values, ("item", "value")))
    for name, draw in report_figures.figures(inputs).items():
        svg = draw()
        if svg is None:
            continue
        path = out / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        figures[name] = path
        parts.append(f"<h2>{html.escape(FIGURE_TITLES.get(name, name))}</h2>"
                     f'<figure id="{name}">{svg}</figure>')  # fmt: skip
    for title, values in inputs.sections:
        parts.append(_table_html(title, values, ("item", "value")))
    for title, columns, rows in inputs.tables:
        parts.append(_rows_html(title, columns, rows))
    if inputs.quality_html:
        parts.append("<h2>Data quality</h2>" + inputs.quality_html)
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(inputs.title)}"
           f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")  # fmt: skip
    html_path = out / "report.html"
    html_path.write_text(doc, encoding="utf-8")
    summary = {"title": inputs.title, "warnings": list(inputs.warnings),
               "notes": list(inputs.notes), "metrics": inputs.metrics,
               "span": span_text(inputs.span) if inputs.ts_us is not None else None,
               "performance": dict(_metric_rows(inputs)) if inputs.metrics else {},
               "costs": inputs.costs, "ic_decay": inputs.ic_decay,
               "quantile_returns": list(inputs.quantile_returns),
               "gap_components": inputs.gap_components,
               "sections": {t: v for t, v in (*inputs.top_sections, *inputs.sections)},
               "tables": {t: [dict(zip(c, r, strict=True)) for r in rows]
                          for t, c, rows in inputs.tables},
               "figures": {k: str(v) for k, v in figures.items()}}  # fmt: skip
    json_path = out / "report.json"
    json_path.write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    return ReportPaths(html=html_path, json=json_path, figures=figures)
