"""The parquet store: hive-partitioned, zstd, atomic and idempotent writes, pushdown queries.

Layout (DuckDB ``read_parquet('root/**/*.parquet', hive_partitioning=true)``, Polars and Spark
read it as is)::

    root/exchange=<ex>/market=<spot|usdm>/dataset=<name>/symbol=<S>/month=<YYYY-MM>/part-0.parquet
    root/.../month=<YYYY-MM>/_manifest.json       rows, time span, sources, validation status
    root/_sources/<sha256>.json                  sources whose every partition is written

``dataset`` is a schema name of :mod:`data.schemas` (``agg_trades``, ``funding``...), with
``_<interval>`` appended for kline datasets (``klines_1m``, ``mark_klines_1h``). As in Spark, the
partition columns are not repeated inside the files; ``symbol`` comes back from the path. The
month of a row is the UTC month of its time column (``open_time`` for klines).

Writes merge with what is stored, de-duplicate on the dataset's natural key (the newest write
wins) and sort by time; each partition is replaced atomically (see :mod:`data.manifest`), so a
write killed at any moment leaves every partition as before or complete. Time ranges are
half-open: ``start_us <= t < end_us``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from alphaforge.data import manifest as mf
from alphaforge.data import schemas
from alphaforge.data.arrow_pool import fast_pool
from alphaforge.data.completeness import partition_completeness
from alphaforge.data.errors import SchemaError, StoreError
from alphaforge.data.manifest import PartitionInfo, SourceRecord
from alphaforge.data.store_merge import OCCURRENCE, dedupe_sort, split_partitions, with_occurrence
from alphaforge.data.store_query import read_partitions

KLINE_BASES = ("klines", "mark_klines", "index_klines")
MARKETS = ("spot", "usdm", "coinm")
WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _checkpoint(name: str) -> None:
    """Named points inside a write; tests replace this to SIGKILL the process there."""


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What one :meth:`Store.write` did.

    Attributes:
        dataset: the dataset partition value written.
        rows_in: rows in the table passed in.
        rows_added: net new rows stored (after merge and de-duplication).
        partitions: manifest rows of every partition touched, after the write.
        skipped: partitions whose data was already stored exactly (file left untouched).
        seconds: wall time of the write.
    """

    dataset: str
    rows_in: int
    rows_added: int
    partitions: tuple[PartitionInfo, ...]
    skipped: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "dataset": self.dataset,
            "rows_in": self.rows_in,
            "rows_added": self.rows_added,
            "partitions": [p.to_dict() for p in self.partitions],
            "skipped": self.skipped,
            "seconds": self.seconds,
        }


def known_datasets() -> list[str]:
    """Human list of valid dataset names (kline ones with an interval placeholder)."""
    return (
        [f"{b}_<interval>" for b in KLINE_BASES]
        + [d for d in schemas.DATASETS if d not in KLINE_BASES]
        + ["book_snapshots_<levels>"]
    )


def schema_name(dataset: str) -> str:
    """The :mod:`data.schemas` name of a dataset partition value (``klines_1m`` -> ``klines``).

    Raises:
        StoreError: the name is not a known dataset, or a kline dataset lacks a valid interval.
    """
    if dataset in schemas.DATASETS and dataset not in KLINE_BASES:
        return dataset
    base, _, interval = dataset.rpartition("_")
    if base in KLINE_BASES and (interval in schemas.INTERVAL_US or interval == "1M"):
        return base
    if base == "book_snapshots" and interval.isdigit():
        return base  # book_snapshots_<levels>: snapshots of one depth (Tardis book_snapshot_N)
    raise StoreError(
        f"unknown dataset {dataset!r}; known: {', '.join(known_datasets())} "
        f"(intervals: {', '.join(schemas.INTERVAL_US)}, 1M)"
    )


def _merge(old: pa.Table | None, new: pa.Table, base: str, keys: list[str], tcol: str) -> pa.Table:
    """Stored rows + new rows, de-duplicated on the natural key (the newer row wins), sorted.

    Datasets in ``schemas.MULTISET_DATASETS`` have no unique exchange id: their rows merge as a
    multiset (see `store_merge.with_occurrence`), so rows that share a key are all kept.
    """
    if base not in schemas.MULTISET_DATASETS:
        merged = new if old is None else pa.concat_tables([old, new])
        return dedupe_sort(merged, keys, tcol)
    parts = [with_occurrence(t, keys) for t in (old, new) if t is not None]
    merged = dedupe_sort(pa.concat_tables(parts), [*keys, OCCURRENCE], tcol)
    return merged.drop_columns([OCCURRENCE])


