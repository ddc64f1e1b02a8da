"""Tardis.dev downloadable CSV datasets: read local ``.csv``/``.csv.gz`` files into our schemas.

Every Tardis CSV starts with ``exchange,symbol,timestamp,local_timestamp`` (epoch µs: exchange
time, then arrival time) followed by type-specific columns (docs.tardis.dev, "Downloadable CSV
files"). Mapping:

==========================  =====================  ============================================
Tardis data type            store dataset          notes
==========================  =====================  ============================================
trades                      ``trades``             integer ids -> trade_id, others -> trade_uid;
                                                   side (taker side) ``sell`` -> is_buyer_maker
incremental_book_L2         ``depth_updates``      side ``bid``/``ask`` -> is_bid; amount -> qty
book_snapshot_25 / _5       ``book_snapshots_N``   level lists, NaN where a level is absent
quotes                      ``book_ticker``        update_id null
derivative_ticker           ``derivative_ticker``  funding/mark/index/open interest
liquidations                ``liquidations``       side is the liquidation order side
==========================  =====================  ============================================

Downloads (``https://datasets.tardis.dev/v1/{exchange}/{data_type}/{YYYY}/{MM}/{DD}/{symbol}.csv.gz``)
live in :mod:`data.tardis_fetch`.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alphaforge.data import schemas
from alphaforge.data.csv_locate import iter_lines, locate_csv_error
from alphaforge.data.decompress import CappedReader
from alphaforge.data.errors import SchemaError

if TYPE_CHECKING:
    from alphaforge.data.store import Store, WriteReport

DATA_TYPES: Final[dict[str, str]] = {
    "trades": "trades",
    "incremental_book_L2": "depth_updates",
    "book_snapshot_25": "book_snapshots_25",
    "book_snapshot_5": "book_snapshots_5",
    "quotes": "book_ticker",
    "derivative_ticker": "derivative_ticker",
    "liquidations": "liquidations",
}
"""Tardis data type -> store dataset (schema name of :mod:`data.schemas`)."""

_BASE: Final = ("exchange", "symbol", "timestamp", "local_timestamp")
_F, _S, _I, _B = pa.float64(), pa.string(), pa.int64(), pa.string()
_COLUMNS: Final[dict[str, dict[str, pa.DataType]]] = {
    "trades": {"id": _S, "side": _S, "price": _F, "amount": _F},
    "incremental_book_L2": {"is_snapshot": _B, "side": _S, "price": _F, "amount": _F},
    "quotes": {"ask_amount": _F, "ask_price": _F, "bid_price": _F, "bid_amount": _F},
    "derivative_ticker": {
        "funding_timestamp": _I,
        "funding_rate": _F,
        "predicted_funding_rate": _F,
        "open_interest": _F,
        "last_price": _F,
        "index_price": _F,
        "mark_price": _F,
    },
    "liquidations": {"id": _S, "side": _S, "price": _F, "amount": _F},
}
_SNAPSHOT = re.compile(r"^book_snapshot_(\d+)$")
_LEVEL_COL = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
_COL_NO = re.compile(r"column #(\d+)", re.IGNORECASE)


def dataset_of(data_type: str) -> str:
    """Store dataset of a Tardis data type (``book_snapshot_10`` -> ``book_snapshots_10``).

    Raises:
        SchemaError: the data type is not one this reader supports.
    """
    if data_type in DATA_TYPES:
        return DATA_TYPES[data_type]
    m = _SNAPSHOT.match(data_type)
    if m:
        return f"book_snapshots_{m.group(1)}"  # one dataset per depth: 5- and 25-level rows differ
    raise SchemaError(
        f"unsupported Tardis data type {data_type!r}; expected one of {', '.join(DATA_TYPES)}"
    )


def detect_data_type(path: str | os.PathLike[str]) -> str:
    """Tardis data type from a file name (``binance-futures_book_snapshot_25_BTCUSDT.csv``,
    ``deribit_trades_2020-04-01_BTC-PERPETUAL.csv.gz``), a datasets-API path
    (``.../trades/2020/03/01/XBTUSD.csv.gz``), or else from the file's header row.

    Raises:
        SchemaError: neither the path nor the header tells the type (trades and liquidations
            share one header: such a file must be named).
    """
    p = Path(path)
    candidates = sorted([*DATA_TYPES, "book_snapshot_\\d+"], key=len, reverse=True)
    for part in [p.name, *reversed(p.parent.parts)]:
        for dt in candidates:
            m = re.search(rf"(?:^|_)({dt})(?:_|$)", part)
            if m:
                return m.group(1)
    if not p.is_file():
        raise SchemaError(
            f"{p}: cannot tell the Tardis data type from the file name; pass data_type"
        )
    by_header = _type_from_header(set(_header(p)))
    if by_header is None:
        raise SchemaError(
            f"{p}: cannot tell the Tardis data type from the file name or header (trades and "
            "liquidations share one header); name the file after its type or pass data_type"
        )
    return by_header


def _type_from_header(cols: set[str]) -> str | None:
    """The data type a Tardis header implies, or None when it is ambiguous or unknown."""
    levels = sum(1 for c in cols if re.fullmatch(r"bids\[\d+\]\.price", c))
    if levels:
        return f"book_snapshot_{levels}"
    if {"is_snapshot", "side", "price", "amount"} <= cols:
        return "incremental_book_L2"
    if {"bid_price", "ask_price", "bid_amount", "ask_amount"} <= cols:
        return "quotes"
    if {"funding_rate", "mark_price", "index_price"} <= cols:
        return "derivative_ticker"
    return None


def _open_text(path: Path) -> Any:
    """Stream of the CSV text; gzip detected from the magic bytes, not from the name, and its
    decompressed size capped (``data.decompress``)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        size = path.stat().st_size
    except OSError as exc:
        raise SchemaError(f"{path}: cannot open: {exc}") from exc
    if magic != b"\x1f\x8b":
        return pa.input_stream(str(path))
    return CappedReader(pa.input_stream(str(path), compression="gzip"), str(path), size)


