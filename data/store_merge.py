"""Pure table operations of the store: partition split, de-duplication, month labels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data import schemas


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
        if pa.types.is_integer(k.type) or pa.types.is_timestamp(k.type):
            kv = ts_int(k) if pa.types.is_timestamp(k.type) else k.to_numpy()
            if k.null_count == 0 and bool(np.all(kv[1:] > kv[:-1])):
                tv = ts_int(table.column(time_col))
                if bool(np.all(tv[1:] >= tv[:-1])):
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


def split_partitions(table: pa.Table, tcol: str) -> Iterable[tuple[str, str, pa.Table]]:
    """Yield (symbol, month, rows without the symbol column) per partition, in row order."""
    if table.num_rows == 0:
        return
    months = ts_int(table.column(tcol)).astype("datetime64[us]").astype("datetime64[M]")
    m_idx = months.astype(np.int64)
    enc = pc.dictionary_encode(table.column("symbol")).combine_chunks()
    sym_codes = np.asarray(enc.indices.to_numpy(), dtype=np.int64)
    sym_names = enc.dictionary.to_pylist()
    m_min = int(m_idx.min())
    code = sym_codes * (int(m_idx.max()) - m_min + 1) + (m_idx - m_min)
    body = table.drop_columns(["symbol"])
    if bool(np.all(code == code[0])):
        yield sym_names[int(sym_codes[0])], month_label(int(m_idx[0])), body
        return
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    bounds = np.flatnonzero(np.diff(sorted_code)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    body = body.take(pa.array(order))
    for s, e in zip(starts, ends, strict=True):
        i = int(order[s])
        yield sym_names[int(sym_codes[i])], month_label(int(m_idx[i])), body.slice(s, e - s)
