"""Readers of raw Binance stream recordings into the declared schemas (for order-book rebuilds).

Two recorder formats (see ../shared/data/real/README.md):

- hftbacktest collector: lines ``<local receive time> <raw JSON>``; the local time is epoch ns
  or µs (detected per file by magnitude); the JSON is a combined-stream envelope
  ``{"stream": "<sym>@<kind>", "data": {...}}`` (``depth@100ms`` spot diffs with U/u,
  ``depth@0ms`` futures diffs with U/u/pu/E/T, ``trade``, ``bookTicker``, ``markPrice@1s``) or,
  without ``stream``, a REST depth snapshot (``lastUpdateId``, ``bids``, ``asks``).
  ``read_hftbacktest([day1, day2])`` reads a recording and its next-day continuation.
- cryptofeed sample recorder: ``<prefix>.0`` (``<url> -> <ts>: <exchangeInfo JSON>`` and a
  ``configuration: {...}`` line), ``<prefix>.http.0.0`` (REST depth snapshots ``<url> -> <ts>:
  <body>``) and ``<prefix>.ws.1.0`` (a ``<wss url> <-> <ts>`` header, then ``<ts>: <message>``
  with seconds-with-fraction receive times). Files may be gzipped (detected by magic bytes).

Rows keep arrival order (cryptofeed snapshots are merged with the stream by receive time).
``depth_updates`` has one row per level: snapshot rows have ``is_snapshot`` and
``last_update_id = lastUpdateId``; diff rows carry U/u(/pu) and ``ts`` = event time E. Nothing
here rebuilds books or checks sequences (that is the book module's job); JSON is parsed as data,
never executed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas
from alphaforge.data.decompress import gunzip
from alphaforge.data.errors import SchemaError
from alphaforge.data.recordings_parse import KLINE_UPDATES, MessageParser

PathLike = str | Path
_FUNDING_WINDOW_US: Final = 3_000_000
_HFT_NAME = re.compile(r"^(?P<sym>[a-z0-9_]+?)_\d{8}$")
_CF_TS = re.compile(r"^\d{9,11}(\.\d{1,9})?$")


@dataclass(frozen=True, slots=True)
class RecordingTables:
    """Everything one recording holds, as tables of the declared schemas (arrival order).

    Attributes:
        depth_updates: DEPTH_UPDATES, snapshot and diff levels.
        trades: TRADES (``ts`` = trade time T).
        agg_trades: AGG_TRADES (``ts`` = T).
        book_ticker: BOOK_TICKER (``ts`` = event time E when sent, else the receive time).
        mark_price: DERIVATIVE_TICKER rows of ``markPrice`` updates (mark p, index i, funding
            rate r, next funding time T as ``funding_timestamp``).
        funding: FUNDING, one row per funding time the recording reaches: the last markPrice
            update at or before T (within 3 s of it), its rate r and mark price p.
        klines: KLINES of the final (``x = true``) stream klines.
        kline_updates: every kline stream message (KLINE_UPDATES), final or not.
        exchange_info: the parsed exchangeInfo JSON (cryptofeed ``.0`` file), else None.
        meta: files read, message counts per stream kind, line counts, timestamp units.
    """

    depth_updates: pa.Table
    trades: pa.Table
    agg_trades: pa.Table
    book_ticker: pa.Table
    mark_price: pa.Table
    funding: pa.Table
    klines: pa.Table
    kline_updates: pa.Table
    exchange_info: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gunzip(raw, str(path))
        return raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read as (gzipped) UTF-8 text: {exc}") from exc


def _local_scale(first: int, source: str) -> int:
    """Divisor turning the file's local receive times into µs (ns files: 1000, µs files: 1)."""
    if 10**17 <= first < 10**19:
        return 1000
    if 10**14 <= first < 10**16:
        return 1
    raise SchemaError(
        f"{source}:1: local timestamp {first} is neither epoch ns (19 digits) nor µs (16 digits)"
    )


