"""Bounded decompression: a compressed input may not expand beyond a sane multiple of itself.

Binance archive CSVs expand 3-10x when unzipped (klines about 3x, bookTicker about 10x),
CryptoDataDownload and Tardis CSVs similarly; a decompression bomb expands about 1,000x. Every
reader of gzip or zip input in ``data/`` decompresses through this module, which counts the
bytes it hands out and raises ``SchemaError`` naming the file once they exceed
``expansion_limit(compressed size)``: ``MAX_EXPANSION`` times the compressed size, and never
less than ``MIN_LIMIT_BYTES`` (tiny files compress oddly). ``ALPHAFORGE_MAX_EXPANSION`` raises
the factor for an unusual but trusted file. Memory therefore stays bounded by the limit
whatever the input claims (a gzip trailer's size field is not trusted).
"""

from __future__ import annotations

import io
import os
import zlib
from typing import IO

from alphaforge.data.errors import SchemaError

MAX_EXPANSION = 100
"""Default: refuse input that expands more than this many times its compressed size."""
MIN_LIMIT_BYTES = 64 << 20
"""Never refuse below 64 MiB of decompressed data."""
_CHUNK = 1 << 20


def expansion_limit(compressed_bytes: int) -> int:
    """Most decompressed bytes allowed from ``compressed_bytes`` of input."""
    factor = float(os.environ.get("ALPHAFORGE_MAX_EXPANSION") or MAX_EXPANSION)
    return max(MIN_LIMIT_BYTES, int(factor * max(compressed_bytes, 0)))


def _too_big(name: str, compressed: int, limit: int) -> SchemaError:
    return SchemaError(
        f"{name}: decompresses to more than {limit:,} bytes from {compressed:,} compressed "
        f"(over {limit // max(compressed, 1):,}x; archive files expand 3-10x): refusing a "
        "likely decompression bomb (set ALPHAFORGE_MAX_EXPANSION to allow more)"
    )


class CappedReader(io.RawIOBase):
    """A binary stream over ``inner`` that raises ``SchemaError`` past ``limit`` bytes read."""

    def __init__(self, inner: IO[bytes], name: str, compressed: int) -> None:
        super().__init__()
        self.inner, self.name_, self.compressed = inner, name, compressed
        self.limit = expansion_limit(compressed)
        self.count = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.inner.close()
        super().close()

    def _counted(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count > self.limit:
            raise _too_big(self.name_, self.compressed, self.limit)
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # read all: still in bounded chunks
            parts = []
            while chunk := self.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        return self._counted(self.inner.read(size))

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        return self._counted(self.inner.readline(-1 if size is None else size))


def gunzip(raw: bytes, name: str) -> bytes:
    """Decompress gzip bytes (every member) within ``expansion_limit(len(raw))``.

    Raises:
        SchemaError: the output would exceed the limit, or the data is not valid gzip.
    """
    limit = expansion_limit(len(raw))
    out: list[bytes] = []
    total = 0
    data = raw
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while data:
                chunk = d.decompress(data, _CHUNK)
                total += len(chunk)
                if total > limit:
                    raise _too_big(name, len(raw), limit)
                out.append(chunk)
                data = d.unconsumed_tail
            while not d.eof and (chunk := d.flush(_CHUNK)):
                total += len(chunk)
                if total > limit:
                    raise _too_big(name, len(raw), limit)
                out.append(chunk)
            if not d.eof:
                raise SchemaError(f"{name}: truncated gzip data")
            data = d.unused_data.lstrip(b"\x00")
    except zlib.error as exc:
        raise SchemaError(f"{name}: corrupt gzip data ({exc})") from None
    return b"".join(out)
