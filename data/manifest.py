"""Per-partition manifests of the parquet store, and the crash-safe file primitives under them.

A partition directory ``.../symbol=<S>/month=<YYYY-MM>/`` holds

- ``part-0.parquet``: the data (one file, replaced atomically as a whole);
- ``_manifest.json``: rows, time span, sources (with the sha256 of each source file), validation
  status, and the data file's fingerprint (size, mtime_ns) it describes;
- transiently ``.part-0.parquet.<id>.tmp`` and ``_manifest.pending.json`` during a write.

A write goes: temp data file (fsync) -> pending manifest (fsync) -> ``os.replace`` data ->
``os.replace`` manifest. A kill at any point leaves the old or the new data file in place, never a
partial one; :func:`load_manifest` reconciles the manifest with whichever data file is there
(promoting the pending manifest when it describes the data, rebuilding from the file otherwise).
Readers ignore names starting with ``.`` or ``_``, so DuckDB/Polars globs of ``**/*.parquet``
see only complete data files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alphaforge.data.errors import StoreError

DATA_FILE = "part-0.parquet"
MANIFEST_FILE = "_manifest.json"
PENDING_FILE = "_manifest.pending.json"
LOCK_FILE = ".lock"
UNVALIDATED = "unvalidated"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One source that contributed rows to a partition.

    Attributes:
        source: ``archive:<url or path>``, ``rest:<url>``, ``tardis:<path>``...
        sha256: hex sha256 of the source file, or None (REST pages have no file).
        rows: rows of that write that fell into this partition (before de-duplication).
        written_at: ISO-8601 UTC time of the write.
    """

    source: str
    sha256: str | None
    rows: int
    written_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "rows": self.rows,
            "written_at": self.written_at,
        }


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """A manifest row: one (exchange, market, dataset, symbol, month) partition.

    Attributes:
        path: the partition directory.
        rows: rows in the data file.
        min_time_us / max_time_us: span of the dataset's time column, UTC µs (None if empty).
        file_bytes: size of the data file in bytes.
        sources: every source written into the partition, oldest first.
        validation_status: ``unvalidated`` until validation sets it (reset on every data change).
        validation_summary: free-form JSON-able summary set by validation.
        rebuilt: True when the manifest was rebuilt from the data file after an interrupted write
            (sources of that last write are then unknown).
        completeness: missing bars or ids inside the partition (``data.completeness``), or
            None (a dataset without a rule, or a manifest written before it existed).
        tier: ``warm`` (a local folder) or ``cold`` (object storage).
        location: where the partition lives: its folder, or ``s3://bucket/prefix/...``.
        generation: the manifest generation on object storage (0 for a local folder).
    """

    exchange: str
    market: str
    dataset: str
    symbol: str
    month: str
    path: Path
    rows: int
    min_time_us: int | None
    max_time_us: int | None
    file_bytes: int
    sources: tuple[SourceRecord, ...] = ()
    validation_status: str = UNVALIDATED
    validation_summary: Mapping[str, Any] = field(default_factory=dict)
    rebuilt: bool = False
    completeness: Mapping[str, Any] | None = None
    tier: str = "warm"
    location: str = ""
    generation: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (path as str)."""
        return {
            "exchange": self.exchange,
            "market": self.market,
            "dataset": self.dataset,
            "symbol": self.symbol,
            "month": self.month,
            "path": str(self.path),
            "rows": self.rows,
            "min_time_us": self.min_time_us,
            "max_time_us": self.max_time_us,
            "file_bytes": self.file_bytes,
            "sources": [s.to_dict() for s in self.sources],
            "validation_status": self.validation_status,
            "validation_summary": dict(self.validation_summary),
            "rebuilt": self.rebuilt,
            "completeness": None if self.completeness is None else dict(self.completeness),
            "tier": self.tier,
            "location": self.location or str(self.path),
        }


def utc_now_iso() -> str:
    """Current UTC time as ISO-8601 with seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fsync_dir(path: Path) -> None:
    """fsync a directory so renames inside it survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(final: Path) -> Path:
    """A hidden, unique temp path beside ``final`` (ignored by every reader)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