def _hft_lines(parser: MessageParser, lines: Iterable[str], source: str) -> dict[str, Any]:
    scale = 0
    n = 0
    before = dict(parser.counts)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        head, sep, body = line.partition(" ")
        if not sep or not (head.isascii() and head.isdigit()):
            raise parser.fail(lineno, f"expected '<local timestamp> <json>'; got {line[:80]!r}")
        local = int(head)
        if not scale:
            scale = _local_scale(local, source)
        if not 10**14 * scale <= local < 10**16 * scale:
            raise parser.fail(lineno, f"local timestamp {local} changes unit within the file")
        parser.add_json(body, local // scale, lineno)
        n += 1
    counts = {k: v - before.get(k, 0) for k, v in parser.counts.items() if v != before.get(k, 0)}
    unit = {1000: "ns", 1: "us"}.get(scale)
    return {"source": source, "lines": n, "local_ts_unit": unit, "counts": counts}


def _symbol_from_name(path: Path) -> str | None:
    m = _HFT_NAME.match(path.name.split(".")[0])
    return m.group("sym").upper() if m else None


def parse_hftbacktest_lines(
    lines: Iterable[str], source: str = "<lines>", symbol: str | None = None
) -> RecordingTables:
    """Parse hftbacktest collector lines (``<local ts> <json>``) already in memory.

    Args:
        lines: the lines, without or with trailing newlines; blank lines are skipped.
        source: name used in error messages.
        symbol: symbol of REST snapshots that carry none (default: the stream's only symbol).

    Raises:
        SchemaError: a malformed line (message names ``source:line``).
    """
    parser = MessageParser(source, symbol)
    info = _hft_lines(parser, lines, source)
    return _assemble(parser, {"files": [info]}, None)


def read_hftbacktest(
    paths: PathLike | Sequence[PathLike], symbol: str | None = None
) -> RecordingTables:
    """Read one hftbacktest recording: a file or a file and its next-day continuations.

    Args:
        paths: a ``.gz``/``.dat.gz`` file, or several files of one recording in time order.
        symbol: symbol of spot REST snapshots (default: from the file name ``<sym>_<date>``).

    Returns:
        The recording's tables; ``meta["files"]`` lists each file's lines, local time unit and
        messages per stream kind, ``meta["counts"]`` the totals (``depth``, ``trade``,
        ``bookTicker``, ``markPrice``, ``snapshot``).

    Raises:
        SchemaError: an unreadable file or a malformed line (names file and line number).
    """
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not files:
        raise SchemaError("read_hftbacktest: no files given")
    parser = MessageParser(str(files[0]), symbol or _symbol_from_name(files[0]))
    infos = []
    for path in files:
        parser.source = str(path)
        infos.append(_hft_lines(parser, _read_text(path).splitlines(), str(path)))
    return _assemble(parser, {"files": infos}, None)


def _cf_ts(text: str, source: str, lineno: int) -> int:
    """cryptofeed's ``<seconds>.<fraction>`` receive time -> int µs (exact, no float)."""
    text = text.strip()
    if not _CF_TS.match(text):
        raise SchemaError(f"{source}:{lineno}: expected a unix time in seconds; got {text[:40]!r}")
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000 + int((frac + "000000")[:6])


def _cf_url_line(line: str, source: str, lineno: int) -> tuple[str, int, str]:
    url, sep, rest = line.partition(" -> ")
    ts, sep2, body = rest.partition(": ")
    if not sep or not sep2:
        raise SchemaError(f"{source}:{lineno}: expected '<url> -> <ts>: <json>'; got {line[:80]!r}")
    return url, _cf_ts(ts, source, lineno), body


def _cf_info(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    info = None
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        try:
            if line.startswith("configuration: "):
                meta["configuration"] = json.loads(line.partition(": ")[2])
            elif line.strip():
                url, ts, body = _cf_url_line(line, str(path), lineno)
                info = json.loads(body)
                if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
                    raise ValueError("exchangeInfo must be an object with a 'symbols' list")
                meta["exchange_info_url"], meta["exchange_info_ts_us"] = url, ts
        except (ValueError, RecursionError) as exc:
            raise SchemaError(f"{path}:{lineno}: {exc}") from exc
    return info


def _cf_http(parser: MessageParser, path: Path) -> None:
    parser.source = str(path)
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        url, ts, body = _cf_url_line(line, str(path), lineno)
        symbols = parse_qs(urlsplit(url).query).get("symbol", [])
        if not urlsplit(url).path.endswith("/depth") or len(symbols) != 1:
            raise SchemaError(f"{path}:{lineno}: not a REST depth request with a symbol: {url}")
        try:
            obj = json.loads(body)
            if not isinstance(obj, dict):
                raise ValueError("the depth response must be a JSON object")
            parser.snapshot(obj, ts, symbols[0])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise parser.fail(lineno, f"{type(exc).__name__}: {exc}") from exc


def _cf_ws(parser: MessageParser, path: Path, meta: dict[str, Any]) -> None:
    parser.source = str(path)
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        if lineno == 1 and " <-> " in line:
            meta["ws_url"] = line.partition(" <-> ")[0]
            continue
        ts, sep, body = line.partition(": ")
        if not sep:
            raise parser.fail(lineno, f"expected '<ts>: <message>'; got {line[:80]!r}")
        parser.add_json(body, _cf_ts(ts, str(path), lineno), lineno)


def _cf_files(prefix_or_paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(prefix_or_paths, str | Path):
        prefix = Path(prefix_or_paths)
        files = sorted(prefix.parent.glob(prefix.name + ".*"))
        if not files:
            raise SchemaError(f"read_cryptofeed: no files match {prefix}.*")
        return files
    return [Path(p) for p in prefix_or_paths]


def read_cryptofeed(prefix_or_paths: PathLike | Sequence[PathLike]) -> RecordingTables:
    """Read a cryptofeed raw recording (exchangeInfo, REST depth snapshots, WebSocket stream).

    Args:
        prefix_or_paths: the common prefix (``.../BINANCE`` reads ``BINANCE.0[.gz]``,
            ``BINANCE.http.0.0`` and ``BINANCE.ws.1.0[.gz]``) or an explicit list of those files.

    Returns:
        The recording's tables, ``exchange_info`` parsed from the ``.0`` file; snapshot and
        stream rows of ``depth_updates`` merged by receive time (stable).

    Raises:
        SchemaError: an unreadable file or a malformed line (names file and line number).
    """
    meta: dict[str, Any] = {"files": []}
    parser = MessageParser()
    info = None
    for path in _cf_files(prefix_or_paths):
        kind = "http" if ".http." in path.name else "ws" if ".ws." in path.name else "info"
        if kind == "info":
            info = _cf_info(path, meta)
        elif kind == "http":
            _cf_http(parser, path)
        else:
            _cf_ws(parser, path, meta)
        meta["files"].append({"source": str(path), "kind": kind})
    out = _assemble(parser, meta, info)
    order = np.argsort(out.depth_updates["local_ts"].to_numpy(), kind="stable")
    depth = out.depth_updates.take(pa.array(order))
    return RecordingTables(**{**_fields(out), "depth_updates": depth})


def _fields(t: RecordingTables) -> dict[str, Any]:
    return {name: getattr(t, name) for name in RecordingTables.__slots__}


def funding_from_mark(mark: pa.Table) -> pa.Table:
    """FUNDING rows from markPrice updates (DERIVATIVE_TICKER): per (symbol, next funding time
    T), the last update with event time <= T, kept only when it is within 3 s of T (the
    recording reached the funding time, so the rate is the one settled rather than a forecast).
    """
    if mark.num_rows == 0:
        return schemas.FUNDING.empty_table()
    ts = mark["ts"].cast(pa.int64()).to_numpy()
    ft = mark["funding_timestamp"].cast(pa.int64()).to_numpy()
    sym = mark["symbol"].to_numpy(zero_copy_only=False)
    keep = (ts <= ft) & (ts >= ft - _FUNDING_WINDOW_US)
    last: dict[tuple[str, int], int] = {}
    for i in np.flatnonzero(keep):
        key = (sym[i], int(ft[i]))
        if key not in last or ts[i] >= ts[last[key]]:
            last[key] = int(i)
    rows = mark.take(pa.array(sorted(last.values()), type=pa.int64()))
    return pa.table(
        [
            rows["symbol"],
            rows["funding_timestamp"],
            rows["funding_rate"],
            rows["mark_price"],
            pa.nulls(rows.num_rows, pa.float64()),
        ],  # the stream does not say the interval
        schema=schemas.FUNDING,
    )


def _assemble(
    parser: MessageParser, meta: dict[str, Any], info: dict[str, Any] | None
) -> RecordingTables:
    t = parser.tables()
    upd = t["kline_updates"]
    closed = upd.filter(pc.equal(upd["is_closed"], True))
    klines = closed.select(schemas.KLINES.names).cast(schemas.KLINES)
    meta["counts"] = dict(parser.counts)
    return RecordingTables(
        depth_updates=t["depth_updates"], trades=t["trades"], agg_trades=t["agg_trades"],
        book_ticker=t["book_ticker"], mark_price=t["mark_price"],
        funding=funding_from_mark(t["mark_price"]), klines=klines, kline_updates=upd,
        exchange_info=info, meta=meta,
    )  # fmt: skip


__all__ = [
    "KLINE_UPDATES",
    "RecordingTables",
    "funding_from_mark",
    "parse_hftbacktest_lines",
    "read_cryptofeed",
    "read_hftbacktest",
]
