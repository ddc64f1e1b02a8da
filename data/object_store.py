"""The parquet store on S3-compatible object storage (``--store s3://bucket/prefix``).

Same partitions, schemas, merge rules and manifests as the local :class:`data.store.Store`;
what differs is the commit, because an object store has no rename and no lock. Every object is
immutable; a partition ``.../symbol=<S>/month=<YYYY-MM>/`` holds::

    data-<generation>-<token>.parquet     a complete data file (one per generation written)
    _manifest/<generation>.json           the manifest of that generation: rows, span, sources,
                                          validation, and the name + sha256 of its data object

The partition is whatever the highest manifest generation says. A write reads generation g,
merges, uploads a new data object (invisible: no manifest names it), then creates manifest g+1
with a conditional PUT (``If-None-Match: *``) and lists the partition to check that nothing newer
exists (cleanup frees old generation names, so a stalled writer's create alone proves nothing; see
:meth:`ObjectStore._commit_gen`). Exactly one writer can create g+1 as the head; a writer that
loses the race learns it at once (412), deletes its object, re-reads g+1 and merges again, so two
writers at once both land, in some order, and nothing is lost (after ``MAX_ATTEMPTS`` lost races
it raises :class:`ConcurrentWriteError`). A writer killed at any point leaves either no new
manifest (readers see generation g, complete) or a complete g+1. After a commit, generations
older than the previous one are deleted, with data objects no kept manifest names; a reader that
raced such a deletion re-resolves the partition once.

Readers list the partition prefixes once (one paginated LIST per dataset), fetch the highest
manifest of each pruned partition concurrently and scan exactly the data objects they name with
``pyarrow.dataset`` over ``pyarrow.fs`` (row-group pushdown of the time range, as locally).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from alphaforge.data import manifest as mf
from alphaforge.data import schemas
from alphaforge.data import store as store_mod
from alphaforge.data.completeness import partition_completeness
from alphaforge.data.errors import ConcurrentWriteError, StoreError
from alphaforge.data.hot_cache import HotCache, cache_key
from alphaforge.data.manifest import PartitionInfo, SourceRecord
from alphaforge.data.object_io import ObjectFS
from alphaforge.data.storage_config import StorageConfig, load_storage_config
from alphaforge.data.store import (
    _HEX64,
    Store,
    _merge,
    cast_to_schema,
    merged_sources,
    schema_name,
)
from alphaforge.data.store_query import month_range, read_files

MAX_ATTEMPTS = 12
_MANIFEST = re.compile(r"^_manifest/(\d{12})\.json$")
_DATA = re.compile(r"^data-(\d{12})-[0-9a-f]+\.parquet$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """``table`` as one zstd parquet file in memory (the local store's writer settings)."""
    sink = pa.BufferOutputStream()
    dict_cols = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table, sink, compression="zstd", row_group_size=1 << 19,
                   use_dictionary=dict_cols or False)  # fmt: skip
    return sink.getvalue()


def _gen_name(gen: int) -> str:
    return f"_manifest/{gen:012d}.json"


