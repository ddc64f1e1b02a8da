"""Pure table operations of the store: partition split, de-duplication, month labels."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas


def month_label(month_index: int) -> str:
    """Months since 1970-01 -> ``YYYY-MM``."""
    return f"{1970 + month_index // 12:04d}-{month_index % 12 + 1:02d}"


def month_of_us(t_us: int) -> str:
    return month_label(int(np.datetime64(int(t_us), "us").astype("datetime64[M]").astype(np.int64)))


def ts_int(col: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    arr = col.cast(schemas.TS).cast(pa.int64())
    return np.asarray(arr.to_numpy(), dtype=np.int64)


def _eq_adjacent(col: pa.Array) -> pa.Array:
    """Boolean (n-1,) array: row i+1 has the same value as row i (null == null)."""
    a, b = col.slice(1), col.slice(0, len(col) - 1)
    eq = pc.fill_null(pc.equal(a, b), False)
    return pc.or_(eq, pc.and_(pc.is_null(a), pc.is_null(b)))


OCCURRENCE: Final = "__occ"
"""Column `with_occurrence` adds: the row's rank among the rows of its table with its key."""


def with_occurrence(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """``table`` plus an int64 ``__occ`` column: 0 for the first row (in table order) of each
    natural key, 1 for the second, and so on.

    Merging on (keys, __occ) makes the store keep a key's rows as a multiset: a file holding two
    identical quotes stores two, and ingesting that file again (or an overlapping one holding
    the same rows) adds none. Used for datasets whose rows have no unique exchange id.
    """
    n = table.num_rows
    occ = np.zeros(n, dtype=np.int64)
    if n > 1:
        seq = pa.array(np.arange(n, dtype=np.int64))
        work = table.select(list(keys)).append_column("__seq", seq)
        order = np.asarray(
            pc.sort_indices(work, sort_keys=[(k, "ascending") for k in [*keys, "__seq"]])
        )
        sorted_keys = work.take(pa.array(order))
        same = np.asarray(_eq_adjacent(sorted_keys.column(keys[0]).combine_chunks()))
        for k in keys[1:]:
            same &= np.asarray(_eq_adjacent(sorted_keys.column(k).combine_chunks()))
        pos = np.arange(n, dtype=np.int64)
        starts = np.where(np.concatenate([[True], ~same]), pos, 0)
        occ[order] = pos - np.maximum.accumulate(starts)
    return table.append_column(OCCURRENCE, pa.array(occ))


def dedupe_sort(table: pa.Table, keys: Sequence[str], time_col: str) -> pa.Table:
    """Keep the LAST row of each natural key, sorted by (time, keys).

    Args:
        table: rows in arrival order (older first); no ``symbol`` column needed.
        keys: natural-key columns (within one partition, so without ``symbol``).
        time_col: the time column to sort by.
    """
    n = table.num_rows
    if n == 0:
        return table
    if len(keys) == 1:
        k = table.column(keys[0])
        if (
            (pa.types.is_int64(k.type) or pa.types.is_timestamp(k.type))
            and is_increasing(k, strict=True)
            and is_increasing(table.column(time_col), False)
        ):
            return table  # already unique and in time order: the common append case
    seq = pa.array(np.arange(n, dtype=np.int64))
    work = table.append_column("__seq", seq)
    order = [(k, "ascending") for k in keys] + [("__seq", "descending")]
    work = work.take(pc.sort_indices(work, sort_keys=order))
    dup = _eq_adjacent(work.column(keys[0]).combine_chunks())
    for k in keys[1:]:
        dup = pc.and_(dup, _eq_adjacent(work.column(k).combine_chunks()))
    keep = pa.concat_arrays([pa.array([True]), pc.invert(dup)])
    work = work.filter(keep).drop_columns(["__seq"])
    sort_by = [time_col, *[k for k in keys if k != time_col]]
    idx = pc.sort_indices(work, sort_keys=[(c, "ascending") for c in sort_by])
    return work.take(idx)


def _int_chunks(col: pa.ChunkedArray) -> Iterable[np.ndarray[Any, np.dtype[np.int64]]]:
    """Zero-copy int64 numpy views of the chunks of an int64/timestamp column without nulls."""
    for chunk in col.chunks:
        if len(chunk):
            yield np.asarray(chunk.view(pa.int64()).to_numpy(), dtype=np.int64)


def is_increasing(col: pa.ChunkedArray, strict: bool) -> bool:
    """True when an int64/timestamp column without nulls is (strictly) increasing; no copies."""
    if col.null_count:
        return False
    prev: int | None = None
    for a in _int_chunks(col):
        if prev is not None and (a[0] <= prev if strict else a[0] < prev):
            return False
        ok = a[1:] > a[:-1] if strict else a[1:] >= a[:-1]
        if not bool(ok.all()):
            return False
        prev = int(a[-1])
    return True


def _month_index(t_us: int) -> int:
    return int(np.datetime64(int(t_us), "us").astype("datetime64[M]").astype(np.int64))


def split_partitions(table: pa.Table, tcol: str) -> Iterable[tuple[str, str, pa.Table]]:
    """Yield (symbol, month, rows without the symbol column) per partition, in row order.

    One symbol whose rows are in time order (an archive file) is split by zero-copy slices;
    anything else by one stable sort on (symbol, month).
    """
    if table.num_rows == 0:
        return
    body = table.drop_columns(["symbol"])
    sym_mm = pc.min_max(table.column("symbol"))
    t_mm = pc.min_max(table.column(tcol).cast(schemas.TS))
    m_lo = _month_index(t_mm["min"].value)
    m_hi = _month_index(t_mm["max"].value)
    sym0 = str(sym_mm["min"].as_py())
    if sym0 == sym_mm["max"].as_py():
        if m_lo == m_hi:
            yield sym0, month_label(m_lo), body
            return
        if is_increasing(table.column(tcol), strict=False):
            tv = ts_int(table.column(tcol))
            starts = np.arange(m_lo + 1, m_hi + 1).astype("datetime64[M]").astype("datetime64[us]")
            cuts = [0, *np.searchsorted(tv, starts.astype(np.int64)).tolist(), len(tv)]
            for m, (s, e) in enumerate(itertools.pairwise(cuts)):
                if e > s:
                    yield sym0, month_label(m_lo + m), body.slice(s, e - s)
            return
    yield from _split_sorted(table, body, tcol)


def _split_sorted(
    table: pa.Table, body: pa.Table, tcol: str
) -> Iterable[tuple[str, str, pa.Table]]:
    months = ts_int(table.column(tcol)).astype("datetime64[us]").astype("datetime64[M]")
    m_idx = months.astype(np.int64)
    enc = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    sym_codes = np.asarray(enc.indices.to_numpy(), dtype=np.int64)
    sym_names = enc.dictionary.to_pylist()
    m_min = int(m_idx.min())
    code = sym_codes * (int(m_idx.max()) - m_min + 1) + (m_idx - m_min)
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    bounds = np.flatnonzero(np.diff(sorted_code)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    body = body.take(pa.array(order))
    for s, e in zip(starts, ends, strict=True):
        i = int(order[s])
        yield sym_names[int(sym_codes[i])], month_label(int(m_idx[i])), body.slice(s, e - s)


def sorted_by_symbol_time(table: pa.Table, tcol: str) -> bool:
    """True when ``table`` is sorted by (symbol, tcol) (the time column has no nulls).

    A store read yields batches of one file each (one symbol): those are checked batch by
    batch without encoding the symbol column; anything else takes the general check.
    """
    if table.num_rows < 2:
        return True
    t = table.column(tcol)
    if t.null_count:
        return False
    prev: tuple[str, int] | None = None
    for batch in table.select(["symbol", tcol]).to_batches():
        if not len(batch):
            continue
        mm = pc.min_max(batch.column(0))
        if mm["min"] != mm["max"] or not mm["min"].is_valid:
            return _sorted_general(table, tcol)
        sym = str(mm["min"].as_py())
        tv = np.asarray(batch.column(1).view(pa.int64()).to_numpy(), dtype=np.int64)
        if not bool((tv[1:] >= tv[:-1]).all()):
            return False
        if prev is not None and (sym < prev[0] or (sym == prev[0] and int(tv[0]) < prev[1])):
            return False
        prev = (sym, int(tv[-1]))
    return True


def _sorted_general(table: pa.Table, tcol: str) -> bool:
    t = table.column(tcol)
    enc = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    names = enc.dictionary.to_pylist()
    if names != sorted(names):
        return False
    codes = np.asarray(enc.indices.to_numpy(), dtype=np.int64)
    dc = np.diff(codes)
    if bool((dc < 0).any()):
        return False  # a symbol reappears after another one
    tv = ts_int(t)
    return bool(((np.diff(tv) >= 0) | (dc > 0)).all())