def write_bytes_atomic(path: Path, payload: bytes, *, sync_dir: bool = True) -> None:
    """Write ``payload`` to ``path`` via temp file + fsync + ``os.replace`` (+ fsync of the
    directory unless the caller syncs it later)."""
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a refused write leaves no temp file
        raise
    if sync_dir:
        fsync_dir(path.parent)


def write_parquet_tmp(table: pa.Table, final: Path) -> tuple[Path, tuple[int, int]]:
    """Write ``table`` (zstd) to a temp file beside ``final``; fsync; return (tmp, fingerprint).

    Dictionary encoding only for string columns (numeric columns rarely gain from it and cost
    a failed dictionary attempt each); row groups of 512Ki rows keep writer buffers small and
    give row-group statistics for time pushdown. The fingerprint (size, mtime_ns) survives
    ``os.replace`` and identifies this file later.
    """
    tmp = tmp_name(final)
    dict_cols = [f.name for f in table.schema if pa.types.is_string(f.type)]
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(
                table,
                fh,
                compression="zstd",
                row_group_size=1 << 19,
                use_dictionary=dict_cols or False,
            )
            fh.flush()
            os.fdatasync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a refused write leaves no temp file
        raise
    st = tmp.stat()
    return tmp, (st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def partition_lock(part_dir: Path) -> Iterator[None]:
    """Exclusive advisory lock on one partition (threads and processes)."""
    part_dir.mkdir(parents=True, exist_ok=True)
    with open(part_dir / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def clean_leftovers(part_dir: Path) -> None:
    """Delete temp files a killed write left behind (call under the partition lock)."""
    for p in part_dir.glob(".*.tmp"):
        p.unlink(missing_ok=True)


def manifest_dict(
    key: Mapping[str, str],
    *,
    rows: int,
    span: tuple[int | None, int | None],
    fingerprint: tuple[int, int],
    sources: list[SourceRecord],
    validation: tuple[str, Mapping[str, Any]] = (UNVALIDATED, {}),
    rebuilt: bool = False,
    completeness: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document stored as ``_manifest.json`` (``completeness``: see
    ``data.completeness``)."""
    return {
        "format": 1,
        **dict(key),
        "rows": rows,
        "min_time_us": span[0],
        "max_time_us": span[1],
        "file_bytes": fingerprint[0],
        "fingerprint": list(fingerprint),
        "sources": [s.to_dict() for s in sources],
        "validation_status": validation[0],
        "validation_summary": dict(validation[1]),
        "rebuilt": rebuilt,
        "completeness": None if completeness is None else dict(completeness),
    }


def write_manifest(part_dir: Path, doc: Mapping[str, Any], *, pending: bool = False) -> None:
    """Atomically write the manifest of ``part_dir``; or write its pending manifest in place
    (no temp file: a torn pending manifest reads as absent, and the caller renames it to the
    manifest and syncs the directory)."""
    payload = json.dumps(doc, indent=1, sort_keys=True).encode()
    if not pending:
        write_bytes_atomic(part_dir / MANIFEST_FILE, payload)
        return
    with open(part_dir / PENDING_FILE, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fdatasync(fh.fileno())


def _read_json(path: Path, *, torn_ok: bool = False) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        if torn_ok:
            return None  # a pending manifest cut short by a kill
        raise StoreError(f"{path}: unreadable manifest (not JSON)") from None
    except OSError as exc:
        raise StoreError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(doc, dict):
        raise StoreError(f"{path}: manifest is not a JSON object")
    return doc


def time_span(table: pa.Table, time_col: str) -> tuple[int | None, int | None]:
    """(min, max) of a timestamp column as int64 µs, or (None, None) when empty/all-null."""
    if table.num_rows == 0:
        return None, None
    mm = pc.min_max(table.column(time_col).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()))
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return lo, hi


def _rebuild(
    part_dir: Path, key: Mapping[str, str], time_col: str, old: dict[str, Any] | None
) -> dict[str, Any]:
    """Manifest recomputed from the data file (after a write killed between the two renames)."""
    from alphaforge.data.completeness import partition_completeness

    data = part_dir / DATA_FILE
    try:
        names = pq.read_schema(data).names
        cols = [c for c in (time_col, "agg_trade_id") if c in names]
        table = pq.read_table(data, columns=cols)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"{data}: cannot read data file to rebuild its manifest: {exc}") from exc
    st = data.stat()
    sources = [source_from_dict(s) for s in (old or {}).get("sources", [])]
    return manifest_dict(
        key,
        rows=table.num_rows,
        span=time_span(table, time_col),
        fingerprint=(st.st_size, st.st_mtime_ns),
        sources=sources,
        rebuilt=True,
        completeness=partition_completeness(table, str(key["dataset"])),
    )


def load_manifest(
    part_dir: Path, key: Mapping[str, str], time_col: str, *, locked: bool = False
) -> dict[str, Any] | None:
    """The manifest that describes the data file now in ``part_dir`` (None if no data file).

    Promotes a pending manifest, or rebuilds from the data file, when the stored manifest
    describes an older file (a write killed between its two renames). Pass ``locked=True``
    when the caller already holds :func:`partition_lock` (flock is not re-entrant).
    """
    data = part_dir / DATA_FILE
    try:
        st = data.stat()
    except FileNotFoundError:
        return None
    fp = [st.st_size, st.st_mtime_ns]
    doc = _read_json(part_dir / MANIFEST_FILE)
    if doc is not None and doc.get("fingerprint") == fp:
        return doc
    if locked:
        return _reconcile(part_dir, key, time_col, fp)
    with partition_lock(part_dir):
        return _reconcile(part_dir, key, time_col, fp)


def _reconcile(
    part_dir: Path, key: Mapping[str, str], time_col: str, fp: list[int]
) -> dict[str, Any]:
    """Under the partition lock: promote the pending manifest or rebuild one from the data."""
    pending = _read_json(part_dir / PENDING_FILE, torn_ok=True)
    if pending is not None and pending.get("fingerprint") == fp:
        os.replace(part_dir / PENDING_FILE, part_dir / MANIFEST_FILE)
        fsync_dir(part_dir)
        return pending
    doc = _read_json(part_dir / MANIFEST_FILE)  # re-read under the lock
    if doc is not None and doc.get("fingerprint") == fp:
        return doc
    rebuilt = _rebuild(part_dir, key, time_col, doc)
    write_manifest(part_dir, rebuilt)
    return rebuilt


def source_from_dict(d: Mapping[str, Any]) -> SourceRecord:
    """Inverse of :meth:`SourceRecord.to_dict`."""
    return SourceRecord(
        source=str(d["source"]),
        sha256=None if d.get("sha256") is None else str(d["sha256"]),
        rows=int(d.get("rows", 0)),
        written_at=str(d.get("written_at", "")),
    )


def info_from_dict(doc: Mapping[str, Any], part_dir: Path, *, tier: str = "warm",
                   location: str = "") -> PartitionInfo:  # fmt: skip
    """PartitionInfo from a manifest document."""
    return PartitionInfo(
        exchange=str(doc["exchange"]),
        market=str(doc["market"]),
        dataset=str(doc["dataset"]),
        symbol=str(doc["symbol"]),
        month=str(doc["month"]),
        path=part_dir,
        rows=int(doc["rows"]),
        min_time_us=doc.get("min_time_us"),
        max_time_us=doc.get("max_time_us"),
        file_bytes=int(doc.get("file_bytes", 0)),
        sources=tuple(source_from_dict(s) for s in doc.get("sources", [])),
        validation_status=str(doc.get("validation_status", UNVALIDATED)),
        validation_summary=dict(doc.get("validation_summary", {})),
        rebuilt=bool(doc.get("rebuilt", False)),
        completeness=doc.get("completeness"),
        tier=tier,
        location=location or str(part_dir),
        generation=int(doc.get("generation", 0)),
    )
