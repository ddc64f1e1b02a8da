"""The hot tier: recently read panels' inputs as memory-mapped Arrow IPC files, size-bounded.

A read that touches the cold tier (object storage) is kept as one Arrow IPC file named by a hash
of the query and of the exact data it read (cold data object names are unique per content, warm
files are identified by size and mtime), so a cached table can never be stale: any write makes a
new key. A hit maps the file into memory (zero copy, shared by every process on the machine);
files are evicted least-recently-used first once the folder exceeds its bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

SUFFIX = ".arrow"


def cache_key(*parts: Any) -> str:
    """A stable hex key of JSON-able parts (query arguments and data identities)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


class HotCache:
    """Arrow IPC files under ``folder``, at most ``max_bytes`` in all.

    Args:
        folder: created on first write.
        max_bytes: the bound; 0 disables the cache.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)

    def get(self, key: str) -> pa.Table | None:
        """The cached table (memory-mapped), or None."""
        path = self.folder / f"{key}{SUFFIX}"
        try:
            source = pa.memory_map(str(path))
            table = ipc.open_file(source).read_all()
        except (FileNotFoundError, pa.ArrowInvalid, OSError):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used
        return table

    def put(self, key: str, table: pa.Table) -> None:
        """Store ``table`` (atomically: readers see the whole file or none), then evict."""
        if self.max_bytes <= 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{key}{SUFFIX}"
        tmp = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.evict()

    def entries(self) -> list[tuple[Path, int, float]]:
        """(file, bytes, last use) of every cached table, least recently used first."""
        if not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.glob(f"*{SUFFIX}"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((p, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e[2])

    def size_bytes(self) -> int:
        """Bytes held now."""
        return sum(e[1] for e in self.entries())

    def evict(self) -> int:
        """Delete least recently used files until the folder fits its bound; files deleted."""
        entries = self.entries()
        total = sum(e[1] for e in entries)
        gone = 0
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)  # a process that mapped it keeps its mapping
            total -= size
            gone += 1
        return gone
