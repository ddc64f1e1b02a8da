"""Parse raw Binance stream messages (combined-stream envelopes and REST depth snapshots) into
the column lists of the declared schemas. Used by ``data.recordings``; no file I/O here.

Every malformed input raises ``SchemaError`` naming the source and line number, never another
exception type. For speed, decimal strings (prices, quantities) are collected raw and converted
by Arrow once per column; a column that fails is re-scanned in Python to name the bad line.
Times become int64 UTC microseconds: exchange times (``E``, ``T``, in ms) are multiplied by
1000; local receive times are converted by the caller.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas
from alphaforge.data.errors import SchemaError

_I64_MAX: Final = 2**63 - 1
_MS_MAX: Final = 4_102_444_800_000  # 2100-01-01 in ms: later exchange times are not plausible

KLINE_UPDATES: Final = pa.schema(
    [
        *schemas.KLINES,
        pa.field("ts", schemas.TS, nullable=False),
        pa.field("local_ts", schemas.TS),
        pa.field("is_closed", pa.bool_()),
    ]
)
"""Every ``kline_<interval>`` stream message: the bar so far (KLINES columns), its event time
``ts`` (E), receive time and whether the bar is final (``x``). Only final bars go to KLINES."""

_DATASETS: Final[dict[str, pa.Schema]] = {
    "depth_updates": schemas.DEPTH_UPDATES,
    "trades": schemas.TRADES,
    "agg_trades": schemas.AGG_TRADES,
    "book_ticker": schemas.BOOK_TICKER,
    "mark_price": schemas.DERIVATIVE_TICKER,
    "kline_updates": KLINE_UPDATES,
}


_DECIMALS: Final[dict[str, tuple[str, ...]]] = {
    "depth_updates": ("price", "qty"),
    "trades": ("price", "qty"),
    "agg_trades": ("price", "qty"),
    "book_ticker": ("bid_px", "bid_qty", "ask_px", "ask_qty"),
    "mark_price": ("index_price", "mark_price"),
    "kline_updates": ("open", "high", "low", "close", "volume", "quote_volume",
                      "taker_buy_volume", "taker_buy_quote_volume"),
}  # fmt: skip
"""Float columns that arrive as Binance decimal strings (converted once per column)."""


_DEPTH_MSG: Final = (
    "symbol", "ts", "local_ts", "first_update_id", "last_update_id", "prev_update_id",
    "is_snapshot", "n_bid", "n_ask",
)  # fmt: skip


def _int(v: Any, name: str) -> int:
    if type(v) is not int or not -_I64_MAX <= v <= _I64_MAX:
        raise ValueError(f"field {name!r} must be an int64 integer; got {v!r}")
    return v


def _ms(v: Any, name: str) -> int:
    """An exchange time in ms -> µs."""
    if type(v) is not int or not 0 <= v <= _MS_MAX:
        raise ValueError(f"field {name!r} must be epoch milliseconds; got {v!r}")
    return v * 1000


def _num(v: Any, name: str) -> float:
    """A decimal string (Binance quotes prices and quantities as strings) -> float."""
    if type(v) is not str:
        raise ValueError(f"field {name!r} must be a decimal string; got {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"field {name!r} must be finite; got {v!r}")
    return x


def _str(v: Any, name: str) -> str:
    if type(v) is not str or not v:
        raise ValueError(f"field {name!r} must be a non-empty string; got {v!r}")
    return v


def _bool(v: Any, name: str) -> bool:
    if type(v) is not bool:
        raise ValueError(f"field {name!r} must be true/false; got {v!r}")
    return v


class MessageParser:
    """Accumulates rows of every dataset from messages, then builds the Arrow tables.

    Args:
        source: name of the input used in error messages (a file path).
        symbol: symbol for REST snapshots that do not carry one (spot ``/api/v3/depth``);
            when None, the single symbol of the stream messages is used.
    """

    def __init__(self, source: str = "<lines>", symbol: str | None = None) -> None:
        self.source = source
        self.symbol = symbol
        self.cols: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in schema} for name, schema in _DATASETS.items()
        }
        self.counts: dict[str, int] = {}
        self._marks: dict[str, tuple[list[int], list[tuple[str, int]]]] = {
            name: ([], []) for name in _DATASETS
        }
        self._lineno = 0
        self._depth_msgs: dict[str, list[Any]] = {k: [] for k in _DEPTH_MSG}
        self._routes: dict[str, tuple[str, Callable[[dict[str, Any], int], None]]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], int], None]] = {
            "trade": self._trade,
            "aggTrade": self._agg_trade,
            "bookTicker": self._book_ticker,
        }

    def fail(self, lineno: int, what: str) -> SchemaError:
        """The SchemaError for line ``lineno`` of the source."""
        return SchemaError(f"{self.source}:{lineno}: {what}")

    def _rows(self, name: str, key: str) -> dict[str, list[Any]]:
        """The column lists of ``name``, marking where the current line's rows start."""
        d = self.cols[name]
        starts, where = self._marks[name]
        starts.append(len(d[key]))
        where.append((self.source, self._lineno))
        return d

    def add_json(self, text: str, local_us: int, lineno: int) -> None:
        """Parse one JSON message (envelope or REST depth snapshot) received at ``local_us``."""
        self._lineno = lineno
        try:
            obj = orjson.loads(text)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object; got {type(obj).__name__}")
            if "stream" in obj:
                self._message(obj, local_us)
            else:
                self.snapshot(obj, local_us, None)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as e:
            raise self.fail(lineno, f"{type(e).__name__}: {e}; line starts {text[:80]!r}") from e

    def _route(self, stream: Any) -> tuple[str, Callable[[dict[str, Any], int], None]]:
        """(stream kind, handler) of a stream name such as ``btcusdt@depth@100ms``."""
        if type(stream) is not str or "@" not in stream:
            raise ValueError(f"bad combined-stream name {stream!r}")
        kind = stream.split("@", 1)[1]
        base = kind.split("@", 1)[0]
        if base == "depth":
            return base, self._depth
        if base == "markPrice":
            return base, self._mark
        if base.startswith("kline_"):
            return base, self._kline
        if base in self._handlers:
            return base, self._handlers[base]
        raise ValueError(f"unknown stream type {kind!r} in {stream!r}")

    def _message(self, obj: dict[str, Any], local_us: int) -> None:
        stream, data = obj["stream"], obj["data"]
        route = self._routes.get(stream) if type(stream) is str else None
        if route is None:
            route = self._routes[stream] = self._route(stream)
        if type(data) is not dict:
            raise ValueError(f"field 'data' of stream {stream!r} must be an object")
        route[1](data, local_us)
        self.counts[route[0]] = self.counts.get(route[0], 0) + 1

    def _levels(
        self, sym: str | None, ts: int, local_us: int,
        ids: tuple[int | None, int, int | None], snap: bool, bids: Any, asks: Any,
    ) -> None:  # fmt: skip
        d = self._rows("depth_updates", "price")
        for side, name in ((bids, "b"), (asks, "a")):
            if type(side) is not list:
                raise ValueError(f"field {name!r} must be a list of [price, qty]")
            if side:
                if set(map(type, side)) != {list}:
                    raise ValueError(f"every level of {name!r} must be [price, qty]")
                px, qty = zip(*side, strict=True)  # ValueError unless all are pairs
                d["price"] += px
                d["qty"] += qty
        m = self._depth_msgs  # per message; expanded to one row per level in tables()
        for col, v in (("symbol", sym), ("ts", ts), ("local_ts", local_us),
                       ("first_update_id", ids[0]), ("last_update_id", ids[1]),
                       ("prev_update_id", ids[2]), ("is_snapshot", snap),
                       ("n_bid", len(bids)), ("n_ask", len(asks))):  # fmt: skip
            m[col].append(v)

    def _depth(self, x: dict[str, Any], local_us: int) -> None:
        pu = _int(x["pu"], "pu") if "pu" in x else None
        ids = (_int(x["U"], "U"), _int(x["u"], "u"), pu)
        sym = _str(x["s"], "s")
        self._levels(sym, _ms(x["E"], "E"), local_us, ids, False, x["b"], x["a"])

    def snapshot(self, x: dict[str, Any], local_us: int, symbol: str | None) -> None:
        """A REST depth snapshot (``lastUpdateId``, ``bids``, ``asks``; futures add E, T)."""
        sym = _str(x["symbol"], "symbol") if "symbol" in x else symbol
        ts = _ms(x["E"], "E") if "E" in x else local_us
        ids = (None, _int(x["lastUpdateId"], "lastUpdateId"), None)
        self._levels(sym, ts, local_us, ids, True, x["bids"], x["asks"])
        self.counts["snapshot"] = self.counts.get("snapshot", 0) + 1

    def _trade(self, x: dict[str, Any], local_us: int) -> None:
        d = self._rows("trades", "symbol")
        d["symbol"].append(_str(x["s"], "s"))
        d["trade_id"].append(_int(x["t"], "t"))
        d["trade_uid"].append(None)
        d["price"].append(x["p"])
        d["qty"].append(x["q"])
        d["quote_qty"].append(None)  # price * qty, computed once the decimals are converted
        d["ts"].append(_ms(x["T"], "T"))
        d["is_buyer_maker"].append(_bool(x["m"], "m"))

    def _agg_trade(self, x: dict[str, Any], local_us: int) -> None:
        d = self._rows("agg_trades", "symbol")
        d["symbol"].append(_str(x["s"], "s"))
        d["agg_trade_id"].append(_int(x["a"], "a"))
        d["price"].append(x["p"])
        d["qty"].append(x["q"])
        d["first_trade_id"].append(_int(x["f"], "f"))
        d["last_trade_id"].append(_int(x["l"], "l"))
        d["ts"].append(_ms(x["T"], "T"))
        d["is_buyer_maker"].append(_bool(x["m"], "m"))

    def _book_ticker(self, x: dict[str, Any], local_us: int) -> None:
        d = self._rows("book_ticker", "symbol")
        d["symbol"].append(_str(x["s"], "s"))
        d["update_id"].append(_int(x["u"], "u"))
        d["ts"].append(_ms(x["E"], "E") if "E" in x else local_us)
        d["bid_px"].append(x["b"])
        d["bid_qty"].append(x["B"])
        d["ask_px"].append(x["a"])
        d["ask_qty"].append(x["A"])

    def _mark(self, x: dict[str, Any], local_us: int) -> None:
        d = self._rows("mark_price", "symbol")
        d["symbol"].append(_str(x["s"], "s"))
        d["ts"].append(_ms(x["E"], "E"))
        d["local_ts"].append(local_us)
        d["funding_timestamp"].append(_ms(x["T"], "T"))
        rate = x["r"]
        d["funding_rate"].append(None if rate == "" else _num(rate, "r"))  # "": no rate (delivery)
        d["predicted_funding_rate"].append(None)
        d["open_interest"].append(None)
        d["last_price"].append(None)
        d["index_price"].append(x["i"])
        d["mark_price"].append(x["p"])

    def _kline(self, x: dict[str, Any], local_us: int) -> None:
        d, k = self._rows("kline_updates", "symbol"), x["k"]
        if not isinstance(k, dict):
            raise ValueError("field 'k' must be an object")
        d["symbol"].append(_str(x["s"], "s"))
        d["open_time"].append(_ms(k["t"], "k.t"))
        d["close_time"].append(_ms(k["T"], "k.T"))
        for col, key in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"),
                         ("volume", "v"), ("quote_volume", "q"), ("taker_buy_volume", "V"),
                         ("taker_buy_quote_volume", "Q")):  # fmt: skip
            d[col].append(k[key])
        d["trades"].append(_int(k["n"], "k.n"))
        d["ts"].append(_ms(x["E"], "E"))
        d["local_ts"].append(local_us)
        d["is_closed"].append(_bool(k["x"], "k.x"))

    def _fill_snapshot_symbols(self) -> None:
        syms = self._depth_msgs["symbol"]
        if None not in syms:
            return
        seen = {s for s in syms if s is not None}
        for name in ("trades", "book_ticker", "agg_trades"):
            seen.update(self.cols[name]["symbol"])
        sym = self.symbol or (seen.pop() if len(seen) == 1 else None)
        if sym is None:
            raise SchemaError(
                f"{self.source}: a REST depth snapshot has no symbol and the recording names "
                f"{sorted(seen) or 'none'}; pass symbol="
            )
        self._depth_msgs["symbol"] = [sym if s is None else s for s in syms]

    def _expand_depth(self) -> None:
        """Per-message depth columns -> one value per level row (Arrow take, no Python loop)."""
        m, d = self._depth_msgs, self.cols["depth_updates"]
        nb, na = np.array(m["n_bid"], dtype=np.int64), np.array(m["n_ask"], dtype=np.int64)
        rows = pa.array(np.repeat(np.arange(nb.size), nb + na))
        for f in schemas.DEPTH_UPDATES:
            if f.name in m:
                d[f.name] = pa.array(m[f.name], type=f.type).take(rows)
        sides = np.tile(np.array([True, False]), nb.size)
        d["is_bid"] = pa.array(np.repeat(sides, np.column_stack([nb, na]).ravel()))

    def _decimals(self, name: str, col: str, vals: list[Any]) -> pa.Array:
        """Convert a column of raw decimal strings to float64, naming the line of a bad one."""
        try:
            arr = pc.cast(pa.array(vals, type=pa.string()), pa.float64())
            if arr.null_count == 0 and pc.all(pc.is_finite(arr)).as_py() is not False:
                return arr
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
        out: list[float] = []
        for i, v in enumerate(vals):
            try:
                out.append(_num(v, col))
            except (ValueError, TypeError) as exc:
                starts, where = self._marks[name]
                src, line = where[bisect.bisect_right(starts, i) - 1]
                raise SchemaError(f"{src}:{line}: {name}.{col}: {exc}") from exc
        return pa.array(out, type=pa.float64())

    def tables(self) -> dict[str, pa.Table]:
        """The accumulated rows as tables of the declared schemas (in arrival order)."""
        self._fill_snapshot_symbols()
        self._expand_depth()
        out: dict[str, pa.Table] = {}
        for name, schema in _DATASETS.items():
            cols = self.cols[name]
            arrays: dict[str, pa.Array] = {}
            try:
                for f in schema:
                    if f.type == pa.float64() and f.name in _DECIMALS.get(name, ()):
                        arrays[f.name] = self._decimals(name, f.name, cols[f.name])
                    elif f.name == "quote_qty":
                        arrays[f.name] = pc.multiply(arrays["price"], arrays["qty"])
                    elif isinstance(cols[f.name], pa.Array):
                        arrays[f.name] = cols[f.name]
                    else:
                        arrays[f.name] = pa.array(cols[f.name], type=f.type)
                out[name] = pa.table(list(arrays.values()), schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise SchemaError(f"{self.source}: {name}: {exc}") from exc
        return out
