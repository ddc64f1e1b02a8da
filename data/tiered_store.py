"""A local store with a cold tier on object storage: recent partitions warm on the local disk,
older ones cold under ``s3://...``, found transparently by every reader.

Each partition lives in one tier (in both only for a moment during a move, when the two copies
are identical and the warm one is read). The policy (``[storage] warm_days``) says a month whose
end lies within ``warm_days`` of now belongs warm, older months cold. Writes go to the tier that
holds the partition, new partitions to the policy's tier; ``alphaforge store tier`` moves
partitions whose tier differs from the policy (:func:`data.tier_move.move_tiers`).

Every decision about where a partition lives is taken under the warm partition's lock, which
writers and the mover share, so a write can never land in a copy that a move is deleting.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from alphaforge.data import manifest as mf
from alphaforge.data import schemas
from alphaforge.data.hot_cache import HotCache, cache_key
from alphaforge.data.manifest import PartitionInfo
from alphaforge.data.object_store import ObjectStore
from alphaforge.data.storage_config import StorageConfig
from alphaforge.data.store import Store, schema_name
from alphaforge.data.store_merge import sorted_by_symbol_time
from alphaforge.data.store_query import month_range, partition_files, read_files

_US = 1_000_000


def month_end_us(month: str) -> int:
    """The first instant (UTC µs) after the month ``YYYY-MM``."""
    y, m = int(month[:4]), int(month[5:7])
    nxt = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=dt.UTC)
    return int(nxt.timestamp()) * _US


def policy_tier(month: str, warm_days: int, now_us: int | None = None) -> str:
    """``warm`` when the month ends within ``warm_days`` of ``now_us`` (default: now), else
    ``cold``."""
    now = now_us if now_us is not None else int(dt.datetime.now(dt.UTC).timestamp() * _US)
    return "warm" if month_end_us(month) >= now - warm_days * 86_400 * _US else "cold"


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _key(p: PartitionInfo) -> tuple[str, str, str, str, str]:
    return (p.exchange, p.market, p.dataset, p.symbol, p.month)


class TieredStore(Store):
    """``warm`` (a local :class:`Store`) plus ``cold`` (an :class:`ObjectStore`).

    Args:
        warm: the local store (its folder is the store's name).
        cold: the cold tier.
        config: the policy (``warm_days``) and prices.
        now_us: "now" for the policy (tests); None = the clock.
    """

    tier = "tiered"

    def __init__(self, warm: Store, cold: ObjectStore, config: StorageConfig,
                 now_us: int | None = None) -> None:  # fmt: skip
        self.warm, self.cold, self.config, self.now_us = warm, cold, config, now_us
        self.root = warm.root
        self.hot: HotCache | None = None
        """The hot tier (a memory-mapped read cache of reads that touch the cold tier)."""

    @property
    def uri(self) -> str:
        return f"{self.warm.uri} (cold: {self.cold.uri})"

    def policy(self, month: str) -> str:
        """The tier the policy wants for ``month``."""
        return policy_tier(month, self.config.warm_days, self.now_us)

    def _where(self, dataset: str, exchange: str, market: str, symbol: str, month: str) -> str:
        return self.warm._where(dataset, exchange, market, symbol, month)

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
        args = (part, base, dataset, exchange, market, symbol, month, source, sha)
        part_dir = self.warm._part_dir(dataset, exchange, market, symbol, month)
        with mf.partition_lock(part_dir):
            if (part_dir / mf.DATA_FILE).exists():
                return self.warm._write_locked(*args)
            cold_rel = self.cold._rel(dataset, exchange, market, symbol, month)
            if self.cold._current(cold_rel)[1] is not None or self.policy(month) == "cold":
                return self.cold._write_partition(*args)
            return self.warm._write_locked(*args)

    def _record_source(self, source: str, sha: str | None, dataset: str, rows: int) -> None:
        self.warm._record_source(source, sha, dataset, rows)

    def has_source(self, source_or_sha256: str) -> bool:
        return self.warm.has_source(source_or_sha256) or self.cold.has_source(source_or_sha256)

    def holds_source(self, sha256: str, dataset: str, exchange: str, market: str, symbol: str,
                     month: str) -> bool:  # fmt: skip
        args = (sha256, dataset, exchange, market, symbol, month)
        return self.warm.holds_source(*args) or self.cold.holds_source(*args)

    def set_validation(
        self,
        partition: PartitionInfo | str | os.PathLike[str],
        status: str,
        summary: Mapping[str, Any] | None = None,
    ) -> PartitionInfo:
        if isinstance(partition, PartitionInfo) and partition.tier == "cold":
            return self.cold.set_validation(partition, status, summary)
        return self.warm.set_validation(partition, status, summary)

    # ------------------------------------------------------------------ listing
    def datasets(self, exchange: str = "binance", market: str = "usdm") -> list[str]:
        return sorted(set(self.warm.datasets(exchange, market))
                      | set(self.cold.datasets(exchange, market)))  # fmt: skip

    def partitions(
        self,
        dataset: str | None = None,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
    ) -> list[PartitionInfo]:
        """Every partition once, with the tier it is read from (warm wins during a move)."""
        warm = self.warm.partitions(dataset, exchange, market, symbol)
        held = {_key(p) for p in warm}
        cold = [p for p in self.cold.partitions(dataset, exchange, market, symbol)
                if _key(p) not in held]  # fmt: skip
        return sorted([*warm, *cold], key=_key)

    def copies(self) -> tuple[list[PartitionInfo], list[PartitionInfo]]:
        """(warm partitions, cold partitions), each tier's own listing (a partition may be in
        both after an interrupted move)."""
        return self.warm.partitions(), self.cold.partitions()

    def dataset_files(self) -> list[tuple[str, pafs.FileSystem, str, list[str]]]:
        warm = self.warm.dataset_files()
        held = {tuple(p.split("=", 1)[1] for p in Path(f).parts[-6:-1])
                for _, _, _, files in warm for f in files}  # fmt: skip
        return [*warm, *self.cold.dataset_files(skip=held)]

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
        schema_name(dataset)
        self._check_market(market, exchange)
        wdir = self.warm._dataset_dir(dataset, exchange, market)
        wfiles = partition_files(wdir, symbols, start_us, end_us) if wdir.is_dir() else []
        held = {(f.parent.parent.name[7:], f.parent.name[6:]) for f in wfiles}
        sel = self.cold._selected(dataset, exchange, market, symbols,
                                  month_range(start_us, end_us))  # fmt: skip
        sel = [(rel, g) for rel, g in sel
               if (rel.split("/")[3][7:], rel.split("/")[4][6:]) not in held]  # fmt: skip
        cfiles = [self.cold.ofs.path(f"{rel}/{d['data_object']}")
                  for (rel, _), d in zip(sel, self.cold._docs(sel), strict=True)]  # fmt: skip
        ids = [(str(f), *_stat(f)) for f in wfiles] + cfiles
        key = cache_key("read", self.uri, dataset, exchange, market, symbols, start_us, end_us,
                        columns, ids)  # fmt: skip
        if cfiles and self.hot is not None and (hit := self.hot.get(key)) is not None:
            return hit
        t = self._read_both(dataset, exchange, market, symbols, start_us, end_us, columns,
                            wfiles, cfiles)  # fmt: skip
        if cfiles and self.hot is not None:
            self.hot.put(key, t)
        return t

    def _read_both(self, dataset: str, exchange: str, market: str,
                   symbols: Sequence[str] | None, start_us: int | None, end_us: int | None,
                   columns: Sequence[str] | None, wfiles: Sequence[Path],
                   cfiles: Sequence[str]) -> pa.Table:  # fmt: skip
        """Rows of the warm files and the cold objects, in (symbol, time) order."""
        base = schema_name(dataset)
        wdir = self.warm._dataset_dir(dataset, exchange, market)
        tcol = schemas.time_column(base)
        cols = list(columns) if columns is not None else schemas.DATASETS[base].names
        need = list(dict.fromkeys([*cols, "symbol", tcol]))  # to order rows of both tiers
        parts = [read_files([str(f) for f in wfiles], str(wdir), base, symbols, start_us, end_us,
                            need)]  # fmt: skip
        if cfiles:
            cdir = self.cold.ofs.path(f"exchange={exchange}/market={market}/dataset={dataset}")
            parts.append(read_files(cfiles, cdir, base, symbols, start_us, end_us, need,
                                    filesystem=self.cold.ofs.fs))  # fmt: skip
            t = pa.concat_tables(parts)
            if not sorted_by_symbol_time(t, tcol):
                order = pc.sort_indices(t, sort_keys=[("symbol", "ascending"), (tcol, "ascending")])
                t = t.take(order)
        else:
            t = parts[0]
        return t.select(cols)
