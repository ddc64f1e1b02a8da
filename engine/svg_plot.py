"""SVG charts for the report, drawn without a plotting library.

A ``Frame`` maps data coordinates onto one plot area (pixels, y down) of an SVG picture and
collects the picture's elements as text; ``line``, ``area``, ``bars``, ``hline`` and ``legend``
draw into it, ``decorate`` adds the box, ticks, grid and titles, and ``svg_document`` wraps one
or more frames into a standalone ``<svg>``. ``heat_map`` draws a labelled grid of coloured cells.

Every label passes through ``html.escape`` (factor names and cost names come from users).
Lines longer than four points per pixel column are thinned to each column's first, lowest,
highest and last point, which draws the same picture with a bounded number of points. Non-finite
values break lines and areas (nothing is interpolated across a gap).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alphaforge.engine.svg_ticks import time_ticks, value_ticks

F64 = npt.NDArray[np.float64]
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
RED, GREEN, BLUE = "#d62728", "#2ca02c", "#1f77b4"
_FONT = 'font-family="sans-serif" font-size="11"'
_HEAT_STOPS = np.array([[215, 48, 39], [252, 141, 89], [255, 255, 191], [145, 207, 96],
                        [26, 152, 80]], dtype=np.float64)  # fmt: skip
"""RGB of the heat map's scale at -lim, -lim/2, 0, +lim/2, +lim."""


@dataclass
class Frame:
    """One plot area: ``left, top, width, height`` in px; data ranges ``x_lo..x_hi`` and
    ``y_lo..y_hi``; ``time_x`` when x is int64 UTC µs. ``parts`` holds the SVG elements."""

    left: float
    top: float
    width: float
    height: float
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    time_x: bool = False
    parts: list[str] = field(default_factory=list)

    def sx(self, x: npt.ArrayLike) -> F64:
        """Pixel columns of data x values."""
        span = self.x_hi - self.x_lo or 1.0
        return self.left + (np.asarray(x, dtype=np.float64) - self.x_lo) / span * self.width

    def sy(self, y: npt.ArrayLike) -> F64:
        """Pixel rows of data y values (larger y is higher up)."""
        span = self.y_hi - self.y_lo or 1.0
        return self.top + (self.y_hi - np.asarray(y, dtype=np.float64)) / span * self.height


def padded(lo: float, hi: float, pad: float = 0.05) -> tuple[float, float]:
    """``[lo, hi]`` widened by ``pad`` of its span each side (a point gets a unit-scale span);
    non-finite ends give ``(-1, 1)``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return -1.0, 1.0
    span = hi - lo
    if span <= 0:
        span = abs(hi) or 1.0
    return lo - pad * span, hi + pad * span


def data_range(*values: npt.ArrayLike, include_zero: bool = False) -> tuple[float, float]:
    """Padded (lo, hi) over the finite entries of every array (and 0 when asked)."""
    finite = [v[np.isfinite(v)] for v in (np.asarray(a, dtype=np.float64).ravel() for a in values)]
    pool = np.concatenate([*finite, np.zeros(1 if include_zero else 0)])
    if pool.size == 0:
        return -1.0, 1.0
    return padded(float(pool.min()), float(pool.max()))


def _runs(ok: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``ok`` holds."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def thin(px: F64, py: F64, columns: int) -> tuple[F64, F64]:
    """Keep each pixel column's first, lowest, highest and last point (in order) when there are
    more than four points per column; ``px`` ascending. Returns the kept (px, py)."""
    n = px.size
    if n <= 4 * columns:
        return px, py
    span = float(px[-1] - px[0]) or 1.0
    col = np.minimum(((px - px[0]) / span * columns).astype(np.int64), columns - 1)
    starts = np.flatnonzero(np.concatenate(([True], col[1:] != col[:-1])))
    lengths = np.diff(np.concatenate((starts, [n])))
    member = np.repeat(np.arange(starts.size), lengths)
    idx = np.arange(n)
    lows = np.minimum.reduceat(py, starts)[member] == py
    highs = np.maximum.reduceat(py, starts)[member] == py
    first_low = np.minimum.reduceat(np.where(lows, idx, n), starts)
    first_high = np.minimum.reduceat(np.where(highs, idx, n), starts)
    keep = np.unique(np.concatenate((starts, starts + lengths - 1, first_low, first_high)))
    return px[keep], py[keep]


def _points(px: F64, py: F64) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px.tolist(), py.tolist(), strict=True))


def line(f: Frame, x: npt.ArrayLike, y: npt.ArrayLike, color: str = BLUE,
         width: float = 1.0) -> None:  # fmt: skip
    """A line through the finite (x, y) points, broken at non-finite y."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(ys) & np.isfinite(xs)
    cols = max(int(f.width), 1)
    pieces = []
    for a, b in _runs(ok):
        if b - a < 2:
            continue  # a lone point draws no line
        px, py = thin(f.sx(xs[a:b]), f.sy(ys[a:b]), cols)
        pieces.append("M" + _points(px, py).replace(" ", " L", 1))
    d = " ".join(pieces)
    if d:
        f.parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                       'stroke-linejoin="round"/>')  # fmt: skip


