"""Shared plumbing of the validators: columns to numpy, symbol groups, report assembly."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data.errors import SchemaError
from alphaforge.data.validate_report import CheckResult, QualityReport, make_check

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def require_columns(table: pa.Table, dataset: str, columns: tuple[str, ...]) -> None:
    """Raise `SchemaError` naming the missing columns of ``table``."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"{dataset}: cannot validate, missing column(s) {missing}; table has "
            f"{table.column_names}"
        )


def ts_us(table: pa.Table, column: str) -> I64:
    """(n,) int64 epoch µs of a timestamp/integer column; nulls become INT64 min.

    Raises:
        SchemaError: the column is not a timestamp or integer column.
    """
    col = table.column(column)
    typ = col.type
    if pa.types.is_timestamp(typ):
        if typ.unit != "us":
            col = pc.cast(col, pa.timestamp("us", tz=typ.tz))
        col = pc.cast(col, pa.int64())
    elif not pa.types.is_integer(typ):
        raise SchemaError(f"column {column!r}: expected timestamp or int64 µs, got {typ}")
    col = pc.cast(col, pa.int64())
    if col.null_count:
        col = pc.fill_null(col, np.iinfo(np.int64).min)
    return np.ascontiguousarray(col.to_numpy(), dtype=np.int64)


def f64(table: pa.Table, column: str) -> F64:
    """(n,) float64 of a numeric column with nulls as NaN (NaN when the column is absent)."""
    if column not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = pc.cast(table.column(column), pa.float64())
    return np.ascontiguousarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def i64(table: pa.Table, column: str, fill: int = -1) -> I64:
    """(n,) int64 of an integer column with nulls as ``fill``."""
    if column not in table.column_names:
        return np.full(table.num_rows, fill, dtype=np.int64)
    col = pc.cast(table.column(column), pa.int64())
    if col.null_count:
        col = pc.fill_null(col, fill)
    return np.ascontiguousarray(col.to_numpy(), dtype=np.int64)


def symbol_groups(table: pa.Table) -> Iterator[tuple[str, I64 | slice]]:
    """Yield (symbol, rows) per symbol, rows in table order (a slice when the table has one)."""
    if "symbol" not in table.column_names or table.num_rows == 0:
        yield ("", slice(0, table.num_rows))
        return
    col = table.column("symbol")
    first = col[0]
    if first.is_valid and col.null_count == 0 and pc.all(pc.equal(col, first)).as_py():
        yield (str(first.as_py()), slice(0, table.num_rows))
        return
    enc = pc.dictionary_encode(col).combine_chunks()
    names = enc.dictionary.to_pylist()
    if len(names) == 1:
        yield (str(names[0]), slice(0, table.num_rows))
        return
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for k, name in enumerate(names):
        yield (str(name), order[bounds[k] : bounds[k + 1]].astype(np.int64))


def rows_of(rows: I64 | slice, n: int) -> I64:
    """Row indices of a group as an int64 array."""
    if isinstance(rows, slice):
        return np.arange(rows.start, rows.stop, dtype=np.int64)
    return rows


class FlagIndex:
    """Offending rows per bit of a flag array, with one pass over the rows for all bits."""

    def __init__(self, flags: npt.NDArray[np.uint16]) -> None:
        self.rows = np.flatnonzero(flags).astype(np.int64)
        self.vals = flags[self.rows]

    def rows_of(self, bit: int) -> I64:
        """Sorted rows whose flags have ``bit`` set."""
        out: I64 = self.rows[(self.vals & bit) != 0]
        return out


def take_rows(grp: I64 | slice, idx: Any) -> I64:
    """Table rows at positions ``idx`` of a group given as an index array or a slice."""
    pos: I64 = np.asarray(idx, dtype=np.int64)
    if isinstance(grp, slice):
        out: I64 = pos + int(grp.start or 0)
        return out
    picked: I64 = grp[pos]
    return picked


