"""Binance bulk-archive CSV reader (data.binance.vision files) -> schema-conformant Arrow tables.

The archive ships one CSV per zip. Its quirks, all handled here, per file:

- a header row is present in USD-M files and absent in spot files (some third-party copies add
  one): detected from the first line;
- timestamps are epoch milliseconds, except spot files from 2025-01-01 on, which use
  microseconds: decided per file and per time column from the magnitude of the values;
- optional trailing columns (``is_best_match`` in spot aggTrades/trades) are detected from the
  number of fields.

Parsing is vectorized (``pyarrow.csv`` with explicit column types); a zip member is streamed out
of the archive without extracting it to disk. Downloading and checksum verification live in
``data.archive_fetch``.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alphaforge.data import schemas
from alphaforge.data.arrow_pool import fast_pool
from alphaforge.data.csv_locate import iter_lines, locate_csv_error
from alphaforge.data.decompress import CappedReader, expansion_limit
from alphaforge.data.errors import SchemaError
from alphaforge.data.metrics import parse_metrics

__all__ = ["ARCHIVE_COLUMNS", "MICROS_THRESHOLD", "base_dataset", "read_archive_csv"]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

MICROS_THRESHOLD: Final = 10**14
"""Epoch values at or above this are microseconds (year 5138 in ms, 1973 in µs)."""

_I, _F, _B, _T, _SKIP = pa.int64(), pa.float64(), pa.bool_(), "time", None


@dataclass(frozen=True, slots=True)
class _Col:
    name: str  # archive column name (used for the file's own header when absent)
    out: str | None  # schema column it becomes, None to drop
    kind: object  # pa.DataType, "time" (epoch ms or µs), or None (ignored)


def _c(name: str, out: str | None, kind: object) -> _Col:
    return _Col(name, out, kind)


ARCHIVE_COLUMNS: Final[dict[str, tuple[_Col, ...]]] = {
    "klines": (
        _c("open_time", "open_time", _T),
        _c("open", "open", _F),
        _c("high", "high", _F),
        _c("low", "low", _F),
        _c("close", "close", _F),
        _c("volume", "volume", _F),
        _c("close_time", "close_time", _T),
        _c("quote_volume", "quote_volume", _F),
        _c("count", "trades", _I),
        _c("taker_buy_volume", "taker_buy_volume", _F),
        _c("taker_buy_quote_volume", "taker_buy_quote_volume", _F),
        _c("ignore", None, _SKIP),
    ),
    "agg_trades": (
        _c("agg_trade_id", "agg_trade_id", _I),
        _c("price", "price", _F),
        _c("quantity", "qty", _F),
        _c("first_trade_id", "first_trade_id", _I),
        _c("last_trade_id", "last_trade_id", _I),
        _c("transact_time", "ts", _T),
        _c("is_buyer_maker", "is_buyer_maker", _B),
        _c("is_best_match", None, _SKIP),
    ),
    "trades": (
        _c("id", "trade_id", _I),
        _c("price", "price", _F),
        _c("qty", "qty", _F),
        _c("quote_qty", "quote_qty", _F),
        _c("time", "ts", _T),
        _c("is_buyer_maker", "is_buyer_maker", _B),
        _c("is_best_match", None, _SKIP),
    ),
    "funding": (
        _c("calc_time", "funding_time", _T),
        _c("funding_interval_hours", "funding_interval_hours", _F),
        _c("last_funding_rate", "funding_rate", _F),
    ),
    "book_ticker": (
        _c("update_id", "update_id", _I),
        _c("best_bid_price", "bid_px", _F),
        _c("best_bid_qty", "bid_qty", _F),
        _c("best_ask_price", "ask_px", _F),
        _c("best_ask_qty", "ask_qty", _F),
        _c("transaction_time", "ts", _T),
        _c("event_time", None, _SKIP),
    ),
}
"""Archive CSV layout per dataset, in file order. Trailing columns may be absent."""

_BLOCK_SIZE: Final = 1 << 22
"""CSV block per parse task: 4 MiB parsed fastest on 2 cores (1 MiB: 1.6x the time, 8 MiB:
uneven tails)."""

_MIN_FIELDS: Final = {"klines": 11, "agg_trades": 7, "trades": 6, "funding": 3, "book_ticker": 6}


def base_dataset(dataset: str) -> str:
    """Schema name of a dataset partition value: ``klines_1m`` -> ``klines``.

    Raises:
        SchemaError: the name is not an archive dataset.
    """
    for kind in ("mark_klines", "index_klines", "klines"):
        if dataset == kind or dataset.startswith(kind + "_"):
            return kind
    if dataset in ARCHIVE_COLUMNS or dataset == "metrics":  # metrics: data.metrics
        return dataset
    known = "klines[_<interval>], mark_klines, index_klines, metrics, " + ", ".join(
        k for k in ARCHIVE_COLUMNS if k != "klines"
    )
    raise SchemaError(f"unknown archive dataset {dataset!r}; expected one of {known}")


def _layout(dataset: str) -> tuple[str, tuple[_Col, ...]]:
    kind = base_dataset(dataset)
    cols_key = "klines" if kind.endswith("klines") else kind
    return kind, ARCHIVE_COLUMNS[cols_key]


def _source_name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    return str(getattr(source, "name", "<stream>"))


def _open_stream(
    source: Source, stack: ExitStack, name: str, expected_member: str | None = None
) -> tuple[IO[bytes], str]:
    """Open ``source`` as a binary stream of CSV text; ``stack`` closes what was opened here.

    Zip members and gzip are decompressed on the fly; nothing is extracted to disk. A zip must
    hold one CSV, named ``expected_member`` when given (a mislabelled archive is refused).
    """
    if isinstance(source, str | os.PathLike):
        raw: IO[bytes] = stack.enter_context(open(source, "rb"))  # noqa: SIM115 - ExitStack
    elif isinstance(source, bytes | bytearray | memoryview):
        raw = io.BytesIO(bytes(source))
    else:
        raw = source
    if not raw.seekable():
        raw = io.BytesIO(raw.read())
    magic = raw.read(4)
    raw.seek(0)
    if magic[:4] == b"PK\x03\x04":
        zf = stack.enter_context(zipfile.ZipFile(raw))
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise SchemaError(f"{name}: expected one CSV inside the zip, found {len(members)}")
        info = members[0]
        if info.file_size > expansion_limit(info.compress_size):  # zipfile stops at file_size
            limit = expansion_limit(info.compress_size)
            raise SchemaError(
                f"{name}: {info.filename} declares {info.file_size:,} bytes from "
                f"{info.compress_size:,} compressed (limit {limit:,}, archive files expand "
                "3-10x): refusing a likely decompression bomb (set ALPHAFORGE_MAX_EXPANSION to "
                "allow more)"
            )
        if expected_member is not None and members[0].filename != expected_member:
            raise SchemaError(
                f"{name}: the zip holds {members[0].filename!r}, expected {expected_member!r} "
                "(its rows would be stored under the wrong symbol, dataset or interval)"
            )
        member = stack.enter_context(zf.open(members[0]))
        return member, f"{name}!{members[0].filename}"
    if magic[:2] == b"\x1f\x8b":
        size = raw.seek(0, io.SEEK_END)
        raw.seek(0)
        gz = stack.enter_context(gzip.GzipFile(fileobj=raw))
        capped = stack.enter_context(CappedReader(gz, name, size))  # type: ignore[arg-type]
        return capped, name  # type: ignore[return-value]  # a binary IO
    return raw, name


def _first_line(stream: IO[bytes]) -> bytes:
    line = stream.readline(1 << 16)
    return line.strip(b"\r\n").lstrip(b"\xef\xbb\xbf")


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_archive_csv(
    source: Source,
    dataset: str,
    symbol: str,
    *,
    name: str | None = None,
    expected_member: str | None = None,
) -> pa.Table:
    """Parse one Binance archive CSV (plain, ``.gz`` or inside a ``.zip``) into its schema.

    Args:
        source: a path, the file's bytes, or a binary file-like object. Zip and gzip are
            recognised from their magic bytes.
        dataset: ``klines`` (or ``klines_<interval>``, ``mark_klines``, ``index_klines``),
            ``agg_trades``, ``trades``, ``funding``, ``book_ticker`` or ``metrics``
            (``data.metrics``).
        symbol: exchange symbol stored in the ``symbol`` column (``BTCUSDT``).
        name: how messages name the source (default: its path or file name).
        expected_member: the CSV name a zip must hold (``BTCUSDT-1m-2024-01.csv``).

    Returns:
        A table in ``data.schemas.DATASETS[<base dataset>]``; times are UTC microseconds.

    Raises:
        SchemaError: unknown dataset, too few columns, unparsable values (the message names the
            file, and pyarrow's row/column), a time column mixing ms and µs magnitudes, a zip
            holding another file than ``expected_member``, or a corrupt or truncated zip/gzip.
    """
    label = name or _source_name(source)
    if base_dataset(dataset) == "metrics":
        try:
            with ExitStack() as stack:
                stream, label = _open_stream(source, stack, label, expected_member)
                return parse_metrics(stream, label, symbol)
        except (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as exc:
            raise SchemaError(f"{label}: corrupt or truncated archive ({exc})") from None
    kind, layout = _layout(dataset)
    try:
        with ExitStack() as stack:
            stack.enter_context(fast_pool())
            stream, label = _open_stream(source, stack, label, expected_member)
            first = _first_line(stream)
            native = _native_path(source, stream)
            try:
                return _parse(native or stream, first, label, kind, layout, symbol)
            except _CsvError as exc:
                where = _locate(source, expected_member, exc.pyarrow_message, layout)
                raise SchemaError(f"{exc}{where}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise SchemaError(f"{label}: corrupt or truncated archive ({exc})") from None


class _CsvError(SchemaError):
    """pyarrow could not parse the text; ``pyarrow_message`` is its own words."""

    def __init__(self, message: str, pyarrow_message: str) -> None:
        super().__init__(message)
        self.pyarrow_message = pyarrow_message


def _locate(source: Source, expected_member: str | None, message: str,
            layout: tuple[_Col, ...]) -> str:  # fmt: skip
    """`` at line N ...`` for a parse error, by reading the source's text again (or "")."""
    if not isinstance(source, str | os.PathLike | bytes | bytearray | memoryview):
        if not (hasattr(source, "seekable") and source.seekable()):
            return ""
        source.seek(0)
    try:
        with ExitStack() as stack:
            stream, _ = _open_stream(source, stack, "", expected_member)
            return locate_csv_error(iter_lines(stream), message, [c.name for c in layout])
    except (SchemaError, OSError, zipfile.BadZipFile, zlib.error, EOFError):
        return ""


def _native_path(source: Source, stream: IO[bytes]) -> str | None:
    """The path itself when pyarrow can read it natively (a plain CSV): its C++ reader then does
    the I/O without Python in the loop. Compressed input goes through the Python stream, whose
    decompressed size is capped (``data.decompress``); it reads as fast on archive files."""
    if not isinstance(source, str | os.PathLike):
        return None
    if isinstance(stream, CappedReader | zipfile.ZipExtFile):
        return None
    return os.fspath(source)


def _parse(
    stream: IO[bytes] | str,
    first: bytes,
    name: str,
    kind: str,
    layout: tuple[_Col, ...],
    symbol: str,
) -> pa.Table:
    schema = schemas.DATASETS[kind]
    if not first:
        return schema.empty_table()
    fields = first.split(b",")
    has_header = not _is_number(fields[0].strip())
    base = "klines" if kind.endswith("klines") else kind
    if len(fields) < _MIN_FIELDS[base] or len(fields) > len(layout):
        raise SchemaError(
            f"{name}: {len(fields)} columns in the first line; a Binance {kind} archive file has "
            f"{_MIN_FIELDS[base]}..{len(layout)}"
        )
    cols = layout[: len(fields)]
    body: IO[bytes] | _Prepend | str = stream
    skip = 0
    if isinstance(stream, str):
        skip = int(has_header)  # a path: pyarrow reads it from the start
    elif not has_header:
        body = _Prepend(first + b"\n", stream)  # the first line was data: put it back
    types = {c.name: (_I if c.kind == _T else c.kind) for c in cols if c.out is not None}
    try:
        table = pacsv.read_csv(
            body,
            read_options=pacsv.ReadOptions(
                column_names=[c.name for c in cols],
                skip_rows=skip,
                block_size=_BLOCK_SIZE,
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=[c.name for c in cols if c.out is not None],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _CsvError(f"{name}: cannot parse as a Binance {kind} archive CSV: {exc}",
                        str(exc)) from exc  # fmt: skip
    return _to_schema(table, cols, schema, name, symbol)


def _to_schema(
    table: pa.Table, cols: tuple[_Col, ...], schema: pa.Schema, name: str, symbol: str
) -> pa.Table:
    n = table.num_rows
    out: dict[str, pa.ChunkedArray | pa.Array] = {}
    for c in cols:
        if c.out is None:
            continue
        col = table.column(c.name)
        out[c.out] = _to_micros(col, name, c.name) if c.kind == _T else col
    arrays = []
    for f in schema:
        if f.name == "symbol":
            arrays.append(pa.repeat(pa.scalar(symbol, pa.string()), n))
        elif f.name in out:
            arrays.append(out[f.name])
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_micros(col: pa.ChunkedArray, name: str, column: str) -> pa.ChunkedArray:
    """Epoch ms or µs (decided from the magnitude of this file's values) -> timestamp[us, UTC]."""
    if len(col) == 0:
        return col.cast(schemas.TS)
    lo, hi = pc.min_max(col).values()
    lo_v, hi_v = lo.as_py(), hi.as_py()
    if lo_v is None:
        return col.cast(schemas.TS)
    lo_us, hi_us = lo_v >= MICROS_THRESHOLD, hi_v >= MICROS_THRESHOLD
    if lo_us != hi_us:
        raise SchemaError(
            f"{name}: column {column} mixes millisecond and microsecond epochs "
            f"(min {lo_v}, max {hi_v}); expected one unit per file"
        )
    if not hi_us:
        col = pc.multiply(col, pa.scalar(1000, pa.int64()))
    return col.cast(schemas.TS)


class _Prepend(io.RawIOBase):
    """A read-only stream: ``head`` bytes followed by the rest of ``tail``."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        k = 0
        if self._head:
            k = min(len(view), len(self._head))
            view[:k] = self._head[:k]
            self._head = self._head[k:]
        while k < len(view):  # fill the buffer: a short read means end of stream to some readers
            data = self._tail.read(len(view) - k)
            if not data:
                break
            view[k : k + len(data)] = data
            k += len(data)
        return k


def read_archive_path(path: str | Path, dataset: str, symbol: str | None = None) -> pa.Table:
    """Like :func:`read_archive_csv`, taking the symbol from a Binance file name when omitted.

    ``BTCUSDT-1m-2024-01.zip`` -> ``BTCUSDT``.
    """
    sym = symbol if symbol is not None else Path(path).name.split("-", 1)[0]
    return read_archive_csv(path, dataset, sym)