def area(f: Frame, x: npt.ArrayLike, y: npt.ArrayLike, color: str, opacity: float = 0.5) -> None:
    """The area between y and 0 over each finite run of y."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    base = float(f.sy(0.0))
    cols = max(int(f.width), 1)
    for a, b in _runs(np.isfinite(ys) & np.isfinite(xs)):
        px, py = thin(f.sx(xs[a:b]), f.sy(ys[a:b]), cols)
        d = f"M{px[0]:.1f},{base:.1f} L{_points(px, py)} L{px[-1]:.1f},{base:.1f} Z"
        f.parts.append(f'<path d="{d}" fill="{color}" fill-opacity="{opacity}"/>')


def bars(f: Frame, left: npt.ArrayLike, width: npt.ArrayLike, top: npt.ArrayLike,
         bottom: npt.ArrayLike, colors: Sequence[str], tips: Sequence[str]) -> None:  # fmt: skip
    """Rectangles from ``bottom`` to ``top`` (data units), each with a hover tip."""
    lo = np.asarray(left, dtype=np.float64)
    x0, x1 = f.sx(lo), f.sx(lo + np.asarray(width, dtype=np.float64))
    y0, y1 = f.sy(np.asarray(top)), f.sy(np.asarray(bottom))
    for i, (color, tip) in enumerate(zip(colors, tips, strict=True)):
        if not (np.isfinite(y0[i]) and np.isfinite(y1[i])):
            continue
        f.parts.append(
            f'<rect x="{min(x0[i], x1[i]):.1f}" y="{min(y0[i], y1[i]):.1f}" '
            f'width="{abs(x1[i] - x0[i]):.1f}" height="{max(abs(y1[i] - y0[i]), 0.5):.1f}" '
            f'fill="{color}"><title>{html.escape(tip)}</title></rect>'
        )


def hline(f: Frame, y: float = 0.0) -> None:
    """A thin black line across the plot at data y (skipped outside the y range)."""
    if f.y_lo <= y <= f.y_hi:
        py = float(f.sy(y))
        f.parts.append(f'<line x1="{f.left:.1f}" x2="{f.left + f.width:.1f}" y1="{py:.1f}" '
                       f'y2="{py:.1f}" stroke="#000" stroke-width="0.6"/>')  # fmt: skip


def legend(f: Frame, labels: Sequence[str], colors: Sequence[str]) -> None:
    """Labels with colour swatches in the plot's top-left corner."""
    x, y = f.left + 8, f.top + 8
    wide = max((len(s) for s in labels), default=0) * 6.5 + 34
    f.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{wide:.1f}" '
                   f'height="{16 * len(labels) + 6}" fill="#fff" fill-opacity="0.85" '
                   'stroke="#ccc"/>')  # fmt: skip
    for i, (label, color) in enumerate(zip(labels, colors, strict=True)):
        ly = y + 14 + 16 * i
        f.parts.append(f'<line x1="{x + 6:.1f}" x2="{x + 24:.1f}" y1="{ly - 4:.1f}" '
                       f'y2="{ly - 4:.1f}" stroke="{color}" stroke-width="2"/>')  # fmt: skip
        f.parts.append(f'<text x="{x + 30:.1f}" y="{ly:.1f}" {_FONT}>{html.escape(label)}</text>')