class ObjectStore(Store):
    """A hive-partitioned parquet store under ``s3://bucket/prefix`` (see the module doc).

    Args:
        uri: ``s3://bucket/prefix``.
        config: endpoint, region and credentials (default: :func:`load_storage_config`).
    """

    tier = "cold"

    def __init__(self, uri: str, config: StorageConfig | None = None) -> None:
        self.ofs = ObjectFS(uri, config or load_storage_config())
        self.hot: HotCache | None = None
        """The hot tier (a memory-mapped read cache), set by ``open_store`` from the config."""
        self.root = Path(self.ofs.path(""))  # bucket/prefix: a name only, never a local folder

    @property
    def uri(self) -> str:
        return self.ofs.uri

    # ------------------------------------------------------------------ names
    @staticmethod
    def _rel(dataset: str, exchange: str, market: str, symbol: str, month: str) -> str:
        return (f"exchange={exchange}/market={market}/dataset={dataset}/symbol={symbol}/"
                f"month={month}")  # fmt: skip

    def _where(self, dataset: str, exchange: str, market: str, symbol: str, month: str) -> str:
        return self.ofs.where(self._rel(dataset, exchange, market, symbol, month))

    # ------------------------------------------------------------------ manifests
    def _scan(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Partition rel -> {"gens": sorted manifest generations, "data": {name: size}}."""
        out: dict[str, dict[str, Any]] = {}
        for rel, size in self.ofs.list_files(prefix):
            parts = rel.split("/")
            if len(parts) < 6 or not parts[0].startswith("exchange="):
                continue
            part_rel, name = "/".join(parts[:5]), "/".join(parts[5:])
            entry = out.setdefault(part_rel, {"gens": [], "data": {}})
            if m := _MANIFEST.match(name):
                entry["gens"].append(int(m.group(1)))
            elif _DATA.match(name):
                entry["data"][name] = size
        for entry in out.values():
            entry["gens"].sort()
        return {k: v for k, v in out.items() if v["gens"]}

    def _docs(self, rels_gens: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        """The manifests of (partition rel, generation) pairs, fetched concurrently."""
        blobs = self.ofs.get_many([f"{r}/{_gen_name(g)}" for r, g in rels_gens])
        docs = []
        for (rel, gen), blob in zip(rels_gens, blobs, strict=True):
            if blob is None:
                raise StoreError(f"{self.ofs.where(rel)}: manifest generation {gen} vanished "
                                 "while reading (a concurrent cleanup); retry")  # fmt: skip
            try:
                doc = json.loads(blob)
            except ValueError:
                raise StoreError(f"{self.ofs.where(rel)}/{_gen_name(gen)}: unreadable manifest "
                                 "(not JSON)") from None  # fmt: skip
            docs.append(doc)
        return docs

    def _current(self, rel: str) -> tuple[int, dict[str, Any] | None]:
        """(generation, manifest) of one partition; (0, None) when it does not exist."""
        gens = self._scan(rel).get(rel, {}).get("gens", [])
        if not gens:
            return 0, None
        return gens[-1], self._docs([(rel, gens[-1])])[0]

    def _info_of(self, rel: str, doc: Mapping[str, Any]) -> PartitionInfo:
        return mf.info_from_dict(doc, PurePosixPath(self.ofs.path(rel)),  # type: ignore[arg-type]
                                 tier=self.tier, location=self.ofs.where(rel))  # fmt: skip

    def _commit_gen(self, rel: str, gen: int, doc: dict[str, Any]) -> bool:
        """Create manifest ``gen`` of ``rel`` as the partition's new head; True when it is.

        Two checks follow the conditional create, and either failing makes the commit count as
        lost (the caller merges again onto the current head), never as done:

        - the manifest is read back and must carry this commit's token: a server that ignores
          ``If-None-Match`` (some S3-compatible servers do) lets a second writer overwrite it;
        - no newer generation may exist. Cleanup deletes generation k once k+2 is committed,
          so a writer that read generation ``gen - 1`` and stalled while others committed
          ``gen`` .. ``gen + 2`` finds the name ``gen`` free again: its create succeeds, below
          the head, where no reader looks. Heads only grow and the newest two generations are
          never deleted, so "nothing above ``gen`` after the create" proves the name was new.
        """
        token = uuid.uuid4().hex
        name = f"{rel}/{_gen_name(gen)}"
        payload = json.dumps(dict(doc, generation=gen, commit_token=token), indent=1,
                             sort_keys=True).encode()  # fmt: skip
        if not self.ofs.create_exclusive(name, payload):
            return False
        back = self.ofs.get(name)
        if back is None:
            raise StoreError(f"{self.ofs.where(name)}: created but not readable back; the "
                             "server lost a committed manifest")  # fmt: skip
        if json.loads(back).get("commit_token") != token:
            warnings.warn(f"{self.ofs.where(name)}: the server let another writer overwrite a "
                          "conditional create (If-None-Match unsupported?); retrying this "
                          "write on top of it", RuntimeWarning, stacklevel=2)  # fmt: skip
            return False
        gens = self._scan(rel).get(rel, {}).get("gens", [])
        if gens and gens[-1] > gen:
            # The name was free only because cleanup had deleted generation ``gen`` after
            # newer ones were committed: this manifest sits below the head, invisible, and was
            # merged onto a stale generation. Withdraw it; the caller merges onto the head.
            self.ofs.delete([name])
            return False
        return True

    def _gc(self, rel: str, gen: int, keep_data: set[str]) -> None:
        """Delete manifests older than ``gen - 1`` and data objects no kept manifest names."""
        entry = self._scan(rel).get(rel)
        if entry is None:
            return
        old = [f"{rel}/{_gen_name(g)}" for g in entry["gens"] if g < gen - 1]
        dead = [f"{rel}/{n}" for n in entry["data"]
                if n not in keep_data and int(n[5:17]) <= gen]  # fmt: skip
        self.ofs.delete([*old, *dead])

    def _read_data(self, rel: str, doc: Mapping[str, Any], schema: pa.Schema) -> pa.Table:
        """A partition's data object, checked against the manifest's sha256, cast to schema."""
        name = str(doc["data_object"])
        blob = self.ofs.get(f"{rel}/{name}")
        if blob is None:
            raise StoreError(f"{self.ofs.where(rel)}/{name}: data object named by manifest "
                             f"generation {doc.get('generation')} is missing")  # fmt: skip
        if hashlib.sha256(blob).hexdigest() != doc.get("sha256"):
            raise StoreError(f"{self.ofs.where(rel)}/{name}: sha256 differs from the manifest's "
                             "(the object was changed outside alphaforge)")  # fmt: skip
        return cast_to_schema(pq.read_table(pa.BufferReader(blob)), schema)

    # ------------------------------------------------------------------ write
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
        rel = self._rel(dataset, exchange, market, symbol, month)
        key = {"exchange": exchange, "market": market, "dataset": dataset, "symbol": symbol,
               "month": month}  # fmt: skip
        tcol = schemas.time_column(base)
        keys = [k for k in schemas.NATURAL_KEYS[base] if k != "symbol"]
        for _ in range(MAX_ATTEMPTS):
            gen, old_doc = self._current(rel)
            old = self._read_data(rel, old_doc, part.schema) if old_doc is not None else None
            merged = _merge(old, part, base, keys, tcol)
            sources = merged_sources(old_doc, source, sha, part.num_rows)
            if old is not None and old_doc is not None and merged.equals(old):
                doc = dict(old_doc, sources=[s.to_dict() for s in sources])
                if self._commit_gen(rel, gen + 1, doc):
                    self._gc(rel, gen + 1, {str(old_doc["data_object"])})
                    return self._info_of(rel, dict(doc, generation=gen + 1)), 0, True
                continue
            doc = self._put_data(rel, key, merged, tcol, sources, gen + 1)
            store_mod._checkpoint("data_tmp_written")
            if self._commit_gen(rel, gen + 1, doc):
                store_mod._checkpoint("manifest_replaced")
                keep = {str(doc["data_object"])}
                if old_doc is not None:
                    keep.add(str(old_doc["data_object"]))
                self._gc(rel, gen + 1, keep)
                n_old = 0 if old is None else old.num_rows
                return (
                    self._info_of(rel, dict(doc, generation=gen + 1)),
                    merged.num_rows - n_old,
                    False,
                )
            self.ofs.delete([f"{rel}/{doc['data_object']}"])  # lost the race: merge again
        raise ConcurrentWriteError(
            f"{self.ofs.where(rel)}: other writers committed this partition first "
            f"{MAX_ATTEMPTS} times in a row; nothing of this write ({source}) is stored there"
        )

    def _put_data(self, rel: str, key: dict[str, str], merged: pa.Table, tcol: str,
                  sources: list[SourceRecord], gen: int) -> dict[str, Any]:  # fmt: skip
        """Upload the merged data as a new immutable object; its manifest document."""
        payload = parquet_bytes(merged)
        name = f"data-{gen:012d}-{uuid.uuid4().hex[:12]}.parquet"
        self.ofs.put(f"{rel}/{name}", payload)
        doc = mf.manifest_dict(
            key, rows=merged.num_rows, span=mf.time_span(merged, tcol),
            fingerprint=(payload.size, 0), sources=sources,
            completeness=partition_completeness(merged, key["dataset"]),
        )  # fmt: skip
        doc |= {"data_object": name, "sha256": hashlib.sha256(payload).hexdigest()}
        return doc

    def put_partition(self, key: Mapping[str, str], payload: bytes,
                      doc: Mapping[str, Any]) -> PartitionInfo:  # fmt: skip
        """Store a complete data file with its manifest as the next generation of the
        partition ``key`` (a tier move). The data is verified by reading it back.

        Raises:
            ConcurrentWriteError: another writer committed the partition meanwhile.
            StoreError: the read-back differs from ``payload``.
        """
        rel = self._rel(key["dataset"], key["exchange"], key["market"], key["symbol"],
                        key["month"])  # fmt: skip
        gen, _ = self._current(rel)
        sha = hashlib.sha256(payload).hexdigest()
        name = f"data-{gen + 1:012d}-{uuid.uuid4().hex[:12]}.parquet"
        self.ofs.put(f"{rel}/{name}", payload)
        back = self.ofs.get(f"{rel}/{name}")
        if back is None or hashlib.sha256(back).hexdigest() != sha:
            self.ofs.delete([f"{rel}/{name}"])
            raise StoreError(f"{self.ofs.where(rel)}/{name}: read-back checksum differs")
        store_mod._checkpoint("tier_data_copied")
        new = dict(doc, data_object=name, sha256=sha, file_bytes=len(payload),
                   fingerprint=[len(payload), 0])  # fmt: skip
        if not self._commit_gen(rel, gen + 1, new):
            self.ofs.delete([f"{rel}/{name}"])
            raise ConcurrentWriteError(f"{self.ofs.where(rel)}: written by another writer "
                                       "during the move; run the move again")  # fmt: skip
        self._gc(rel, gen + 1, {name})
        return self._info_of(rel, dict(new, generation=gen + 1))

    def partition_payload(self, info: PartitionInfo) -> tuple[bytes, dict[str, Any]]:
        """(data file bytes, manifest) of a stored partition, checksum-verified."""
        rel = self._rel(info.dataset, info.exchange, info.market, info.symbol, info.month)
        _, doc = self._current(rel)
        if doc is None:
            raise StoreError(f"{self.ofs.where(rel)}: no stored partition there")
        name = str(doc["data_object"])
        blob = self.ofs.get(f"{rel}/{name}")
        if blob is None or hashlib.sha256(blob).hexdigest() != doc.get("sha256"):
            raise StoreError(f"{self.ofs.where(rel)}/{name}: missing or changed data object")
        return blob, doc

    def drop_partition(self, info: PartitionInfo) -> None:
        """Delete every object of a partition: manifests first, oldest first, the head last, so
        a reader (or a drop cut short) sees the newest generation complete or no partition,
        never an older generation as the head and never a manifest whose data is gone."""
        rel = self._rel(info.dataset, info.exchange, info.market, info.symbol, info.month)
        entry = self._scan(rel).get(rel)
        if entry is None:
            return
        self.ofs.delete([f"{rel}/{_gen_name(g)}" for g in entry["gens"]])
        self.ofs.delete([f"{rel}/{n}" for n in entry["data"]])

    def _record_source(self, source: str, sha: str | None, dataset: str, rows: int) -> None:
        key = sha if sha else hashlib.sha256(source.encode()).hexdigest()
        doc = {"source": source, "sha256": sha, "dataset": dataset, "rows": rows,
               "written_at": mf.utc_now_iso()}  # fmt: skip
        self.ofs.put(f"_sources/{key}.json", json.dumps(doc, sort_keys=True).encode())
        store_mod._checkpoint("source_recorded")

    def has_source(self, source_or_sha256: str) -> bool:
        s = source_or_sha256
        if _HEX64.match(s.lower()) and self.ofs.exists(f"_sources/{s.lower()}.json"):
            return True
        return self.ofs.exists(f"_sources/{hashlib.sha256(s.encode()).hexdigest()}.json")

    def holds_source(self, sha256: str, dataset: str, exchange: str, market: str, symbol: str,
                     month: str) -> bool:  # fmt: skip
        _, doc = self._current(self._rel(dataset, exchange, market, symbol, month))
        return doc is not None and any(
            s.get("sha256") == sha256.lower() for s in doc.get("sources", [])
        )

    # ------------------------------------------------------------------ listing
    def datasets(self, exchange: str = "binance", market: str = "usdm") -> list[str]:
        names = self.ofs.list_dirs(f"exchange={exchange}/market={market}")
        return sorted(n.split("=", 1)[1] for n in names if n.startswith("dataset="))

    def _selected(self, dataset: str | None, exchange: str | None, market: str | None,
                  symbols: Sequence[str] | None,
                  months: tuple[str | None, str | None] = (None, None),
                  ) -> list[tuple[str, int]]:  # fmt: skip
        """(partition rel, newest generation) of the partitions matching the filters."""
        prefix = ""
        if exchange is not None:
            prefix = f"exchange={exchange}"
            if market is not None:
                prefix += f"/market={market}"
                if dataset is not None:
                    prefix += f"/dataset={dataset}"
        want = {"exchange": exchange, "market": market, "dataset": dataset}
        syms = None if symbols is None else {s for s in symbols if _SAFE.match(s)}
        out = []
        for rel, entry in sorted(self._scan(prefix).items()):
            kv = dict(p.split("=", 1) for p in rel.split("/"))
            if any(v is not None and kv.get(k) != v for k, v in want.items()):
                continue
            if syms is not None and kv["symbol"] not in syms:
                continue
            if (months[0] and kv["month"] < months[0]) or (months[1] and kv["month"] > months[1]):
                continue
            out.append((rel, entry["gens"][-1]))
        return out

    def partitions(
        self,
        dataset: str | None = None,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
    ) -> list[PartitionInfo]:
        if dataset is not None:
            schema_name(dataset)
        sel = self._selected(dataset, exchange, market, None if symbol is None else [symbol])
        return [self._info_of(rel, d) for (rel, _), d in zip(sel, self._docs(sel), strict=True)]

    def set_validation(
        self,
        partition: PartitionInfo | str | os.PathLike[str],
        status: str,
        summary: Mapping[str, Any] | None = None,
    ) -> PartitionInfo:
        if not isinstance(partition, PartitionInfo):
            raise StoreError("on object storage, pass the PartitionInfo from partitions()")
        if not status:
            raise StoreError("validation status must be a non-empty string")
        p = partition
        rel = self._rel(p.dataset, p.exchange, p.market, p.symbol, p.month)
        for _ in range(MAX_ATTEMPTS):
            gen, doc = self._current(rel)
            if doc is None:
                raise StoreError(f"{self.ofs.where(rel)}: no stored partition there")
            new = dict(doc, validation_status=status, validation_summary=dict(summary or {}))
            if self._commit_gen(rel, gen + 1, new):
                self._gc(rel, gen + 1, {str(doc["data_object"])})
                return self._info_of(rel, dict(new, generation=gen + 1))
        raise ConcurrentWriteError(f"{self.ofs.where(rel)}: validation status not recorded: "
                                   "other writers kept committing first")  # fmt: skip

    def dataset_files(self, skip: set[tuple[str, ...]] | None = None,
                      ) -> list[tuple[str, pafs.FileSystem, str, list[str]]]:  # fmt: skip
        """(dataset, filesystem, store root, current data objects) per dataset; partitions
        whose (exchange, market, dataset, symbol, month) is in ``skip`` are left out."""
        sel = self._selected(None, None, None, None)
        out: dict[str, list[str]] = {}
        for (rel, _), doc in zip(sel, self._docs(sel), strict=True):
            key = tuple(p.split("=", 1)[1] for p in rel.split("/"))
            if skip is None or key not in skip:
                out.setdefault(key[2], []).append(self.ofs.path(f"{rel}/{doc['data_object']}"))
        return [(n, self.ofs.fs, self.ofs.path(""), f) for n, f in sorted(out.items())]

    # ------------------------------------------------------------------ read
    def data_files(self, dataset: str, exchange: str, market: str,
                   symbols: Sequence[str] | None, start_us: int | None,
                   end_us: int | None) -> list[str]:  # fmt: skip
        """``pyarrow.fs`` paths of the current data objects of the pruned partitions."""
        sel = self._selected(dataset, exchange, market, symbols, month_range(start_us, end_us))
        return [self.ofs.path(f"{rel}/{d['data_object']}")
                for (rel, _), d in zip(sel, self._docs(sel), strict=True)]  # fmt: skip

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
        base = schema_name(dataset)
        self._check_market(market, exchange)
        base_dir = self.ofs.path(f"exchange={exchange}/market={market}/dataset={dataset}")
        for attempt in range(2):
            files = self.data_files(dataset, exchange, market, symbols, start_us, end_us)
            key = cache_key("read", self.uri, dataset, exchange, market, symbols, start_us,
                            end_us, columns, files)  # fmt: skip
            if self.hot is not None and (hit := self.hot.get(key)) is not None:
                return hit
            try:
                table = read_files(files, base_dir, base, symbols, start_us, end_us, columns,
                                   filesystem=self.ofs.fs)  # fmt: skip
            except StoreError:
                if attempt:  # a writer's cleanup raced the read: resolve the partitions again
                    raise
                continue
            if self.hot is not None and files:
                self.hot.put(key, table)
            return table
        raise AssertionError("unreachable")
