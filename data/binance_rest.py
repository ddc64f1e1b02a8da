"""Binance REST market data (spot ``/api/v3`` and USD-M ``/fapi/v1``) -> schema tables.

Pagination follows each endpoint's rules and the market's page limits (spot klines 1000, USD-M
klines 1500, aggTrades 1000, fundingRate 1000):

- klines / mark / index klines and fundingRate page by time: the next page starts 1 ms after the
  last row received, rows before the cursor (an overlapping page) and repeated rows are dropped,
  an empty or short page ends the range;
- aggTrades find the first id of the range with a time query (Binance allows < 1 h between
  startTime and endTime), then page by ``fromId``.

Binance's milliseconds become microseconds here, once. Unclosed klines (close time in the future)
are dropped so that a stored bar is always final. An unknown symbol (HTTP 400, code -1121)
raises :class:`~data.errors.UnknownSymbol`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from alphaforge.data import schemas
from alphaforge.data.binance_weights import SPOT_WEIGHT_LIMIT, USDM_WEIGHT_LIMIT, endpoint_weight
from alphaforge.data.errors import RequestRejected, SchemaError, SourceError, UnknownSymbol
from alphaforge.data.http import HttpClient, RateLimitState, WeightLimiter

__all__ = ["SPOT_BASE_URL", "USDM_BASE_URL", "BinanceRest"]

SPOT_BASE_URL: Final = "https://api.binance.com"
USDM_BASE_URL: Final = "https://fapi.binance.com"
_HOUR_MS: Final = 3_600_000


@dataclass(frozen=True, slots=True)
class _Market:
    prefix: str
    klines_max: int
    weight_limit: int
    base_url: str


MARKETS: Final = {
    "spot": _Market("/api/v3", 1000, SPOT_WEIGHT_LIMIT, SPOT_BASE_URL),
    "usdm": _Market("/fapi/v1", 1500, USDM_WEIGHT_LIMIT, USDM_BASE_URL),
}
_KLINE_PATHS: Final = {"klines": "klines", "mark_klines": "markPriceKlines",
                       "index_klines": "indexPriceKlines"}  # fmt: skip
_KLINE_FLOATS: Final = (
    (1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume"), (7, "quote_volume"),
    (9, "taker_buy_volume"), (10, "taker_buy_quote_volume"),
)  # fmt: skip


def _ms_to_ts(values: list[Any]) -> pa.Array:
    return pa.array([int(v) * 1000 for v in values], pa.int64()).cast(schemas.TS)


def _floats(values: list[Any]) -> pa.Array:
    return pa.array([str(v) for v in values], pa.string()).cast(pa.float64())


def klines_table(rows: list[list[Any]], symbol: str) -> pa.Table:
    """REST kline rows (12 fields, numbers as strings) -> ``schemas.KLINES`` (ms -> µs)."""
    if not rows:
        return schemas.KLINES.empty_table()
    cols = list(zip(*rows, strict=False))
    arrays: dict[str, pa.Array] = {
        "symbol": pa.repeat(pa.scalar(symbol, pa.string()), len(rows)),
        "open_time": _ms_to_ts(list(cols[0])),
        "close_time": _ms_to_ts(list(cols[6])),
        "trades": pa.array([int(v) for v in cols[8]], pa.int64()),
    }
    for i, name in _KLINE_FLOATS:
        arrays[name] = _floats(list(cols[i]))
    return pa.Table.from_arrays([arrays[n] for n in schemas.KLINES.names], schema=schemas.KLINES)


def agg_trades_table(rows: list[dict[str, Any]], symbol: str) -> pa.Table:
    """REST aggTrades objects (``a,p,q,f,l,T,m``) -> ``schemas.AGG_TRADES``."""
    n = len(rows)
    arrays = [
        pa.repeat(pa.scalar(symbol, pa.string()), n),
        pa.array([r["a"] for r in rows], pa.int64()),
        _floats([r["p"] for r in rows]),
        _floats([r["q"] for r in rows]),
        pa.array([r["f"] for r in rows], pa.int64()),
        pa.array([r["l"] for r in rows], pa.int64()),
        _ms_to_ts([r["T"] for r in rows]),
        pa.array([bool(r["m"]) for r in rows], pa.bool_()),
    ]
    return pa.Table.from_arrays(arrays, schema=schemas.AGG_TRADES)


def funding_table(rows: list[dict[str, Any]], symbol: str) -> pa.Table:
    """REST fundingRate objects -> ``schemas.FUNDING`` (empty markPrice -> null)."""
    n = len(rows)
    marks = [r.get("markPrice") or None for r in rows]
    arrays = [
        pa.repeat(pa.scalar(symbol, pa.string()), n),
        _ms_to_ts([r["fundingTime"] for r in rows]),
        _floats([r["fundingRate"] for r in rows]),
        pa.array(marks, pa.string()).cast(pa.float64()),
        pa.nulls(n, pa.float64()),  # REST does not say the interval
    ]
    return pa.Table.from_arrays(arrays, schema=schemas.FUNDING)


STALE_RETRIES = 3
"""Times a page holding only rows before the cursor (a stale or cached page) is asked again
before the pull fails."""


class _StalePages:
    """Pagination guard: an empty page ends a range, but a page whose rows all lie before the
    cursor is stale (a cache, a lagging replica) and is asked again, then is an error — never
    taken as the end of the data."""

    def __init__(self, endpoint: str, symbol: str) -> None:
        self.endpoint, self.symbol, self.count = endpoint, symbol, 0

    def retry(self, keys: Iterable[int]) -> bool:
        """True to ask again; False when the page was truly empty. Raises after
        ``STALE_RETRIES`` stale pages in a row."""
        if not any(True for _ in keys):
            return False
        self.count += 1
        if self.count > STALE_RETRIES:
            raise SourceError(
                f"{self.endpoint} for {self.symbol}: {self.count} pages in a row held only rows "
                "before the requested start; the server is returning stale pages"
            )
        return True


class BinanceRest:
    """Client of one Binance market's REST market data.

    Args:
        market: ``spot`` or ``usdm``.
        base_url: overrides the exchange URL (tests point it at a loopback server).
        http: a ready :class:`~data.http.HttpClient`; built from ``base_url`` when None.
        page_limit: rows per page (at most the market's maximum; smaller values page more).
        clock: epoch seconds; bars whose close time is not yet past are dropped.
        **http_kw: passed to :class:`~data.http.HttpClient` (session, timeout_s, retry, sleep...).
    """

    def __init__(
        self,
        market: str,
        base_url: str | None = None,
        http: HttpClient | None = None,
        page_limit: int | None = None,
        clock: Callable[[], float] = time.time,
        **http_kw: Any,
    ) -> None:
        if market not in MARKETS:
            raise SchemaError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}")
        self.market = market
        self.spec = MARKETS[market]
        if http is None:
            limiter = WeightLimiter(
                self.spec.weight_limit,
                clock=http_kw.get("clock", time.time),
                sleep=http_kw.get("sleep", time.sleep),
            )
            http = HttpClient(base_url or self.spec.base_url, limiter=limiter, **http_kw)
        self.http = http
        self.page_limit = page_limit
        self.clock = clock

    # ------------------------------------------------------------------ plumbing
    def state(self) -> RateLimitState:
        """Rate-limit state of the underlying HTTP client."""
        return self.http.state()

    def _limit(self, maximum: int) -> int:
        return maximum if self.page_limit is None else max(1, min(self.page_limit, maximum))

    def _get(self, endpoint: str, params: dict[str, Any], symbol: str = "") -> Any:
        path = self.spec.prefix + endpoint
        try:
            return self.http.get_json(path, params, weight=endpoint_weight(path, params))
        except RequestRejected as exc:
            if exc.code == -1121:
                raise UnknownSymbol(
                    f"Binance {self.market} does not know symbol {symbol!r} "
                    f"(HTTP {exc.status}, code -1121 'Invalid symbol.' from {exc.url})"
                ) from exc
            raise

    # ------------------------------------------------------------------ klines
    def iter_klines(
        self, symbol: str, interval: str, start_us: int, end_us: int, kind: str = "klines"
    ) -> Iterator[pa.Table]:
        """Pages of closed bars with ``start_us <= open_time < end_us`` (µs), in time order.

        Raises:
            UnknownSymbol: Binance answered -1121.
            SchemaError: unknown interval, or mark/index klines asked on spot.
        """
        step_ms = schemas.interval_us(interval) // 1000  # KeyError with the known names
        if kind not in _KLINE_PATHS or (kind != "klines" and self.market != "usdm"):
            raise SchemaError(f"{kind!r} klines are not served by Binance {self.market}")
        endpoint = "/" + _KLINE_PATHS[kind]
        sym_key = "pair" if kind == "index_klines" else "symbol"
        limit = self._limit(self.spec.klines_max)
        cursor, end_ms = -(-start_us // 1000), (end_us - 1) // 1000
        now_ms = int(self.clock() * 1000)
        stale = _StalePages(endpoint, symbol)
        while cursor <= end_ms:
            params = {sym_key: symbol, "interval": interval, "startTime": cursor,
                      "endTime": end_ms, "limit": limit}  # fmt: skip
            raw = self._get(endpoint, params, symbol)
            rows = sorted({int(r[0]): r for r in raw if cursor <= int(r[0]) <= end_ms}.items())
            if not rows:
                if stale.retry(int(r[0]) for r in raw):
                    continue
                return  # nothing at or after the cursor: the end of the data
            stale.count = 0
            closed = [r for _, r in rows if int(r[6]) < now_ms]
            if closed:
                yield klines_table(closed, symbol)
            if len(closed) < len(rows) or rows[-1][0] + step_ms > end_ms:
                return  # reached the bar still open, or the last bar of the range
            cursor = rows[-1][0] + 1  # a short page is not the end: ask again from here

    def klines(
        self, symbol: str, interval: str, start_us: int, end_us: int, kind: str = "klines"
    ) -> pa.Table:
        """All closed bars of ``[start_us, end_us)`` as one ``schemas.KLINES`` table."""
        pages = list(self.iter_klines(symbol, interval, start_us, end_us, kind))
        return pa.concat_tables([schemas.KLINES.empty_table(), *pages])

    def edge_bar_us(self, symbol: str, interval: str = "1d", last: bool = False) -> int | None:
        """Open time (µs) of the first (or latest) bar Binance has for ``symbol``, or None."""
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": 1}
        if not last:
            params["startTime"] = 0
        raw = self._get("/klines", params, symbol)
        return int(raw[0][0]) * 1000 if raw else None

    # ------------------------------------------------------------------ aggTrades
    def first_agg_id(self, symbol: str, start_us: int, end_us: int) -> int | None:
        """Id of the first aggregate trade with ``start_us <= ts < end_us``, or None."""
        return self._first_agg_id(symbol, -(-start_us // 1000), (end_us - 1) // 1000)

    def _first_agg_id(self, symbol: str, start_ms: int, end_ms: int) -> int | None:
        t = start_ms
        while t <= end_ms:
            hi = min(t + _HOUR_MS - 1, end_ms)
            params = {"symbol": symbol, "startTime": t, "endTime": hi, "limit": 1}
            page = self._get("/aggTrades", params, symbol)
            if page:
                return int(page[0]["a"])
            t = hi + 1
        return None

    def iter_agg_trades(
        self, symbol: str, start_us: int, end_us: int, from_id: int | None = None
    ) -> Iterator[pa.Table]:
        """Pages of aggregate trades with ``start_us <= ts < end_us`` (and id >= ``from_id``)."""
        start_ms, end_ms = -(-start_us // 1000), (end_us - 1) // 1000
        next_id = from_id if from_id is not None else self._first_agg_id(symbol, start_ms, end_ms)
        limit = self._limit(1000)
        stale = _StalePages("/aggTrades", symbol)
        while next_id is not None:
            params = {"symbol": symbol, "fromId": next_id, "limit": limit}
            raw = self._get("/aggTrades", params, symbol)
            rows = sorted({int(r["a"]): r for r in raw if int(r["a"]) >= next_id}.items())
            if not rows:
                if stale.retry(int(r["a"]) for r in raw):
                    continue
                return  # no id at or after next_id: the end of the data
            stale.count = 0
            keep = [r for _, r in rows if start_ms <= int(r["T"]) <= end_ms]
            if keep:
                yield agg_trades_table(keep, symbol)
            if int(rows[-1][1]["T"]) > end_ms:
                return
            next_id = rows[-1][0] + 1  # a short page is not the end: ask again from here

    def agg_trades(
        self, symbol: str, start_us: int, end_us: int, from_id: int | None = None
    ) -> pa.Table:
        """All aggregate trades of ``[start_us, end_us)`` as one ``schemas.AGG_TRADES`` table."""
        pages = list(self.iter_agg_trades(symbol, start_us, end_us, from_id))
        return pa.concat_tables([schemas.AGG_TRADES.empty_table(), *pages])

    # ------------------------------------------------------------------ funding
    def iter_funding(self, symbol: str, start_us: int, end_us: int) -> Iterator[pa.Table]:
        """Pages of funding events with ``start_us <= funding_time < end_us`` (USD-M only)."""
        if self.market != "usdm":
            raise SchemaError("funding rates are served by Binance usdm only, not spot")
        cursor, end_ms = -(-start_us // 1000), (end_us - 1) // 1000
        limit = self._limit(1000)
        stale = _StalePages("/fundingRate", symbol)
        while cursor <= end_ms:
            params = {"symbol": symbol, "startTime": cursor, "endTime": end_ms, "limit": limit}
            raw = self._get("/fundingRate", params, symbol)
            rows = sorted(
                {int(r["fundingTime"]): r for r in raw
                 if cursor <= int(r["fundingTime"]) <= end_ms}.items()
            )  # fmt: skip
            if not rows:
                if stale.retry(int(r["fundingTime"]) for r in raw):
                    continue
                return
            stale.count = 0
            yield funding_table([r for _, r in rows], symbol)
            cursor = rows[-1][0] + 1  # a short page is not the end: ask again from here

    def funding(self, symbol: str, start_us: int, end_us: int) -> pa.Table:
        """All funding events of ``[start_us, end_us)`` as one ``schemas.FUNDING`` table."""
        pages = list(self.iter_funding(symbol, start_us, end_us))
        return pa.concat_tables([schemas.FUNDING.empty_table(), *pages])

    # ------------------------------------------------------------------ depth / info
    def depth(self, symbol: str, limit: int = 1000) -> pa.Table:
        """One order-book snapshot as a one-row ``schemas.BOOK_SNAPSHOTS`` table.

        ``ts`` is the futures transaction time ``T`` when sent, else the local receive time.
        """
        body = self._get("/depth", {"symbol": symbol, "limit": limit}, symbol)
        ts_ms = body.get("T") or body.get("E") or int(self.clock() * 1000)
        bids, asks = body.get("bids", []), body.get("asks", [])
        row = {
            "symbol": [symbol],
            "ts": _ms_to_ts([ts_ms]),
            "update_id": [int(body["lastUpdateId"])],
            "bid_px": [[float(p) for p, _ in bids]],
            "bid_qty": [[float(q) for _, q in bids]],
            "ask_px": [[float(p) for p, _ in asks]],
            "ask_qty": [[float(q) for _, q in asks]],
        }
        return pa.table(row, schema=schemas.BOOK_SNAPSHOTS)

    def exchange_info(self) -> dict[str, Any]:
        """The raw ``exchangeInfo`` document (symbols, status, filters, rate limits)."""
        body = self._get("/exchangeInfo", {})
        if not isinstance(body, dict) or "symbols" not in body:
            raise SchemaError(f"exchangeInfo from {self.http.base_url}: no 'symbols' list")
        return body