def decorate(f: Frame, title: str = "", y_label: str = "", x_labels: bool = True,
             categories: Sequence[str] = ()) -> None:  # fmt: skip
    """The plot's box, y grid and tick labels, x ticks (time, numeric, or one per category at
    0, 1, 2, ...), the title above and the y label at the left."""
    right, bottom = f.left + f.width, f.top + f.height
    under = [f'<rect x="{f.left:.1f}" y="{f.top:.1f}" width="{f.width:.1f}" '
             f'height="{f.height:.1f}" fill="none" stroke="#444" stroke-width="0.8"/>']  # fmt: skip
    out: list[str] = []  # drawn over the data
    yt, yl = value_ticks(f.y_lo, f.y_hi, max(2, min(6, int(f.height // 22))))
    for v, label in zip(yt, yl, strict=True):
        py = float(f.sy(v))
        under.append(f'<line x1="{f.left:.1f}" x2="{right:.1f}" y1="{py:.1f}" y2="{py:.1f}" '
                     f'stroke="#ddd" stroke-width="0.6"/><text x="{f.left - 4:.1f}" '
                     f'y="{py + 4:.1f}" text-anchor="end" {_FONT}>{label}</text>')  # fmt: skip
    xt: list[float]
    if categories:
        xt, xl = [float(i) for i in range(len(categories))], [html.escape(c) for c in categories]
    elif f.time_x:
        ti, xl = time_ticks(int(f.x_lo), int(f.x_hi))
        xt = [float(t) for t in ti]
    else:
        xt, xl = value_ticks(f.x_lo, f.x_hi, 8)
    tilt = bool(categories) and sum(len(c) for c in categories) * 6.5 > f.width * 0.9
    for v, label in zip(xt, xl, strict=True):
        px = float(f.sx(v))
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom:.1f}" y2="{bottom + 4:.1f}" '
                   'stroke="#444"/>')  # fmt: skip
        if x_labels and tilt:
            at = f'x="{px:.1f}" y="{bottom + 14:.1f}"'
            turn = f'transform="rotate(-25 {px:.1f} {bottom + 14:.1f})"'
            out.append(f'<text {at} text-anchor="end" {turn} {_FONT}>{label}</text>')
        elif x_labels:
            out.append(f'<text x="{px:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" '
                       f'{_FONT}>{label}</text>')  # fmt: skip
    if title:
        out.append(f'<text x="{f.left + f.width / 2:.1f}" y="{f.top - 8:.1f}" '
                   f'text-anchor="middle" font-family="sans-serif" font-size="13">'
                   f"{html.escape(title)}</text>")  # fmt: skip
    if y_label:
        cy = f.top + f.height / 2
        turn = f'transform="rotate(-90 14 {cy:.1f})"'
        out.append(f'<text x="14" y="{cy:.1f}" text-anchor="middle" {turn} {_FONT}>'
                   f"{html.escape(y_label)}</text>")  # fmt: skip
    f.parts[:0] = under  # box and grid under the data
    f.parts.extend(out)


def heat_colour(v: float, lim: float) -> str:
    """Red (-lim) through pale yellow (0) to green (+lim), as ``#rrggbb``."""
    stops = _HEAT_STOPS
    t = 0.5 if lim <= 0 else min(max((v / lim + 1.0) / 2.0, 0.0), 1.0)
    k = min(int(t * 4), 3)
    rgb = stops[k] + (stops[k + 1] - stops[k]) * (t * 4 - k)
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def heat_map(grid: F64, rows: Sequence[str], columns: Sequence[str], title: str,
             cell_text: str = "{:.1%}") -> str:  # fmt: skip
    """A standalone SVG of ``grid`` (R, C) as coloured cells (symmetric scale around 0) with
    each finite value written in its cell; NaN cells stay blank."""
    n_rows, n_cols = grid.shape
    left, top, cell_w, cell_h = 60.0, 30.0, 64.0, 26.0
    finite = grid[np.isfinite(grid)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    parts = []
    for (i, j), v in np.ndenumerate(grid):
        if not np.isfinite(v):
            continue
        x, y = left + j * cell_w, top + i * cell_h
        text = cell_text.format(v)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" height="{cell_h:.1f}" '
                     f'fill="{heat_colour(float(v), lim)}" stroke="#fff">'
                     f"<title>{html.escape(rows[i])} {html.escape(columns[j])}: {text}</title>"
                     f'</rect><text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" '
                     f'text-anchor="middle" {_FONT}>{text}</text>')  # fmt: skip
    for i, name in enumerate(rows):
        parts.append(f'<text x="{left - 6:.1f}" y="{top + (i + 0.5) * cell_h + 4:.1f}" '
                     f'text-anchor="end" {_FONT}>{html.escape(name)}</text>')  # fmt: skip
    for j, name in enumerate(columns):
        parts.append(f'<text x="{left + (j + 0.5) * cell_w:.1f}" '
                     f'y="{top + n_rows * cell_h + 16:.1f}" text-anchor="middle" {_FONT}>'
                     f"{html.escape(name)}</text>")  # fmt: skip
    parts.append(_heat_scale(left, top + n_rows * cell_h + 30, lim, cell_text, title))
    width, height = left + n_cols * cell_w + 20, top + n_rows * cell_h + 62
    parts.append(
        f'<text x="{left + n_cols * cell_w / 2:.1f}" y="18" text-anchor="middle" '
        f'font-family="sans-serif" font-size="13">{html.escape(title)}</text>'
    )
    return svg_document(width, height, parts, title)


def _heat_scale(x: float, y: float, lim: float, cell_text: str, title: str) -> str:
    """The heat map's colour scale: a 240 x 10 px gradient from -lim to +lim, labelled at both
    ends and at 0 (a gradient id unique to the figure's title, since several SVGs share one
    HTML page's ids)."""
    gid = "scale-" + "".join(c for c in title if c.isalnum())
    colours = [(k / 8, heat_colour((k / 4 - 1) * lim, lim)) for k in range(9)]
    stops = "".join(f'<stop offset="{at:.3f}" stop-color="{c}"/>' for at, c in colours)
    ends = ((x, "start", -lim), (x + 120, "middle", 0.0), (x + 240, "end", lim))
    labels = "".join(f'<text x="{tx:.1f}" y="{y + 24:.1f}" text-anchor="{anchor}" {_FONT}>'
                     f"{cell_text.format(v)}</text>" for tx, anchor, v in ends)  # fmt: skip
    bar = f'<rect x="{x:.1f}" y="{y:.1f}" width="240" height="10" fill="url(#{gid})"/>'
    return f'<defs><linearGradient id="{gid}">{stops}</linearGradient></defs>{bar}{labels}'


def svg_document(width: float, height: float, parts: Sequence[str], title: str) -> str:
    """A standalone SVG picture of ``width`` x ``height`` px holding ``parts``."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img">'
            f"<title>{html.escape(title)}</title>"
            f'<rect width="100%" height="100%" fill="#fff"/>{"".join(parts)}</svg>')  # fmt: skip
