"""Kline validation: grid gaps, order, bar consistency, zero-volume runs, robust outliers.

Every check reports the exact rows at fault (indices into the validated table, which is never
reordered or modified). See `validate_klines` for the list and `data.validate_report` for the
report and its completeness score.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from alphaforge.data import validate_nb
from alphaforge.data.errors import SchemaError
from alphaforge.data.schemas import INTERVAL_US
from alphaforge.data.validate_common import (
    F64,
    I64,
    FlagIndex,
    assemble,
    bit_check,
    concat_rows,
    f64,
    require_columns,
    rows_of,
    strided_zscore,
    symbol_groups,
    take_rows,
    ts_us,
)
from alphaforge.data.validate_layout import layout_checks
from alphaforge.data.validate_report import (
    CheckResult,
    QualityReport,
    SparseColumn,
    iso_us,
    make_check,
)

QUOTE_REL_TOL = 1e-6
"""Relative tolerance of the quote-volume and taker-buy checks: ``quote_volume`` must lie in
``[low*volume*(1-tol), high*volume*(1+tol)]``. It absorbs float64 rounding of the exchange's
decimal strings and the 8-decimal rounding of quote volumes on bars that are not tiny;
files with rounded prices/volumes (CryptoDataDownload's legacy rows) legitimately fail it."""


@dataclass(frozen=True, slots=True)
class KlineChecks:
    """Parameters of `validate_klines`.

    Attributes:
        outlier_window: reference window of the robust z-score, in bars.
        outlier_stride: bars per reference refresh (None: window // 4, see
            `validate_rolling_nb.strided_robust_zscore`).
        outlier_z: |z| above this is an outlier (returns; the bar range is one-sided).
        spike_z: a price spike (a print that jumps away and straight back, `price_spikes`)
            scores above this many robust return scales (a warning: it is a bad print).
        min_scale: floor of 1.4826*MAD for returns and log ranges (1e-4 = 1 bp), so that quiet
            windows whose MAD is 0 do not flag one-tick moves.
        range_ratio: a bar whose log(high/low) exceeds this many times the median of the
            reference window is a range outlier (the reference is the ``outlier_window``
            bars before the bar's block of ``outlier_window`` bars: refreshed once per window).
        range_floor: floor of that median (1e-3 = 10 bps), so flat markets do not flag
            one-tick bars.
        zero_volume_run: runs of at least this many zero-volume bars are reported.
        quote_rel_tol: see `QUOTE_REL_TOL`.
    """

    outlier_window: int = 1440
    outlier_stride: int | None = None
    outlier_z: float = 10.0
    spike_z: float = 10.0
    min_scale: float = 1e-4
    range_ratio: float = 20.0
    range_floor: float = 1e-3
    zero_volume_run: int = 3
    quote_rel_tol: float = QUOTE_REL_TOL

    def __post_init__(self) -> None:
        if self.outlier_window < 2:
            raise ValueError(f"outlier_window must be >= 2 bars, got {self.outlier_window}")
        if self.outlier_stride is not None and self.outlier_stride < 1:
            raise ValueError(f"outlier_stride must be >= 1, got {self.outlier_stride}")
        if not self.outlier_z > 0:
            raise ValueError(f"outlier_z must be > 0, got {self.outlier_z}")
        if self.zero_volume_run < 1:
            raise ValueError(f"zero_volume_run must be >= 1, got {self.zero_volume_run}")

    @property
    def stride(self) -> int:
        """Reference refresh stride in bars (window // 4 by default, dividing the window)."""
        if self.outlier_stride is not None:
            return self.outlier_stride
        s = max(1, self.outlier_window // 4)
        while self.outlier_window % s:
            s -= 1
        return s


_THREAD_MIN_ROWS = 200_000
"""Symbols with at least this many bars score returns and ranges in two threads."""

_OHLC = ("open", "high", "low", "close")
_ROW_CHECKS = (
    (validate_nb.K_OFF_GRID, "off_grid", "open_time not a multiple of the {iv} µs interval",
     ("open_time_us",)),
    (validate_nb.K_CLOSE_TIME, "close_time_mismatch",
     "close_time != open_time + interval - 1 ms (or - 1 µs in µs files)", ("close_time_us",)),
    (validate_nb.K_OHLC, "ohlc_inconsistent", "not low <= open, close <= high", _OHLC),
    (validate_nb.K_NONPOS_PRICE, "non_positive_price", "a price <= 0", _OHLC),
    (validate_nb.K_NEG_VOLUME, "negative_volume", "volume, quote volume or taker-buy volume < 0",
     ("volume", "quote_volume", "taker_buy_volume")),
    (validate_nb.K_TAKER_GT_VOLUME, "taker_buy_gt_volume", "taker_buy_volume > volume",
     ("volume", "taker_buy_volume")),
    (validate_nb.K_QUOTE_RANGE, "quote_volume_out_of_range",
     "quote_volume outside [low*volume, high*volume] (rel tol {tol})",
     ("low", "high", "volume", "quote_volume")),
)  # fmt: skip
"""Per-row checks: (flag bit, check name, description, columns shown with each example)."""


def infer_interval_us(table: pa.Table) -> int:
    """Bar length in µs: the most common ``close_time - open_time + 1 ms``, else open diffs.

    Raises:
        SchemaError: fewer than 2 rows and no close_time to infer from.
    """
    o = ts_us(table, "open_time")
    if "close_time" in table.column_names and table.num_rows:
        c = ts_us(table, "close_time")
        ok = c != np.iinfo(np.int64).min
        if ok.any():
            vals, counts = np.unique(c[ok] - o[ok] + 1000, return_counts=True)
            return int(vals[np.argmax(counts)])
    d = np.diff(np.unique(o))
    if d.size == 0:
        raise SchemaError("klines: cannot infer the interval from fewer than 2 distinct bars")
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])