def merged_sources(old_doc: Mapping[str, Any] | None, source: str, sha: str | None,
                   rows: int) -> list[SourceRecord]:  # fmt: skip
    """The partition's sources after a write of ``rows`` rows from ``source``: a repeated
    source moves to the end with its new row count, oldest first otherwise."""
    rec = SourceRecord(source, sha, rows, mf.utc_now_iso())
    sources = [mf.source_from_dict(s) for s in (old_doc or {}).get("sources", [])]
    return [s for s in sources if (s.source, s.sha256) != (source, sha)] + [rec]


def cast_to_schema(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """A stored table cast to ``schema`` (columns added to the schema since: nulls)."""
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
            else pa.nulls(t.num_rows, f.type) for f in schema]  # fmt: skip
    return pa.Table.from_arrays(cols, schema=schema)


def check_name(kind: str, value: str) -> None:
    """Partition values become directory names: letters, digits, ``.``, ``_``, ``-`` only.

    Raises:
        StoreError: ``value`` is empty, starts with ``.``/``_``/``-`` or holds other characters.
    """
    if not _SAFE_NAME.match(value):
        raise StoreError(
            f"{kind} {value!r} cannot be a partition value: use letters, digits, '.', '_', '-' "
            "and start with a letter or digit"
        )


class Store:
    """A hive-partitioned parquet store rooted at ``root`` (created on first write)."""

    tier = "warm"
    """Where this store's partitions live (``warm``: a local folder)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def uri(self) -> str:
        """The store's location as given (a folder, or ``s3://bucket/prefix``)."""
        return str(self.root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def _where(self, dataset: str, exchange: str, market: str, symbol: str, month: str) -> str:
        """The partition's location, for messages."""
        return str(self._part_dir(dataset, exchange, market, symbol, month))

    # ------------------------------------------------------------------ paths
    def _dataset_dir(self, dataset: str, exchange: str, market: str) -> Path:
        return self.root / f"exchange={exchange}" / f"market={market}" / f"dataset={dataset}"

    def _part_dir(self, dataset: str, exchange: str, market: str, symbol: str, month: str) -> Path:
        return self._dataset_dir(dataset, exchange, market) / f"symbol={symbol}" / f"month={month}"

    @staticmethod
    def _check_market(market: str, exchange: str = "binance") -> None:
        if market not in MARKETS:
            raise StoreError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}")
        check_name("exchange", exchange)

    # ------------------------------------------------------------------ write
    def write(
        self,
        table: pa.Table,
        dataset: str,
        exchange: str = "binance",
        market: str = "usdm",
        source: str = "unknown",
        source_sha256: str | None = None,
    ) -> WriteReport:
        """Merge ``table`` into the store, one atomic replace per (symbol, month) partition.

        Args:
            table: rows in (or castable to) the dataset's schema of :mod:`data.schemas`.
            dataset: partition value, e.g. ``klines_1m``, ``agg_trades``, ``funding``.
            exchange: e.g. ``binance``, ``bitmex`` (Tardis).
            market: ``spot`` or ``usdm``.
            source: where the rows came from (``archive:<url>``, ``rest:<url>``, ``tardis:<path>``).
            source_sha256: hex sha256 of the source file, or None.

        Returns:
            WriteReport with the manifest row of every partition touched.

        Raises:
            StoreError: unknown dataset/market, or the file system refused a write.
            SchemaError: the table lacks a declared column or cannot be cast.
        """
        with fast_pool():
            return self._write(table, dataset, exchange, market, source, source_sha256)

    def _write(
        self,
        table: pa.Table,
        dataset: str,
        exchange: str,
        market: str,
        source: str,
        source_sha256: str | None,
    ) -> WriteReport:
        t0 = time.perf_counter()
        base = schema_name(dataset)
        self._check_market(market, exchange)
        table = schemas.conform(table, base)
        tcol = schemas.time_column(base)
        if table.column(tcol).null_count or table.column("symbol").null_count:
            raise SchemaError(f"{dataset}: null {tcol!r} or 'symbol' in rows to write ({source})")
        infos: list[PartitionInfo] = []
        added = skipped = 0
        parts = list(split_partitions(table, tcol))
        for symbol, _, _ in parts:
            check_name("symbol", symbol)  # all before the first write

        def one(item: tuple[str, str, pa.Table]) -> tuple[PartitionInfo, int, bool]:
            symbol, month, part = item
            try:
                return self._write_partition(
                    part, base, dataset, exchange, market, symbol, month, source, source_sha256
                )
            except StoreError:
                raise
            except OSError as exc:  # read-only folder, full disk, ...
                where = self._where(dataset, exchange, market, symbol, month)
                raise StoreError(
                    f"{exc.filename or where}: the file system refused the write of {dataset} "
                    f"{symbol} {month} ({exc.strerror or exc}); that partition is as before"
                ) from exc

        workers = min(len(parts), WRITE_THREADS)
        if workers > 1:  # parquet encoding releases the GIL: partitions in parallel
            with ThreadPoolExecutor(workers, thread_name_prefix="store-write") as pool:
                results = list(pool.map(one, parts))
        else:
            results = [one(p) for p in parts]
        for info, n_added, was_skipped in results:
            infos.append(info)
            added += n_added
            skipped += int(was_skipped)
        self._record_source(source, source_sha256, dataset, table.num_rows)
        return WriteReport(
            dataset, table.num_rows, added, tuple(infos), skipped, time.perf_counter() - t0
        )

    def _write_partition(
        self,
        part: pa.Table,
        base: str,
        dataset: str,
        exchange: str,
        market: str,
        symbol: str,
        month: str,
        source: str,
        sha: str | None,
    ) -> tuple[PartitionInfo, int, bool]:
        with mf.partition_lock(self._part_dir(dataset, exchange, market, symbol, month)):
            return self._write_locked(part, base, dataset, exchange, market, symbol, month,
                                      source, sha)  # fmt: skip

    def _write_locked(
        self,
        part: pa.Table,
        base: str,
        dataset: str,
        exchange: str,
        market: str,
        symbol: str,
        month: str,
        source: str,
        sha: str | None,
    ) -> tuple[PartitionInfo, int, bool]:
        """Merge ``part`` into one partition; the caller holds its :func:`partition_lock`."""
        part_dir = self._part_dir(dataset, exchange, market, symbol, month)
        key = {
            "exchange": exchange,
            "market": market,
            "dataset": dataset,
            "symbol": symbol,
            "month": month,
        }
        tcol = schemas.time_column(base)
        keys = [k for k in schemas.NATURAL_KEYS[base] if k != "symbol"]
        data_path = part_dir / mf.DATA_FILE
        mf.clean_leftovers(part_dir)
        old_doc = mf.load_manifest(part_dir, key, tcol, locked=True) if data_path.exists() else None
        old = self._read_file(data_path, part.schema) if old_doc is not None else None
        merged = _merge(old, part, base, keys, tcol)
        sources = merged_sources(old_doc, source, sha, part.num_rows)
        n_old = 0 if old is None else old.num_rows
        if old is not None and old_doc is not None and merged.equals(old):
            doc = dict(old_doc, sources=[s.to_dict() for s in sources])
            mf.write_manifest(part_dir, doc)
            return mf.info_from_dict(doc, part_dir), 0, True
        tmp, fp = mf.write_parquet_tmp(merged, data_path)
        try:
            _checkpoint("data_tmp_written")
            doc = self._commit(part_dir, key, merged, tcol, fp, sources, tmp, data_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return mf.info_from_dict(doc, part_dir), merged.num_rows - n_old, False

    def partition_dir(self, key: Mapping[str, str]) -> Path:
        """The folder of the partition ``key`` (exchange, market, dataset, symbol, month)."""
        return self._part_dir(key["dataset"], key["exchange"], key["market"], key["symbol"],
                              key["month"])  # fmt: skip

    def partition_payload_locked(
        self, key: Mapping[str, str]
    ) -> tuple[bytes, dict[str, Any]] | None:
        """(data file bytes, manifest) of the partition ``key``, or None when it holds no data;
        the caller holds its :func:`partition_lock`."""
        part_dir = self.partition_dir(key)
        data_path = part_dir / mf.DATA_FILE
        if not data_path.exists():
            return None
        tcol = schemas.time_column(schema_name(key["dataset"]))
        doc = mf.load_manifest(part_dir, key, tcol, locked=True)
        if doc is None:
            return None
        payload = data_path.read_bytes()
        if len(payload) != doc.get("file_bytes"):
            raise StoreError(f"{data_path}: changed while being read")
        return payload, doc

    def put_partition_locked(self, key: Mapping[str, str], payload: bytes,
                             doc: Mapping[str, Any]) -> PartitionInfo:  # fmt: skip
        """Replace the partition ``key`` with a complete data file and its manifest (a tier
        move), crash-safe as a write; the caller holds its :func:`partition_lock`."""
        part_dir = self.partition_dir(key)
        data_path = part_dir / mf.DATA_FILE
        tmp = mf.tmp_name(data_path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fdatasync(fh.fileno())
            st = tmp.stat()
            new = {k: v for k, v in doc.items() if k not in ("data_object", "sha256", "generation")}
            new |= {"file_bytes": st.st_size, "fingerprint": [st.st_size, st.st_mtime_ns]}
            mf.write_manifest(part_dir, new, pending=True)
            os.replace(tmp, data_path)
            os.replace(part_dir / mf.PENDING_FILE, part_dir / mf.MANIFEST_FILE)
            mf.fsync_dir(part_dir)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return mf.info_from_dict(new, part_dir)

    def drop_partition_locked(self, key: Mapping[str, str]) -> None:
        """Delete the partition ``key`` (data file first: a reader then sees no partition, never
        a manifest without data); the caller holds its :func:`partition_lock`."""
        part_dir = self.partition_dir(key)
        (part_dir / mf.DATA_FILE).unlink(missing_ok=True)
        mf.fsync_dir(part_dir)
        _checkpoint("warm_data_dropped")
        for name in (mf.MANIFEST_FILE, mf.PENDING_FILE):
            (part_dir / name).unlink(missing_ok=True)
        mf.clean_leftovers(part_dir)

    @staticmethod
    def _commit(part_dir: Path, key: dict[str, str], merged: pa.Table, tcol: str,
                fp: tuple[int, int], sources: list[SourceRecord], tmp: Path,
                data_path: Path) -> dict[str, Any]:  # fmt: skip
        """Pending manifest, data file and manifest replaced in that order (crash-safe)."""
        doc = mf.manifest_dict(
            key,
            rows=merged.num_rows,
            span=mf.time_span(merged, tcol),
            fingerprint=fp,
            sources=sources,
            completeness=partition_completeness(merged, key["dataset"]),
        )
        mf.write_manifest(part_dir, doc, pending=True)
        _checkpoint("pending_written")
        os.replace(tmp, data_path)
        _checkpoint("data_replaced")
        os.replace(part_dir / mf.PENDING_FILE, part_dir / mf.MANIFEST_FILE)
        mf.fsync_dir(part_dir)
        _checkpoint("manifest_replaced")
        return doc

    @staticmethod
    def _read_file(path: Path, schema: pa.Schema) -> pa.Table:
        """A stored data file, cast to ``schema`` (columns added since are filled with nulls)."""
        try:
            t = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{path}: unreadable data file: {exc}") from exc
        return cast_to_schema(t, schema)

    def _record_source(self, source: str, sha: str | None, dataset: str, rows: int) -> None:
        key = sha if sha else hashlib.sha256(source.encode()).hexdigest()
        d = self.root / "_sources"
        d.mkdir(parents=True, exist_ok=True)
        doc = {
            "source": source,
            "sha256": sha,
            "dataset": dataset,
            "rows": rows,
            "written_at": mf.utc_now_iso(),
        }
        # a fixed temp name per source: a record killed mid-way is overwritten by the next one
        tmp, final = d / f".{key}.json.tmp", d / f"{key}.json"
        with open(tmp, "wb") as fh:
            fh.write(json.dumps(doc, sort_keys=True).encode())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, final)
        except FileNotFoundError:  # a concurrent writer of the same source renamed it first
            if not final.exists():
                raise
        mf.fsync_dir(d)
        _checkpoint("source_recorded")

    def has_source(self, source_or_sha256: str) -> bool:
        """True when a write of this source (sha256 hex, or the source string) completed."""
        d = self.root / "_sources"
        s = source_or_sha256
        if _HEX64.match(s.lower()) and (d / f"{s.lower()}.json").exists():
            return True
        return (d / f"{hashlib.sha256(s.encode()).hexdigest()}.json").exists()

    def holds_source(self, sha256: str, dataset: str, exchange: str, market: str, symbol: str,
                     month: str) -> bool:  # fmt: skip
        """True when the (symbol, month) partition exists, its data file matches its manifest
        and the manifest lists a write of the source with this sha256. A deleted or damaged
        partition (a manifest rebuilt from a changed file no longer knows its sources) is not
        held, so a re-pull restores it."""
        part_dir = self._part_dir(dataset, exchange, market, symbol, month)
        if not (part_dir / mf.DATA_FILE).exists():
            return False
        info = self._info(part_dir)
        return (info is not None and not info.rebuilt
                and any(s.sha256 == sha256.lower() for s in info.sources))  # fmt: skip

    # ------------------------------------------------------------------ manifests
    def datasets(self, exchange: str = "binance", market: str = "usdm") -> list[str]:
        """Names of the datasets stored for ``exchange``/``market`` (``klines_1m``, ...), sorted."""
        base = self.root / f"exchange={exchange}" / f"market={market}"
        return sorted(d.name.split("=", 1)[1] for d in base.glob("dataset=*") if d.is_dir())

    def partitions(
        self,
        dataset: str | None = None,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
    ) -> list[PartitionInfo]:
        """Manifest rows of every stored partition matching the filters, sorted by path."""
        if dataset is not None:
            schema_name(dataset)
        pat = "/".join(
            [
                f"exchange={exchange or '*'}",
                f"market={market or '*'}",
                f"dataset={dataset or '*'}",
                f"symbol={symbol or '*'}",
                "month=*",
            ]
        )
        out: list[PartitionInfo] = []
        for part_dir in sorted(self.root.glob(pat)):
            info = self._info(part_dir)
            if info is not None:
                out.append(info)
        return out

    def _info(self, part_dir: Path) -> PartitionInfo | None:
        key = {p.split("=", 1)[0]: p.split("=", 1)[1] for p in part_dir.parts[-5:]}
        try:
            tcol = schemas.time_column(schema_name(key["dataset"]))
        except StoreError:
            return None  # a foreign directory inside the store; not ours to describe
        doc = mf.load_manifest(part_dir, key, tcol)
        return None if doc is None else mf.info_from_dict(doc, part_dir)

    def set_validation(
        self,
        partition: PartitionInfo | str | os.PathLike[str],
        status: str,
        summary: Mapping[str, Any] | None = None,
    ) -> PartitionInfo:
        """Record a validation result in a partition's manifest (reset by the next data change).

        Args:
            partition: a PartitionInfo or the partition directory.
            status: e.g. ``passed``, ``warnings``, ``failed`` (any non-empty string).
            summary: JSON-able details (issue counts...).
        """
        part_dir = partition.path if isinstance(partition, PartitionInfo) else Path(partition)
        if not status:
            raise StoreError("validation status must be a non-empty string")
        info = self._info(part_dir)
        if info is None:
            raise StoreError(f"{part_dir}: no stored partition there")
        with mf.partition_lock(part_dir):
            doc = json.loads((part_dir / mf.MANIFEST_FILE).read_bytes())
            doc["validation_status"] = status
            doc["validation_summary"] = dict(summary or {})
            mf.write_manifest(part_dir, doc)
        return mf.info_from_dict(doc, part_dir)

    def last_time_us(
        self, dataset: str, exchange: str = "binance", market: str = "usdm", symbol: str = ""
    ) -> int | None:
        """Latest stored time (µs) of ``symbol`` in ``dataset``, or None when nothing is stored."""
        parts = self.partitions(dataset, exchange, market, symbol or None)
        times = [p.max_time_us for p in parts if p.max_time_us is not None]
        return max(times) if times else None

    def dataset_files(self) -> list[tuple[str, pafs.FileSystem, str, list[str]]]:
        """(dataset, filesystem, store root on it, data files) of every stored partition, one
        entry per dataset name and tier (SQL views over the store)."""
        out: dict[str, list[str]] = {}
        for f in sorted(self.root.glob(f"exchange=*/market=*/dataset=*/symbol=*/month=*/"
                                       f"{mf.DATA_FILE}")):  # fmt: skip
            out.setdefault(f.parts[-4].split("=", 1)[1], []).append(str(f))
        fs = pafs.LocalFileSystem()
        return [(name, fs, str(self.root), files) for name, files in sorted(out.items())]

    # ------------------------------------------------------------------ read
    def read(
        self,
        dataset: str,
        exchange: str = "binance",
        market: str = "usdm",
        symbols: Sequence[str] | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of ``dataset`` for ``symbols`` with ``start_us <= time < end_us``, sorted by
        (symbol, time), in the declared schema (or ``columns`` of it, in that order).

        Partition directories are pruned by symbol and month; the time filter is pushed down to
        parquet row-group statistics. Nothing stored in range -> an empty table (not an error).

        Raises:
            StoreError: unknown dataset or market, unknown column, unreadable file.
        """
        base = schema_name(dataset)
        self._check_market(market, exchange)
        root = self._dataset_dir(dataset, exchange, market)
        return read_partitions(root, base, symbols, start_us, end_us, columns)
