"""Axis ticks for the report's SVG charts: round numbers on value axes, calendar steps on time axes.

``value_ticks(lo, hi)`` returns ticks at 1, 2, 2.5 or 5 x 10^k inside ``[lo, hi]``;
``time_ticks(lo_us, hi_us)`` returns ticks at whole minutes, hours, days, months or years (UTC)
inside ``[lo_us, hi_us]``. Both return ``(positions, labels)`` with at most ``max_ticks``
entries, so labels never crowd: the step is the smallest round step that fits.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

_MIN = 60_000_000
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_FIXED_STEPS_US = (_MIN, 5 * _MIN, 15 * _MIN, 30 * _MIN, _HOUR, 2 * _HOUR, 3 * _HOUR,
                   6 * _HOUR, 12 * _HOUR, _DAY, 2 * _DAY, 7 * _DAY, 14 * _DAY)  # fmt: skip
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200)


def value_ticks(lo: float, hi: float, max_ticks: int = 6) -> tuple[list[float], list[str]]:
    """Round-number ticks inside ``[lo, hi]`` and their labels.

    Args:
        lo, hi: the axis range (finite, ``lo <= hi``; equal ends get one tick).
        max_ticks: most ticks returned (>= 2).

    Returns:
        (ticks ascending, labels with as many decimals as the step needs).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        v = lo if math.isfinite(lo) else 0.0
        return [v], [_number(v, abs(v) or 1.0, abs(v))]
    raw = (hi - lo) / max(max_ticks - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    ticks = [k * step for k in range(first, last + 1)]
    scale = max(abs(ticks[0]), abs(ticks[-1]))
    return ticks, [_number(t, step, scale) for t in ticks]


def _number(v: float, step: float, scale: float) -> str:
    """``v`` with the digits that ``step`` resolves: fixed decimals, or scientific notation
    (as many digits as ``scale``, the axis's largest magnitude, needs) past 1e6 or below steps
    of 1e-4."""
    if abs(v) < step * 1e-6:
        return "0"
    place = math.floor(math.log10(step) + 1e-9)
    if abs(step / 10.0**place - round(step / 10.0**place)) > 1e-6:  # 2.5 x 10^k steps
        place -= 1
    if scale >= 1e6 or step < 1e-4:
        return f"{v:.{max(0, math.floor(math.log10(scale)) - place)}e}"
    return f"{v:.{max(0, -place)}f}"


def time_ticks(lo_us: int, hi_us: int, max_ticks: int = 8) -> tuple[list[int], list[str]]:
    """Calendar ticks (UTC) inside ``[lo_us, hi_us]`` and their labels.

    Args:
        lo_us, hi_us: int64 UTC µs ends of the axis.
        max_ticks: most ticks returned (>= 2).

    Returns:
        (tick times in µs ascending, labels: "05 Jan 12:00" below a day, "05 Jan" for days and
        weeks, "Jan 2024" for months, "2024" for years).
    """
    lo, hi = int(lo_us), int(hi_us)
    if hi <= lo:
        return [lo], [_stamp(lo, "%d %b %H:%M")]
    for step in _FIXED_STEPS_US:
        if (hi - lo) // step + 1 <= max_ticks:
            first = -(-lo // step) * step
            ticks = list(range(first, hi + 1, step))
            style = "%d %b %H:%M" if step < _DAY else "%d %b"
            return ticks, [_stamp(t, style) for t in ticks]
    months_lo = int(np.datetime64(lo, "us").astype("datetime64[M]").astype(np.int64))
    months_hi = int(np.datetime64(hi, "us").astype("datetime64[M]").astype(np.int64))
    for months in _MONTH_STEPS:
        first = -(-months_lo // months) * months
        starts = [m for m in range(first, months_hi + 1, months) if _month_us(m) >= lo]
        if len(starts) <= max_ticks:
            ticks = [_month_us(m) for m in starts]
            style = "%b %Y" if months < 12 else "%Y"
            return ticks, [_stamp(t, style) for t in ticks]
    return [lo, hi], [_stamp(lo, "%Y"), _stamp(hi, "%Y")]


def _month_us(month: int) -> int:
    """µs of the first instant of ``month`` (months since 1970-01)."""
    return int(np.datetime64(month, "M").astype("datetime64[us]").astype(np.int64))


def _stamp(t_us: int, style: str) -> str:
    return datetime.fromtimestamp(t_us / 1e6, tz=UTC).strftime(style)