def bit_check(
    flags: npt.NDArray[np.uint16] | FlagIndex,
    bit: int,
    name: str,
    dataset: str,
    severity: Any,
    description: str,
    ts: I64,
    values: dict[str, npt.NDArray[Any]],
) -> CheckResult:
    """A check from one bit of a per-row flag array (or its `FlagIndex`)."""
    fi = flags if isinstance(flags, FlagIndex) else FlagIndex(flags)
    idx = fi.rows_of(bit)
    return make_check(name, dataset, severity, description, idx, ts, values)


def assemble(
    dataset: str,
    source: str,
    n_rows: int,
    checks: list[CheckResult],
    expected: int,
    missing: int,
) -> QualityReport:
    """Build the `QualityReport`: ``flagged`` = distinct rows hit by an error-severity check.

    Checks named ``missing_*`` count absent items (already in ``missing``); their row_index
    (the row after each gap) is not a faulty row and is not counted as flagged.
    """
    err = [
        c.row_index
        for c in checks
        if c.severity == "error" and len(c.row_index) and not c.name.startswith("missing_")
    ]
    flagged = int(np.unique(np.concatenate(err)).size) if err else 0
    return QualityReport(dataset, source, n_rows, tuple(checks), expected, missing, flagged)


def concat_rows(parts: list[Any]) -> I64:
    """Sorted int64 concatenation of row-index arrays (empty when there are none)."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(parts).astype(np.int64))


PARALLEL_MIN_ROWS = 1_000_000
"""Series at least this long are scored as two block ranges in two threads."""


def strided_zscore(
    x: F64,
    window: int,
    stride: int,
    min_periods: int,
    min_scale: float,
    parallel_min_rows: int = PARALLEL_MIN_ROWS,
) -> tuple[F64, F64, F64]:
    """`validate_rolling_nb.strided_robust_zscore` (same results), blocks pre-sorted by numpy.

    numpy's vectorised sort of the (n/stride, stride) block matrix replaces the kernel's
    per-block sorts; the kernel then only merges and reads medians. Falls back to the plain
    kernel when ``window`` is not a multiple of ``stride``.

    Args:
        x: (n,) float64; window, stride, min_periods, min_scale: see the kernel.
        parallel_min_rows: from this length on, two threads score the two halves of the
            blocks (same results).

    Returns:
        z, med, mad: (n,) float64 each.
    """
    from alphaforge.data import validate_rolling_nb

    x = np.ascontiguousarray(x, dtype=np.float64)
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    if window % stride:
        out = validate_rolling_nb.strided_robust_zscore(x, window, stride, min_periods, min_scale)
        return out[0], out[1], out[2]
    n = x.size
    full = n // stride * stride
    srt = x.copy()
    srt[:full].reshape(-1, stride).sort(axis=1)  # in place, NaNs last in each block
    srt[full:].sort()
    n_blocks = -(-n // stride)
    cnt = np.full(n_blocks, stride, dtype=np.int64)
    if n > full:
        cnt[-1] = n - full
    cnt -= np.bincount(np.flatnonzero(np.isnan(x)) // stride, minlength=n_blocks)
    if n < max(parallel_min_rows, 2 * stride):
        out = validate_rolling_nb.strided_robust_zscore_presorted(
            x, srt, cnt, window, stride, min_periods, min_scale
        )
        return out[0], out[1], out[2]
    z, med, mad = np.empty(n), np.empty(n), np.empty(n)
    half = n_blocks // 2
    with ThreadPoolExecutor(2) as pool:  # the kernel releases the GIL; halves are independent
        jobs = [
            pool.submit(validate_rolling_nb.strided_presorted_blocks, x, srt, cnt, window,
                        stride, min_periods, min_scale, lo, hi, z, med, mad)
            for lo, hi in ((0, half), (half, n_blocks))
        ]  # fmt: skip
        for job in jobs:
            job.result()
    return z, med, mad