def parse_interval(interval: str | int | None, table: pa.Table) -> int:
    """An interval name ('1m') or µs count -> µs; None infers it from the table."""
    if interval is None:
        return infer_interval_us(table)
    if isinstance(interval, int):
        if interval <= 0:
            raise ValueError(f"interval must be > 0 µs, got {interval}")
        return interval
    if interval not in INTERVAL_US:
        raise ValueError(f"unknown interval {interval!r}; expected one of {list(INTERVAL_US)}")
    return INTERVAL_US[interval]


def validate_klines(
    table: pa.Table,
    interval: str | int | None = None,
    *,
    params: KlineChecks | None = None,
    source: str = "table",
    dataset: str = "klines",
) -> QualityReport:
    """Run every kline check over a table in the `data.schemas.KLINES` schema.

    Checks (name: severity): ``duplicate_bars``: error (a later row repeating a symbol's open
    time), ``non_monotonic_time``: error (open time below the previous row's), ``off_grid``:
    error, ``close_time_mismatch``: error (close != open + interval - 1 ms; null close times
    are not checked), ``ohlc_inconsistent``: error, ``non_positive_price``: error,
    ``negative_volume``: error, ``taker_buy_gt_volume``: error, ``quote_volume_out_of_range``:
    error, ``non_finite_value``: error (NaN or infinite OHLC or volume),
    ``missing_bars``: warning (count = missing bars; details = every missing range with
    its scope), ``exchange_wide_gaps``: info (missing bars that every other symbol covering the
    range also lacks: maintenance), ``zero_volume_run``: info, ``price_spike``: warning (a
    bad print: a price that jumps away and straight back, `price_spikes`), ``return_outlier``
    and ``range_outlier``: info (robust z of close-to-close returns; log(high/low) over
    ``range_ratio`` times its reference median: large real moves and wicks, which clean real
    months have every week, so they inform and never fail ``--fail-on warning``), and
    for tables carrying per-row provenance (`data.cdd`): ``mixed_timestamp_units``,
    ``mixed_layouts``, ``overlapping_layouts``: error.

    Args:
        table: klines (any row order; several symbols allowed).
        interval: '1m', µs, or None to infer.
        params: thresholds (`KlineChecks`).
        source: what the table came from, for the report.
        dataset: dataset name for the report.

    Returns:
        The `QualityReport`.

    Raises:
        SchemaError: a required column is missing or has the wrong type.
    """
    p = params or KlineChecks()
    require_columns(table, dataset, ("open_time", "open", "high", "low", "close", "volume"))
    n = table.num_rows
    iv = parse_interval(interval, table) if n else 60_000_000
    t = ts_us(table, "open_time")
    ct = ts_us(table, "close_time") if "close_time" in table.column_names else t + iv - 1000
    ct = np.where(ct == np.iinfo(np.int64).min, t + iv - 1000, ct)
    o, h, lo, c = (f64(table, k) for k in ("open", "high", "low", "close"))
    v, qv, tb = f64(table, "volume"), f64(table, "quote_volume"), f64(table, "taker_buy_volume")
    flags = FlagIndex(
        validate_nb.kline_row_flags(t, ct, o, h, lo, c, v, qv, tb, iv, p.quote_rel_tol)
    )
    cols = {"open": o, "high": h, "low": lo, "close": c, "volume": v, "quote_volume": qv,
            "taker_buy_volume": tb, "open_time_us": t, "close_time_us": ct}  # fmt: skip
    tol = f"{p.quote_rel_tol:g}"
    checks = [
        bit_check(
            flags,
            bit,
            name,
            dataset,
            "error",
            desc.format(iv=iv, tol=tol),
            t,
            {k: cols[k] for k in shown},
        )
        for bit, name, desc, shown in _ROW_CHECKS
    ]
    bad = ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v))
    checks.append(make_check(
        "non_finite_value", dataset, "error",
        "open, high, low, close or volume is NaN, +inf or -inf (or missing)",
        np.flatnonzero(bad), t, {k: cols[k] for k in ("open", "high", "low", "close", "volume")},
    ))  # fmt: skip
    seq = _sequence_checks(table, t, iv, v, (o, h, lo, c), p, dataset)
    checks += seq.checks
    checks += layout_checks(table, t, dataset)
    return assemble(dataset, source, n, checks, seq.expected, seq.missing)


