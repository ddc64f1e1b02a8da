"""Funding-rate validation: duplicates, order, missing or off-schedule funding times, outliers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from alphaforge.data.validate_common import (
    I64,
    assemble,
    concat_rows,
    f64,
    require_columns,
    rows_of,
    strided_zscore,
    symbol_groups,
    ts_us,
)
from alphaforge.data.validate_report import QualityReport, iso_us, make_check

HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class FundingChecks:
    """Parameters of `validate_funding`.

    Attributes:
        interval_h: funding interval in hours (None: per symbol, the most common step rounded
            to whole hours; Binance uses 8h, 4h or 1h depending on the contract).
        grid_tol_us: how far a funding time may sit from the interval grid (Binance stamps
            carry a few ms, e.g. ``00:00:00.017``); default 60 s.
        window: funding events in the robust-z reference window.
        outlier_z: robust z of the rate above which it is an outlier (scale floored at
            ``min_scale``).
        min_scale: floor of 1.4826*MAD, in rate units (1e-4 = 1 bp per interval: rates sit
            at the 0.01 % default for long stretches, where the MAD is 0).
        max_abs_rate: any |rate| above this is an outlier whatever its z (0.03 = 3 %).
    """

    interval_h: int | None = None
    grid_tol_us: int = 60_000_000
    window: int = 90
    outlier_z: float = 10.0
    min_scale: float = 1e-4
    max_abs_rate: float = 0.03


def validate_funding(
    table: pa.Table,
    *,
    params: FundingChecks | None = None,
    source: str = "table",
    dataset: str = "funding",
) -> QualityReport:
    """Run every funding check over a FUNDING table.

    Checks: ``duplicate_funding``, ``non_monotonic_time``, ``non_positive_mark_price``:
    error; ``missing_funding`` (count = missing events; a step of k intervals misses k-1),
    ``irregular_funding_time`` (a time more than ``grid_tol_us`` off the symbol's interval
    grid, anchored at the epoch: 00/08/16 UTC for 8h), ``funding_outlier``: warning. Steps
    that are not whole intervals (around an irregular time) never count as missing events.
    Expected events (completeness) = per symbol, span / interval + 1.
    """
    p = params or FundingChecks()
    require_columns(table, dataset, ("funding_time", "funding_rate"))
    n = table.num_rows
    t = ts_us(table, "funding_time")
    rate, mark = f64(table, "funding_rate"), f64(table, "mark_price")
    dups, back, miss_rows, irr, outl = [], [], [], [], []
    miss_n = np.zeros(n, dtype=np.int64)
    z_all = np.full(n, np.nan)
    iv_all = np.zeros(n, dtype=np.int64)
    expected = 0
    for _sym, grp in symbol_groups(table):
        rows = rows_of(grp, n)
        ts = t[grp]
        back.append(rows[1:][np.diff(ts) < 0])
        order = np.argsort(ts, kind="stable")
        ts_s, rows_s = ts[order], rows[order]
        keep = np.ones(ts_s.size, dtype=bool)
        keep[1:] = ts_s[1:] != ts_s[:-1]
        dups.append(rows_s[~keep])
        ts_u, rows_u = ts_s[keep], rows_s[keep]
        step = np.diff(ts_u)
        iv = p.interval_h * HOUR_US if p.interval_h else _infer_interval(step)
        iv_all[rows] = iv
        k = np.rint(step / iv).astype(np.int64)
        off_step = np.abs(step - k * iv) > p.grid_tol_us
        off = np.abs(((ts_u + iv // 2) % iv) - iv // 2) > p.grid_tol_us
        irr.append(rows_u[off])
        m = np.flatnonzero((k >= 2) & ~off_step)
        miss_rows.append(rows_u[1:][m])
        miss_n[rows_u[1:][m]] = k[m] - 1
        if ts_u.size:
            expected += int(np.rint((ts_u[-1] - ts_u[0]) / iv)) + 1
        r = np.ascontiguousarray(rate[rows_u])
        z = strided_zscore(r, p.window, max(1, p.window // 9), p.window // 2, p.min_scale)[0]
        z_all[rows_u] = z
        outl.append(rows_u[(np.abs(z) > p.outlier_z) | (np.abs(r) > p.max_abs_rate)])
    cat = concat_rows
    vals: dict[str, Any] = {"funding_rate": rate}
    mr = cat(miss_rows)
    details = [{"row": int(i), "after": iso_us(int(t[i]) - int(miss_n[i] + 1) * int(iv_all[i])),
                "missing": int(miss_n[i])} for i in mr[:1000]]  # fmt: skip
    ivh = {"interval_h": iv_all // HOUR_US}
    # fmt: off
    checks = [
        make_check("duplicate_funding", dataset, "error", "repeats a funding_time of the symbol",
                   cat(dups), t, vals),
        make_check("non_monotonic_time", dataset, "error",
                   "funding_time earlier than the previous row's", cat(back), t, vals),
        make_check("non_positive_mark_price", dataset, "error", "mark_price <= 0",
                   np.flatnonzero(mark <= 0).astype(np.int64), t, {"mark_price": mark}),
        make_check("missing_funding", dataset, "warning",
                   "funding events missing on the interval schedule (count = events)", mr, t,
                   {"missing": miss_n} | ivh, count=int(miss_n.sum()), details=details),
        make_check("irregular_funding_time", dataset, "warning",
                   "funding time off the interval grid (anchored at 00:00 UTC)", cat(irr), t,
                   ivh),
        make_check("funding_outlier", dataset, "warning",
                   f"|robust z| > {p.outlier_z:g} or |rate| > {p.max_abs_rate:g}", cat(outl), t,
                   vals | {"z": z_all}),
    ]
    # fmt: on
    return assemble(dataset, source, n, checks, expected, int(miss_n.sum()))


def _infer_interval(step: I64) -> int:
    """Most common step rounded to whole hours (8h when there is no step)."""
    hours = np.rint(step / HOUR_US).astype(np.int64)
    hours = hours[hours > 0]
    if hours.size == 0:
        return 8 * HOUR_US
    vals, counts = np.unique(hours, return_counts=True)
    return int(vals[np.argmax(counts)]) * HOUR_US
