"""Order-book validation: snapshots / best quotes (levels, crossing, spreads, time gaps) and
depth-diff streams (sequence breaks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import validate_nb, validate_rolling_nb
from alphaforge.data.validate_common import (
    I64,
    FlagIndex,
    assemble,
    bit_check,
    concat_rows,
    f64,
    i64,
    require_columns,
    rows_of,
    strided_zscore,
    symbol_groups,
    ts_us,
)
from alphaforge.data.validate_report import CheckResult, QualityReport, make_check


@dataclass(frozen=True, slots=True)
class BookChecks:
    """Parameters of `validate_book_snapshots` / `validate_book_ticker`.

    Attributes:
        expected_levels: snapshots with fewer levels on a side are reported (None: the most
            levels any snapshot of the table has).
        spread_window: snapshots in the spread reference window.
        spread_z: robust z of the spread above which it is an outlier; the scale is
            ``max(1.4826 * MAD, median spread)``, so a one-tick book is not flagged for two ticks.
            Reported at ``info``: a wide spread is the market's state (real top-of-book streams
            show dozens a day around fast moves), not a defect of the data; crossed and locked
            books are the errors.
        max_gap_us: a time step above this between snapshots of a symbol is a gap (None:
            `default_gap_us`: 10x the median step of periodic snapshots, ``EVENT_GAP_US`` for an
            event stream such as bookTicker, which updates only when the top of book changes).
    """

    expected_levels: int | None = None
    spread_window: int = 1024
    spread_z: float = 10.0
    max_gap_us: int | None = None


EVENT_GAP_US = 60_000_000
"""Default gap limit of an event stream (bookTicker, quotes): a minute without a top-of-book
update is an outage; the 0.03-1.1 s pauses of a clean BTCUSDT stream are not."""


def _lists(table: pa.Table, column: str) -> tuple[I64, Any]:
    col = table.column(column)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    off = np.zeros(table.num_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    flat = pc.cast(pc.list_flatten(col), pa.float64()).to_numpy(zero_copy_only=False)
    return off, np.ascontiguousarray(flat, dtype=np.float64)


def validate_book_snapshots(
    table: pa.Table,
    *,
    params: BookChecks | None = None,
    source: str = "table",
    dataset: str = "book_snapshots",
) -> QualityReport:
    """Run every snapshot check over a BOOK_SNAPSHOTS table (level 0 = best).

    Checks: ``bids_unsorted``/``asks_unsorted`` (bids not strictly descending, asks not
    strictly ascending), ``crossed_book`` (best bid > best ask), ``locked_book`` (equal),
    ``non_positive_qty``, ``non_positive_price``: error; ``few_levels``, ``snapshot_gap``,
    ``non_monotonic_time``: warning; ``spread_outlier``: info (see `BookChecks`).
    """
    require_columns(table, dataset, ("ts", "bid_px", "bid_qty", "ask_px", "ask_qty"))
    bo, bp = _lists(table, "bid_px")
    _, bq = _lists(table, "bid_qty")
    ao, ap = _lists(table, "ask_px")
    _, aq = _lists(table, "ask_qty")
    return _book_report(table, bo, bp, bq, ao, ap, aq, params or BookChecks(), source, dataset)


def validate_book_ticker(
    table: pa.Table,
    *,
    params: BookChecks | None = None,
    source: str = "table",
    dataset: str = "book_ticker",
) -> QualityReport:
    """The snapshot checks on a BOOK_TICKER table (one level per side)."""
    require_columns(table, dataset, ("ts", "bid_px", "bid_qty", "ask_px", "ask_qty"))
    off = np.arange(table.num_rows + 1, dtype=np.int64)
    cols = [f64(table, k) for k in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
    p = params or BookChecks(expected_levels=1, max_gap_us=EVENT_GAP_US)
    return _book_report(table, off, cols[0], cols[1], off, cols[2], cols[3], p, source, dataset)


_BOOK_BITS = (
    (validate_nb.B_BIDS_UNSORTED, "bids_unsorted", "error", "bid prices not strictly descending"),
    (validate_nb.B_ASKS_UNSORTED, "asks_unsorted", "error", "ask prices not strictly ascending"),
    (validate_nb.B_CROSSED, "crossed_book", "error", "best bid > best ask"),
    (validate_nb.B_LOCKED, "locked_book", "error", "best bid == best ask"),
    (validate_nb.B_NONPOS_QTY, "non_positive_qty", "error", "a level with qty <= 0 or NaN"),
    (validate_nb.B_NONPOS_PRICE, "non_positive_price", "error", "a level with price <= 0 or NaN"),
)
"""Snapshot checks from flag bits: (bit, name, severity, description)."""


def default_gap_us(steps: I64) -> int:
    """Gap limit of a symbol's snapshots from its positive time steps (µs).

    Periodic snapshots (at least half the steps within 5 % of the median step, e.g. Tardis
    ``book_snapshot_25_100ms``) get 10x the median step; event-driven ones (a snapshot on every
    book change: the steps are irregular) get ``EVENT_GAP_US``; no step gives 0 (no check).
    """
    if steps.size == 0:
        return 0
    med = float(np.median(steps))
    periodic = float(np.mean(np.abs(steps - med) <= 0.05 * med)) >= 0.5
    return int(10 * med) if periodic else EVENT_GAP_US


def _spread_z(s: Any, p: BookChecks) -> Any:
    """Robust z of spreads vs the strided reference, scale max(1.4826*MAD, median spread)."""
    _, med, mad = strided_zscore(
        s, p.spread_window, max(1, p.spread_window // 8), p.spread_window // 2, 0.0
    )
    scale = np.maximum(validate_rolling_nb.MAD_SCALE * mad, med)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (s - med) / scale


def _book_report(
    table: pa.Table,
    bo: I64,
    bp: Any,
    bq: Any,
    ao: I64,
    ap: Any,
    aq: Any,
    p: BookChecks,
    source: str,
    dataset: str,
) -> QualityReport:
    n = table.num_rows
    t = ts_us(table, "ts")
    levels = p.expected_levels
    if levels is None:
        levels = int(max(np.diff(bo).max(initial=0), np.diff(ao).max(initial=0)))
    raw_flags, bb, ba = validate_nb.book_row_flags(bo, bp, bq, ao, ap, aq, levels)
    flags = FlagIndex(raw_flags)
    spread = ba - bb
    z_all = np.full(n, np.nan)
    out_rows, gap_rows, back_rows = [], [], []
    step_all = np.zeros(n, dtype=np.int64)
    for _sym, grp in symbol_groups(table):
        rows = rows_of(grp, n)
        z_all[grp] = _spread_z(np.ascontiguousarray(spread[grp]), p)
        out_rows.append(rows[z_all[grp] > p.spread_z])
        step = np.diff(t[grp])
        step_all[rows[1:]] = step
        back_rows.append(rows[1:][step < 0])
        pos = step[step > 0]
        max_gap = p.max_gap_us if p.max_gap_us is not None else default_gap_us(pos)
        if max_gap > 0:
            gap_rows.append(rows[1:][step > max_gap])
    v = {"best_bid": bb, "best_ask": ba}
    cat = concat_rows
    checks = [bit_check(flags, bit, name, dataset, sev, desc, t, v)
              for bit, name, sev, desc in _BOOK_BITS]  # fmt: skip
    # fmt: off
    checks += [
        bit_check(flags, validate_nb.B_FEW_LEVELS, "few_levels", dataset, "warning",
                  f"fewer than {levels} levels on a side", t,
                  {"bid_levels": np.diff(bo), "ask_levels": np.diff(ao)}),
        make_check("spread_outlier", dataset, "info",
                   f"spread above median by > {p.spread_z:g} x max(1.4826*MAD, median)",
                   cat(out_rows), t, v | {"spread": spread, "z": z_all}),
        make_check("snapshot_gap", dataset, "warning",
                   "time step to the previous snapshot above the gap limit", cat(gap_rows), t,
                   {"step_us": step_all}),
        make_check("non_monotonic_time", dataset, "warning",
                   "ts earlier than the previous snapshot of the symbol", cat(back_rows), t),
    ]
    # fmt: on
    return assemble(dataset, source, n, checks, n, 0)


def validate_depth_updates(
    table: pa.Table,
    *,
    futures: bool | None = None,
    source: str = "table",
    dataset: str = "depth_updates",
) -> QualityReport:
    """Check a DEPTH_UPDATES stream: sequence breaks, order and impossible levels.

    Rows are grouped into events (consecutive rows of a symbol with the same
    ``last_update_id`` and ``is_snapshot``), in table order. Checks: ``sequence_break``:
    error (row = first row of the breaking event; rule in `validate_nb.sequence_breaks`),
    ``non_monotonic_time``: warning (exchange ts below the previous event's),
    ``non_positive_price``: error, ``negative_qty``: error (qty 0 deletes a level in a diff; a
    snapshot level must be > 0). Streams without update ids (Tardis) skip the sequence check.

    Args:
        futures: use the futures rule (``pu == prev_u``); None: futures when any diff row has
            a ``prev_update_id``.
    """
    require_columns(
        table,
        dataset,
        (
            "ts",
            "first_update_id",
            "last_update_id",
            "prev_update_id",
            "is_snapshot",
            "price",
            "qty",
        ),
    )
    n = table.num_rows
    t = ts_us(table, "ts")
    U = i64(table, "first_update_id")
    u = i64(table, "last_update_id")
    pu = i64(table, "prev_update_id")
    snap = pc.fill_null(table.column("is_snapshot"), False).to_numpy(zero_copy_only=False)
    px, qty = f64(table, "price"), f64(table, "qty")
    has_pu = table.column("prev_update_id").null_count < n
    fut = has_pu if futures is None else futures
    has_ids = table.column("last_update_id").null_count < n
    brk_rows, back_rows = [], []
    n_events = 0
    for _sym, grp in symbol_groups(table):
        rows = rows_of(grp, n)
        if rows.size == 0:
            continue
        gu, gs = u[grp], snap[grp]
        start = np.ones(rows.size, dtype=bool)
        start[1:] = (gu[1:] != gu[:-1]) | (gs[1:] != gs[:-1])
        ev = rows[start]
        n_events += ev.size
        if has_ids:
            brk = validate_nb.sequence_breaks(
                np.ascontiguousarray(U[ev]),
                np.ascontiguousarray(u[ev]),
                np.ascontiguousarray(pu[ev]),
                np.ascontiguousarray(snap[ev]),
                fut,
            )
            brk_rows.append(ev[brk])
        dv = ev[~snap[ev]]  # REST snapshots carry another clock: order diffs only
        back_rows.append(dv[1:][np.diff(t[dv]) < 0])
    cat = concat_rows
    ids = {"first_update_id": U, "last_update_id": u, "prev_update_id": pu}
    rule = "pu == prev_u" if fut else "U == prev_u + 1"
    bad_qty = np.flatnonzero(~(qty >= 0) | (snap & (qty == 0))).astype(np.int64)
    # fmt: off
    checks: list[CheckResult] = [
        make_check("sequence_break", dataset, "error",
                   f"diff event breaking the update-id chain ({rule})", cat(brk_rows), t, ids),
    ] if has_ids else []
    checks += [
        make_check("non_monotonic_time", dataset, "warning",
                   "diff event ts earlier than the previous diff event's", cat(back_rows), t,
                   ids),
        make_check("non_positive_price", dataset, "error", "price <= 0 or NaN",
                   np.flatnonzero(~(px > 0)).astype(np.int64), t, {"price": px}),
        make_check("negative_qty", dataset, "error", "qty < 0 or NaN (or 0 in a snapshot)",
                   bad_qty, t, {"qty": qty, "is_snapshot": snap}),
    ]
    # fmt: on
    return assemble(dataset, source, n, checks, n, 0)