@dataclass
class _Seq:
    checks: list[CheckResult]
    expected: int
    missing: int


def _sequence_checks(
    table: pa.Table,
    t: I64,
    iv: int,
    v: Any,
    ohlc: tuple[Any, Any, Any, Any],
    p: KlineChecks,
    dataset: str,
) -> _Seq:
    """Checks that need each symbol's rows in time order: order, gaps, runs, outliers."""
    n = table.num_rows
    vals_o, h, lo, c = ohlc
    back, dups, run_rows, ret_rows, rng_rows = ([] for _ in range(5))
    shown = {k: SparseColumn(n) for k in ("return", "z", "ratio", "run_bars", "spike_z")}
    spike_rows: list[I64] = []
    gaps: list[dict[str, Any]] = []
    uniq: dict[str, I64] = {}
    expected = 0
    for sym, grp in symbol_groups(table):
        ts = t[grp]
        if ts.size == 0:
            continue
        b_rows, d_rows, ts_u, ru = _time_order(ts, grp, n)
        back.append(b_rows)
        dups.append(d_rows)
        uniq[sym] = ts_u
        expected += round((int(ts_u[-1]) - int(ts_u[0])) / iv) + 1
        gaps += _gaps(sym, ts_u, ru, iv)
        starts, lens = validate_nb.run_starts(np.ascontiguousarray(v[ru] == 0.0), p.zero_volume_run)
        run_rows.append(take_rows(ru, starts))
        shown["run_bars"].set(run_rows[-1], lens)
        if ts_u.size >= _THREAD_MIN_ROWS:  # both scorings release the GIL: run them side by side
            with ThreadPoolExecutor(2) as pool:
                f_ret = pool.submit(_return_outliers, vals_o[ru], c[ru], ru, p, shown)
                f_rng = pool.submit(_range_outliers, h[ru], lo[ru], ru, p, shown)
                ret, spk = f_ret.result()
                rng_rows.append(f_rng.result())
        else:
            ret, spk = _return_outliers(vals_o[ru], c[ru], ru, p, shown)
            rng_rows.append(_range_outliers(h[ru], lo[ru], ru, p, shown))
        ret_rows.append(ret)
        spike_rows.append(spk)
    _classify_gaps(gaps, uniq)
    cat = concat_rows
    missing = sum(g["missing_bars"] for g in gaps)
    ex = {g["row"]: _gap_text(g) for g in gaps}
    details = [_gap_text(g) | {"symbol": g["symbol"]} for g in gaps]
    wide = [g for g in gaps if g["scope"] == "exchange_wide"]
    gap_rows = np.array([g["row"] for g in gaps], dtype=np.int64)
    wide_rows = np.array([g["row"] for g in wide], dtype=np.int64)
    # fmt: off
    checks = [
        make_check("duplicate_bars", dataset, "error",
                   "row repeats an earlier row's (symbol, open_time)", cat(dups), t),
        make_check("non_monotonic_time", dataset, "error",
                   "open_time earlier than the previous row of the symbol", cat(back), t),
        make_check("missing_bars", dataset, "warning",
                   "bars missing on the interval grid (count = bars; row = bar after the gap)",
                   gap_rows, t, count=missing, extra=ex, details=details),
        make_check("exchange_wide_gaps", dataset, "info",
                   "missing bars that every other symbol covering the range lacks too",
                   wide_rows, t, count=sum(g["missing_bars"] for g in wide), extra=ex),
        make_check("zero_volume_run", dataset, "info",
                   f"runs of >= {p.zero_volume_run} zero-volume bars (count = runs)",
                   cat(run_rows), t, {"run_bars": shown["run_bars"]}),
        make_check("price_spike", dataset, "warning",
                   f"a price jumps > {p.spike_z:g} robust return scales and straight back "
                   "(a bad print)", cat(spike_rows), t,
                   {"open": vals_o, "close": c, "spike_z": shown["spike_z"]}),
        make_check("return_outlier", dataset, "info",
                   f"|robust z| of the close-to-close return > {p.outlier_z:g} (a large move; "
                   "real markets make them)", cat(ret_rows),
                   t, {"close": c, "return": shown["return"], "z": shown["z"]}),
        make_check("range_outlier", dataset, "info",
                   f"log(high/low) > {p.range_ratio:g} x its reference median "
                   f"(floor {p.range_floor:g})", cat(rng_rows), t,
                   {"open": vals_o, "high": h, "low": lo, "ratio": shown["ratio"]}),
    ]
    # fmt: on
    return _Seq(checks, expected, missing)


