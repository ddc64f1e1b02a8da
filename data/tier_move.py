"""``alphaforge store tier``: move partitions between the warm (local) and cold (object) tiers
as the policy says, resumably, verified by checksum, the store complete at every instant.

warm -> cold, under the warm partition's lock (writers wait): read the local file and its
manifest; unless the cold tier already holds a copy with the same sha256 (a resumed move),
upload it as the partition's next cold generation and read it back (sha256 compared); only then
delete the local data file, then its manifest. cold -> warm, under the same lock: download and
check the sha256 against the cold manifest, write the local copy crash-safe (temp file, pending
manifest, renames), then delete the cold objects (manifests first).

A kill at any instant leaves the partition complete in at least one tier; when both hold it the
warm copy is read and written (it is the newer one or identical), and the next run finishes the
move. The report lists every partition moved, resumed or (``--dry-run``) planned.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alphaforge.data import manifest as mf
from alphaforge.data import store as store_mod
from alphaforge.data.errors import StoreError
from alphaforge.data.manifest import PartitionInfo
from alphaforge.data.tiered_store import TieredStore

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class TierMove:
    """One partition's move: its key, ``warm``/``cold`` source and target, bytes, and
    ``action``: ``moved``, ``resumed`` (the target held a verified copy already: only the
    source was deleted), ``planned`` (dry run)."""

    key: dict[str, str]
    source: str
    target: str
    bytes: int
    action: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {**self.key, "from": self.source, "to": self.target, "bytes": self.bytes,
                "action": self.action}  # fmt: skip


@dataclass(slots=True)
class TierReport:
    """What a tier run did: the moves, partitions already in their tier, wall time."""

    moves: list[TierMove] = field(default_factory=list)
    in_place: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"moves": [m.to_dict() for m in self.moves], "in_place": self.in_place,
                "moved_bytes": sum(m.bytes for m in self.moves if m.action != "planned"),
                "seconds": self.seconds}  # fmt: skip


def _key(p: PartitionInfo) -> dict[str, str]:
    return {"exchange": p.exchange, "market": p.market, "dataset": p.dataset,
            "symbol": p.symbol, "month": p.month}  # fmt: skip


def move_tiers(store: TieredStore, *, dry_run: bool = False,
               progress: Progress | None = None) -> TierReport:  # fmt: skip
    """Move every partition whose tier differs from the policy (see the module docstring).

    Raises:
        StoreError: a copy failed verification or a tier refused a write (partitions moved
            before it stay moved; the one at fault stays complete where it was).
    """
    t0 = time.perf_counter()
    warm, cold = store.copies()
    by_key: dict[tuple[str, ...], dict[str, PartitionInfo]] = {}
    for p in warm:
        by_key.setdefault(tuple(_key(p).values()), {})["warm"] = p
    for p in cold:
        by_key.setdefault(tuple(_key(p).values()), {})["cold"] = p
    report = TierReport()
    todo = []
    for k in sorted(by_key):
        held = by_key[k]
        want = store.policy(k[4])
        other = "cold" if want == "warm" else "warm"
        if other in held:
            todo.append((held[other], other, want, want in held))
        else:
            report.in_place += 1
    for i, (info, src, dst, resume) in enumerate(todo):
        if progress is not None:
            progress(i, len(todo), f"{info.dataset} {info.symbol} {info.month}: {src} -> {dst}")
        if dry_run:
            report.moves.append(TierMove(_key(info), src, dst, info.file_bytes, "planned"))
            continue
        move = _to_cold(store, info) if dst == "cold" else _to_warm(store, info, resume)
        if move is not None:
            report.moves.append(move)
    if progress is not None:
        progress(len(todo), len(todo), "done")
    report.seconds = time.perf_counter() - t0
    return report


def _to_cold(store: TieredStore, info: PartitionInfo) -> TierMove | None:
    key = _key(info)
    with mf.partition_lock(store.warm.partition_dir(key)):
        got = store.warm.partition_payload_locked(key)
        if got is None:
            return None  # moved or deleted meanwhile
        payload, doc = got
        sha = hashlib.sha256(payload).hexdigest()
        rel = store.cold._rel(key["dataset"], key["exchange"], key["market"], key["symbol"],
                              key["month"])  # fmt: skip
        _, cold_doc = store.cold._current(rel)
        resumed = cold_doc is not None and cold_doc.get("sha256") == sha
        if not resumed:
            store.cold.put_partition(key, payload, doc)
        store_mod._checkpoint("tier_cold_committed")
        store.warm.drop_partition_locked(key)
    return TierMove(key, "warm", "cold", len(payload), "resumed" if resumed else "moved")


def _to_warm(store: TieredStore, info: PartitionInfo, warm_held: bool) -> TierMove:
    key = _key(info)
    with mf.partition_lock(store.warm.partition_dir(key)):
        n = info.file_bytes
        if store.warm.partition_payload_locked(key) is None:
            payload, doc = store.cold.partition_payload(info)
            store.warm.put_partition_locked(key, payload, doc)
            back = store.warm.partition_payload_locked(key)
            if back is None or hashlib.sha256(back[0]).hexdigest() != doc["sha256"]:
                raise StoreError(f"{store.warm.partition_dir(key)}: local copy differs from "
                                 f"{info.location}; the cold copy is kept")  # fmt: skip
            n, warm_held = len(payload), False
        store_mod._checkpoint("tier_warm_committed")
        store.cold.drop_partition(info)
    return TierMove(key, "cold", "warm", n, "resumed" if warm_held else "moved")
