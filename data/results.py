"""Sweep results in the store: one parquet file per finished chunk, written atomically.

Layout (hive-style, so DuckDB/Polars/Spark read it like the market data)::

    <root>/results/sweep=<sweep_id>/chunk=<00012>.parquet
    <root>/results/sweep=<sweep_id>/_spec.json

The spec's leading underscore hides it from Spark/Hadoop readers (which would otherwise try to
read it as parquet); DuckDB and Polars read ``chunk=*.parquet`` globs (see docs/store.md).

A chunk file exists only once the whole chunk is written (temp file + fsync + rename), so an
interrupted sweep resumes by skipping the chunks whose file exists and recomputing nothing.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alphaforge.data.errors import StoreError

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ResultsStore:
    """Chunked, resumable storage of one sweep's trial rows."""

    def __init__(self, root: str | os.PathLike[str], sweep_id: str) -> None:
        if not _ID.match(sweep_id):
            raise StoreError(f"sweep id {sweep_id!r} must match {_ID.pattern}")
        self.dir = Path(root) / "results" / f"sweep={sweep_id}"
        self.sweep_id = sweep_id

    def _path(self, chunk: int) -> Path:
        return self.dir / f"chunk={chunk:05d}.parquet"

    def write_spec(self, spec: dict[str, Any]) -> None:
        """Record the sweep's specification (refuses a different spec under the same id)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "_spec.json"
        text = json.dumps(spec, sort_keys=True, indent=2)
        if path.exists() and json.loads(path.read_text()) != json.loads(text):
            raise StoreError(f"{path}: a different sweep spec is stored under id {self.sweep_id}")
        _atomic_write(path, text.encode())

    def done(self) -> set[int]:
        """Indices of the chunks already stored."""
        if not self.dir.is_dir():
            return set()
        return {int(p.stem.split("=")[1]) for p in self.dir.glob("chunk=*.parquet")}

    def write_chunk(self, chunk: int, table: pa.Table) -> Path:
        """Store one finished chunk atomically; returns its path."""
        self.dir.mkdir(parents=True, exist_ok=True)
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, compression="zstd")
        path = self._path(chunk)
        _atomic_write(path, buf.getvalue().to_pybytes())
        return path

    def read(self) -> pa.Table:
        """Every stored trial row, ordered by chunk (an empty table when none)."""
        files = sorted(self.dir.glob("chunk=*.parquet")) if self.dir.is_dir() else []
        if not files:
            return pa.table({})
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _atomic_write(path: Path, data: bytes) -> None:
    # os.open with 0o666 lets the umask decide the mode, as for the market-data files
    # (tempfile.mkstemp would make them 0600: unreadable to other users' DuckDB/Spark)
    tmp = str(path.parent / f".tmp-{uuid.uuid4().hex}{path.suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