def _gaps(sym: str, ts_u: I64, ru: I64 | slice, iv: int) -> list[dict[str, Any]]:
    """Missing ranges of one symbol's unique sorted open times (row = the bar after)."""
    miss = np.rint(np.diff(ts_u) / iv).astype(np.int64) - 1
    at = np.flatnonzero(miss >= 1)
    rows = take_rows(ru, at + 1)
    return [
        {"symbol": sym, "from_us": int(ts_u[j]) + iv, "to_us": int(ts_u[j + 1]) - iv,
         "missing_bars": int(miss[j]), "row": int(r)}
        for j, r in zip(at, rows, strict=True)
    ]  # fmt: skip


def _return_outliers(ou: Any, cu: Any, ru: I64 | slice, p: KlineChecks,
                     shown: dict[str, Any]) -> tuple[I64, I64]:  # fmt: skip
    """(rows whose close-to-close return has |robust z| > outlier_z, rows holding a price
    spike); fills ``shown`` there. The spike test shares the returns' robust scale."""
    r = np.empty(cu.size)
    r[0] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero or NaN close: flagged apart
        np.divide(cu[1:], cu[:-1], out=r[1:])
    r[1:] -= 1.0
    r[~np.isfinite(r)] = np.nan
    z, _, mad = strided_zscore(r, p.outlier_window, p.stride, p.outlier_window // 2,
                               p.min_scale)  # fmt: skip
    hit = np.flatnonzero(np.abs(z) > p.outlier_z)
    rows = take_rows(ru, hit)
    shown["return"].set(rows, r[hit])  # values only where flagged (report examples)
    shown["z"].set(rows, z[hit])
    scale = np.maximum(1.4826 * mad, p.min_scale)
    spike, spike_z = price_spikes(np.asarray(ou, dtype=np.float64),
                                  np.asarray(cu, dtype=np.float64), scale, p.spike_z)  # fmt: skip
    spike_rows = take_rows(ru, spike)
    shown["spike_z"].set(spike_rows, spike_z)
    return rows, spike_rows