def _lines(path: Path, n: int) -> list[str]:
    """The first ``n`` lines of the CSV text (fewer if the file is shorter)."""
    buf = b""
    with _open_text(path) as fh:
        while buf.count(b"\n") < n:
            chunk = fh.read(1 << 16)
            if not chunk:
                break
            buf += chunk
    text = buf.decode("utf-8", "replace").lstrip("\ufeff")
    return [ln.rstrip("\r") for ln in text.split("\n")[:n]]


def _header(path: Path) -> list[str]:
    first = _lines(path, 1)[0]
    if not first:
        raise SchemaError(f"{path}: empty file, expected a Tardis CSV header row")
    return first.split(",")


def _read(path: Path, header: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    """pyarrow.csv with explicit types; conversion errors name the file and the column."""
    col_types = {c: t for c, t in types.items() if c in header}
    opts = pacsv.ConvertOptions(
        column_types=col_types,
        include_columns=list(col_types),
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        with _open_text(path) as fh:
            return pacsv.read_csv(fh, convert_options=opts)
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        m = _COL_NO.search(msg)
        col = header[int(m.group(1))] if m and int(m.group(1)) < len(header) else "?"
        with _open_text(path) as fh:
            where = locate_csv_error(iter_lines(fh), msg, header)
        raise SchemaError(f"{path}: column {col!r}: {msg}{where}") from exc


def _require(path: Path, header: list[str], need: list[str], data_type: str) -> None:
    missing = [c for c in need if c not in header]
    if missing:
        raise SchemaError(
            f"{path}: missing column(s) {missing} for Tardis {data_type}; header has {header}"
        )


def _ts(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col.cast(pa.int64()).cast(schemas.TS)


def read_tardis_csv(path: str | os.PathLike[str], data_type: str | None = None) -> pa.Table:
    """Parse one Tardis CSV (``.csv`` or gzip) into the schema of its store dataset.

    Args:
        path: the file.
        data_type: Tardis data type (``trades``, ``incremental_book_L2``, ``book_snapshot_25``,
            ``quotes``, ``derivative_ticker``, ``liquidations``); detected from the file name
            when None.

    Returns:
        A table in ``schemas.DATASETS[dataset_of(data_type)]``, rows in file order.

    Raises:
        SchemaError: unknown data type, a missing column, or an unparsable value (the message
            names the file and the column).
    """
    p = Path(path)
    dt = data_type or detect_data_type(p)
    dataset = dataset_of(dt)
    header = _header(p)
    if dataset.startswith("book_snapshots"):
        return _snapshots(p, header, dt)
    types = {"symbol": _S, "timestamp": _I, "local_timestamp": _I, **_COLUMNS[dt]}
    _require(p, header, list(types), dt)
    raw = _read(p, header, types)
    build = {
        "trades": _trades,
        "incremental_book_L2": _depth,
        "quotes": _quotes,
        "derivative_ticker": _deriv,
        "liquidations": _liquidations,
    }[dt]
    return schemas.conform(build(raw), dataset)


def _trades(t: pa.Table) -> pa.Table:
    ids = t["id"]
    is_int = pc.fill_null(pc.match_substring_regex(ids, r"^-?[0-9]{1,18}$"), False)
    trade_id = pc.if_else(is_int, ids, None).cast(pa.int64())
    trade_uid = pc.if_else(is_int, pa.scalar(None, pa.string()), ids)
    side = t["side"]
    maker = pc.if_else(
        pc.equal(side, "sell"),
        True,
        pc.if_else(pc.equal(side, "buy"), False, pa.scalar(None, pa.bool_())),
    )
    return pa.table(
        {
            "symbol": t["symbol"],
            "trade_id": trade_id,
            "trade_uid": trade_uid,
            "price": t["price"],
            "qty": t["amount"],
            "quote_qty": pc.multiply(t["price"], t["amount"]),
            "ts": _ts(t["timestamp"]),
            "is_buyer_maker": maker,
        }
    )


def _bool_col(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    low = pc.utf8_lower(col)
    ok = pc.is_in(low, pa.array(["true", "false"]))
    if not pc.all(ok).as_py():
        bad = pc.filter(col, pc.invert(pc.fill_null(ok, False)))
        raise SchemaError(f"column {name!r}: expected true/false, got {bad[0].as_py()!r}")
    return pc.equal(low, "true")


def _depth(t: pa.Table) -> pa.Table:
    side = t["side"]
    if not pc.all(pc.is_in(side, pa.array(["bid", "ask"]))).as_py():
        bad = pc.filter(
            side, pc.invert(pc.fill_null(pc.is_in(side, pa.array(["bid", "ask"])), False))
        )
        raise SchemaError(f"column 'side': expected bid/ask, got {bad[0].as_py()!r}")
    n = t.num_rows
    null_i64 = pa.nulls(n, pa.int64())
    return pa.table(
        {
            "symbol": t["symbol"],
            "ts": _ts(t["timestamp"]),
            "local_ts": _ts(t["local_timestamp"]),
            "first_update_id": null_i64,
            "last_update_id": null_i64,
            "prev_update_id": null_i64,
            "is_snapshot": _bool_col(t["is_snapshot"], "is_snapshot"),
            "is_bid": pc.equal(side, "bid"),
            "price": t["price"],
            "qty": t["amount"],
        }
    )


def _quotes(t: pa.Table) -> pa.Table:
    return pa.table(
        {
            "symbol": t["symbol"],
            "update_id": pa.nulls(t.num_rows, pa.int64()),
            "ts": _ts(t["timestamp"]),
            "bid_px": t["bid_price"],
            "bid_qty": t["bid_amount"],
            "ask_px": t["ask_price"],
            "ask_qty": t["ask_amount"],
        }
    )


def _deriv(t: pa.Table) -> pa.Table:
    return pa.table(
        {
            "symbol": t["symbol"],
            "ts": _ts(t["timestamp"]),
            "local_ts": _ts(t["local_timestamp"]),
            "funding_timestamp": _ts(t["funding_timestamp"]),
            **{
                c: t[c]
                for c in (
                    "funding_rate",
                    "predicted_funding_rate",
                    "open_interest",
                    "last_price",
                    "index_price",
                    "mark_price",
                )
            },
        }
    )


def _liquidations(t: pa.Table) -> pa.Table:
    return pa.table(
        {
            "symbol": t["symbol"],
            "ts": _ts(t["timestamp"]),
            "local_ts": _ts(t["local_timestamp"]),
            "id": t["id"],
            "side": t["side"],
            "price": t["price"],
            "qty": t["amount"],
        }
    )


def _snapshots(path: Path, header: list[str], data_type: str) -> pa.Table:
    """book_snapshot_N: ``asks[i].price, asks[i].amount, bids[i].price, bids[i].amount`` ..."""
    levels = sorted({int(m.group(2)) for c in header if (m := _LEVEL_COL.match(c))})
    m = _SNAPSHOT.match(data_type)
    want = int(m.group(1)) if m else len(levels)
    if levels != list(range(want)):
        raise SchemaError(
            f"{path}: {data_type} needs level columns 0..{want - 1}; found levels {levels}"
        )
    level_cols = [
        f"{side}[{i}].{f}"
        for i in range(want)
        for side in ("asks", "bids")
        for f in ("price", "amount")
    ]
    need = ["symbol", "timestamp", "local_timestamp", *level_cols]
    _require(path, header, need, data_type)
    types: dict[str, pa.DataType] = {"symbol": _S, "timestamp": _I, "local_timestamp": _I}
    types.update({c: _F for c in level_cols})
    raw = _read(path, header, types)
    out: dict[str, pa.Array | pa.ChunkedArray] = {
        "symbol": raw["symbol"],
        "ts": _ts(raw["timestamp"]),
        "update_id": pa.nulls(raw.num_rows, pa.int64()),
    }
    for side, px_name, qty_name in (("bids", "bid_px", "bid_qty"), ("asks", "ask_px", "ask_qty")):
        for f, name in (("price", px_name), ("amount", qty_name)):
            mat = (
                np.column_stack(
                    [
                        raw[f"{side}[{i}].{f}"].to_numpy(zero_copy_only=False).astype(np.float64)
                        for i in range(want)
                    ]
                )
                if raw.num_rows
                else np.empty((0, want))
            )
            flat = pa.array(np.ascontiguousarray(mat).ravel(), pa.float64())
            out[name] = pa.FixedSizeListArray.from_arrays(flat, want).cast(pa.list_(pa.float64()))
    return schemas.conform(pa.table(out), "book_snapshots")


def file_exchange(path: str | os.PathLike[str]) -> str:
    """The ``exchange`` value of the first data row (``binance-futures``, ``deribit``...).

    Raises:
        SchemaError: the file has no data row.
    """
    lines = _lines(Path(path), 2)
    row = lines[1] if len(lines) > 1 else ""
    if not row.strip():
        raise SchemaError(f"{path}: no data rows, cannot tell the exchange")
    return row.split(",", 1)[0]


def ingest_tardis_file(
    store: Store,
    path: str | os.PathLike[str],
    data_type: str | None = None,
    exchange: str | None = None,
    market: str = "usdm",
) -> WriteReport | None:
    """Parse a Tardis file and write it to ``store`` (None when this file was already stored).

    The source is recorded as ``tardis:<path>`` with the file's sha256, so re-ingesting the same
    bytes is a no-op; partition ``exchange`` defaults to the file's own exchange column.
    """
    p = Path(path)
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    if store.has_source(sha):
        return None
    dt = data_type or detect_data_type(p)
    table = read_tardis_csv(p, dt)
    return store.write(
        table,
        dataset_of(dt),
        exchange=exchange or file_exchange(p),
        market=market,
        source=f"tardis:{p}",
        source_sha256=sha,
    )


__all__ = [
    "DATA_TYPES",
    "dataset_of",
    "detect_data_type",
    "file_exchange",
    "ingest_tardis_file",
    "read_tardis_csv",
]
