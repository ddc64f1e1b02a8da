"""Read side of the store: directory pruning by symbol/month + pyarrow.dataset pushdown."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from alphaforge.data import schemas
from alphaforge.data.errors import StoreError
from alphaforge.data.manifest import DATA_FILE
from alphaforge.data.store_merge import month_of_us, sorted_by_symbol_time

if TYPE_CHECKING:
    import pyarrow.dataset as ds

_PART_SCHEMA = pa.schema([("symbol", pa.string()), ("month", pa.string())])
REMOTE_READAHEAD = 16
"""Files read concurrently from object storage (pyarrow's default, 4, suits local disks)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def read_partitions(
    root: Path,
    base: str,
    symbols: Sequence[str] | None,
    start_us: int | None,
    end_us: int | None,
    columns: Sequence[str] | None,
) -> pa.Table:
    """Rows under the local dataset directory ``root`` (schema ``base``); see ``Store.read``."""
    files = partition_files(root, symbols, start_us, end_us) if root.is_dir() else []
    return read_files([str(f) for f in files], str(root), base, symbols, start_us, end_us,
                      columns)  # fmt: skip


def read_files(
    files: Sequence[str],
    base_dir: str,
    base: str,
    symbols: Sequence[str] | None,
    start_us: int | None,
    end_us: int | None,
    columns: Sequence[str] | None,
    filesystem: pafs.FileSystem | None = None,
) -> pa.Table:
    """Rows of the data files ``files`` (paths under ``base_dir/symbol=*/month=*/``, on
    ``filesystem``), filtered and sorted by (symbol, time), in the schema ``base`` (or
    ``columns`` of it, in that order).

    Raises:
        StoreError: an unknown column, or a file that cannot be read.
    """
    schema = schemas.DATASETS[base]
    tcol = schemas.time_column(base)
    cols = list(columns) if columns is not None else schema.names
    bad = [c for c in cols if c not in schema.names]
    if bad:
        name = base_dir.rstrip("/").rsplit("/", 1)[-1]
        raise StoreError(f"{name}: unknown column(s) {bad}; columns: {schema.names}")
    out_schema = pa.schema([schema.field(c) for c in cols])
    if not files:
        return out_schema.empty_table()
    file_schema = pa.schema([f for f in schema if f.name != "symbol"])
    import pyarrow.dataset as ds  # here: it imports pandas (~0.4 s), which most commands skip

    dset = ds.dataset(
        list(files),
        schema=pa.unify_schemas([file_schema, _PART_SCHEMA]),
        format="parquet",
        partitioning=ds.partitioning(_PART_SCHEMA, flavor="hive"),
        partition_base_dir=base_dir,
        filesystem=filesystem,
    )
    need = list(dict.fromkeys([*cols, "symbol", tcol]))
    try:
        # on object storage each file costs round trips: keep many requests in flight
        ahead = {} if filesystem is None else {"fragment_readahead": REMOTE_READAHEAD}
        t = dset.to_table(columns=need, filter=_filter(tcol, symbols, start_us, end_us), **ahead)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"{base_dir}: read failed: {exc}") from exc
    if not sorted_by_symbol_time(t, tcol):  # files are read in (symbol, month) order
        keys = [("symbol", "ascending"), (tcol, "ascending")]
        t = t.take(pc.sort_indices(t, sort_keys=keys))
    return t.select(cols).cast(out_schema)


def month_range(start_us: int | None, end_us: int | None) -> tuple[str | None, str | None]:
    """(first, last) ``YYYY-MM`` months that can hold times in ``[start_us, end_us)``."""
    m_lo = month_of_us(start_us) if start_us is not None else None
    m_hi = month_of_us(end_us - 1) if end_us is not None else None
    return m_lo, m_hi


def _filter(
    tcol: str, symbols: Sequence[str] | None, start_us: int | None, end_us: int | None
) -> ds.Expression | None:
    """Time range on the time column (row-group statistics) and the symbol set."""
    import pyarrow.dataset as ds

    parts = []
    if start_us is not None:
        parts.append(ds.field(tcol) >= pa.scalar(int(start_us), schemas.TS))
    if end_us is not None:
        parts.append(ds.field(tcol) < pa.scalar(int(end_us), schemas.TS))
    if symbols is not None:
        parts.append(ds.field("symbol").isin(list(symbols)))
    flt = None
    for p in parts:
        flt = p if flt is None else flt & p
    return flt


def partition_files(
    root: Path, symbols: Sequence[str] | None, start_us: int | None, end_us: int | None
) -> list[Path]:
    """Data files of the partitions that can hold rows in range, in (symbol, month) order.

    Symbols that cannot be partition values (``../x``) cannot be stored and match nothing.
    """
    m_lo, m_hi = month_range(start_us, end_us)
    sym_dirs = (
        [root / f"symbol={s}" for s in sorted(set(symbols)) if _SAFE_NAME.match(s)]
        if symbols is not None
        else sorted(root.glob("symbol=*"))
    )
    files: list[Path] = []
    for sd in sym_dirs:
        if not sd.is_dir():
            continue
        for md in sorted(sd.glob("month=*")):
            month = md.name.split("=", 1)[1]
            if (m_lo and month < m_lo) or (m_hi and month > m_hi):
                continue
            f = md / DATA_FILE
            if f.exists():
                files.append(f)
    return files