def price_spikes(o: F64, c: F64, scale: F64, z_min: float) -> tuple[I64, F64]:
    """Bars holding a bad print: a price that jumps away and comes straight back.

    The bar prices of one symbol in time order form the sequence o[0], c[0], o[1], c[1], ...
    (log). A price at position i is a spike when the legs into and out of it have opposite
    signs, the way out undoes at least 75 % of the way in (|in + out| < 0.25 x min(|in|,
    |out|)) and min(|in|, |out|) exceeds ``z_min`` robust scales of the bar's returns. The
    first and the last price have one leg only; theirs must exceed 5 x ``z_min`` scales.

    On a continuous market the next bar opens where the last one closed, so a real move,
    however large, has one big leg and a near-zero one: on 17 clean real months of 1-minute
    USD-M klines the largest spike score is 1.5 scales; the bogus first bar of a
    CryptoDataDownload BTC file (open 16,199.91 against prices near 4,300) scores 294.

    Args:
        o, c: (n,) opens and closes of one symbol in time order.
        scale: (n,) robust scale of that bar's returns (1.4826 x MAD, floored).
        z_min: threshold in scales.

    Returns:
        (rows, scores): the bars (0-based within the symbol) and their spike scores.
    """
    n = c.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(np.column_stack([o, c]).ravel())
    legs = np.diff(x)
    s = np.repeat(scale, 2)
    score = np.zeros(x.size)
    a, b = legs[:-1], legs[1:]
    m = np.minimum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore"):
        full = (np.sign(a) * np.sign(b) < 0) & (np.abs(a + b) < 0.25 * m)
        score[1:-1] = np.where(full, m / s[1:-1], 0.0)
        if legs.size:
            ends = np.abs(legs[[0, -1]]) / s[[0, -1]] / 5.0
            score[[0, -1]] = np.maximum(score[[0, -1]], ends)
    score[~np.isfinite(score)] = 0.0
    hit = np.flatnonzero(score > z_min)
    bars = hit // 2
    keep = np.concatenate(([True], bars[1:] != bars[:-1])) if bars.size else bars.astype(bool)
    best = np.maximum.reduceat(score[hit], np.flatnonzero(keep)) if bars.size else score[hit]
    return bars[keep].astype(np.int64), best


def _range_outliers(
    hu: Any, lu: Any, ru: I64 | slice, p: KlineChecks, shown: dict[str, Any]
) -> I64:
    """Rows whose log(high/low) exceeds range_ratio x the reference median."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(hu / lu)
    lr[~np.isfinite(lr)] = np.nan
    # the range test needs only a median: a tumbling reference (stride = window) is enough
    ref = strided_zscore(lr, p.outlier_window, p.outlier_window, p.outlier_window // 2, 0.0)[1]
    ratio = lr / np.maximum(ref, p.range_floor)
    hit = np.flatnonzero(ratio > p.range_ratio)
    rows = take_rows(ru, hit)
    shown["ratio"].set(rows, ratio[hit])
    return rows


def _time_order(ts: I64, grp: I64 | slice, n: int) -> tuple[I64, I64, I64, I64 | slice]:
    """(rows stepping back, duplicate rows, unique sorted times, their rows) of one symbol.

    The rows come back as the group's slice when the symbol is already strictly increasing
    (the common case), so later gathers are views.
    """
    step = np.diff(ts)
    rows = rows_of(grp, n)
    back = rows[1:][step < 0]
    if (step > 0).all():
        return back, np.zeros(0, np.int64), ts, grp
    if (step >= 0).all():
        keep = np.concatenate(([True], step != 0))
        return back, rows[~keep], ts[keep], rows[keep]
    order = np.argsort(ts, kind="stable")
    ts_s, rows_s = ts[order], rows[order]
    keep = np.concatenate(([True], ts_s[1:] != ts_s[:-1]))
    return back, rows_s[~keep], ts_s[keep], rows_s[keep]


def _gap_text(g: dict[str, Any]) -> dict[str, Any]:
    return {
        "missing_from": iso_us(g["from_us"]),
        "missing_to": iso_us(g["to_us"]),
        "missing_bars": g["missing_bars"],
        "scope": g["scope"],
    }


def _classify_gaps(gaps: list[dict[str, Any]], uniq: dict[str, I64]) -> None:
    """Set each gap's scope: exchange_wide / symbol_specific / single_symbol.

    A gap is exchange-wide when at least one other symbol's data spans it and every such
    symbol also has no bar inside it; symbol-specific when one of them has a bar inside it.
    """
    for g in gaps:
        covering = [
            ts
            for s, ts in uniq.items()
            if s != g["symbol"] and ts.size and ts[0] <= g["from_us"] and ts[-1] >= g["to_us"]
        ]
        if not covering:
            g["scope"] = "single_symbol"
            continue
        inside = any(
            np.searchsorted(ts, g["to_us"], "right") > np.searchsorted(ts, g["from_us"], "left")
            for ts in covering
        )
        g["scope"] = "symbol_specific" if inside else "exchange_wide"
