"""Which symbols were listed when, and a (T, N) "tradable" mask for backtests.

A :class:`Listing` combines what the store saw (first and last bar) with what the exchange says
(``exchangeInfo`` status, USD-M ``onboardDate`` and ``deliveryDate``). The mask convention:

    tradable[t, n] = listed_from_us[n] <= ts_us[t] < delisted_at_us[n]

- ``listed_from_us`` is the open time of the first bar seen, else the USD-M ``onboardDate``;
  a symbol with neither is never tradable;
- ``delisted_at_us`` is the end of the last bar seen (open + interval) when the exchange no
  longer lists the symbol as ``TRADING`` (or does not list it at all; with no bar seen such a
  symbol is never tradable), or, without the exchange's word, when the symbol's bars end before
  the end of the data; the ``deliveryDate`` of a dated future; else open-ended.

So a backtest masked with it never trades a symbol before its listing or after its delisting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from alphaforge.data.errors import SchemaError, UnknownSymbol

__all__ = [
    "Listing",
    "fetch_listings",
    "listings_from_exchange_info",
    "listings_from_store",
    "merge_listings",
    "tradable_mask",
]

NO_DELIVERY_MS: Final = 4_133_404_800_000  # 2100-12-25: Binance's deliveryDate of perpetuals
_INF: Final = np.iinfo(np.int64).max


class _Partitions(Protocol):
    def partitions(
        self,
        dataset: str | None = None,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
    ) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Listing:
    """What is known about one symbol's listing (times in UTC µs, None = unknown).

    Attributes:
        symbol: exchange symbol.
        first_us / last_us: open times of the first and last bar seen.
        status: ``exchangeInfo`` status (``TRADING``, ``BREAK``, ``SETTLING``, ``PENDING_TRADING``,
            ...); None when the exchange was not asked; ``""`` when it was asked and does not
            list the symbol any more.
        onboard_us: USD-M ``onboardDate``; delivery_us: ``deliveryDate`` of a dated contract.
        interval_us: length of the bars behind first/last (to place the end of the last bar).
    """

    symbol: str
    first_us: int | None = None
    last_us: int | None = None
    status: str | None = None
    onboard_us: int | None = None
    delivery_us: int | None = None
    interval_us: int = 0

    @property
    def listed_from_us(self) -> int | None:
        """First instant the symbol can be traded, or None if unknown (never tradable)."""
        return self.first_us if self.first_us is not None else self.onboard_us

    @property
    def delisted_at_us(self) -> int | None:
        """First instant it can no longer be traded, or None while it is still listed."""
        ends = []
        if self.delivery_us is not None:
            ends.append(self.delivery_us)
        if self.status is not None and self.status != "TRADING":
            if self.last_us is not None:
                ends.append(self.last_us + self.interval_us)
            elif self.listed_from_us is not None:  # not trading, no bar seen: never tradable
                ends.append(self.listed_from_us)
        return min(ends) if ends else None


def listings_from_store(
    store: _Partitions,
    dataset: str = "klines_1m",
    exchange: str = "binance",
    market: str = "usdm",
    symbols: Iterable[str] | None = None,
    interval_us: int = 0,
) -> dict[str, Listing]:
    """First and last bar (open time, µs) of every symbol stored in ``dataset``.

    A symbol whose last bar ends before the last bar of the whole dataset (every symbol stored
    in it, not only those asked for) is taken as delisted at the end of its last bar (status
    ``""``); `merge_listings` with the exchange's own status overrides this. Uses the partition
    manifests only (no data file is read).
    """
    wanted = set(symbols) if symbols is not None else None
    spans: dict[str, tuple[int, int]] = {}
    data_end = None
    for p in store.partitions(dataset, exchange, market):
        if p.max_time_us is None or p.min_time_us is None:
            continue
        data_end = p.max_time_us if data_end is None else max(data_end, p.max_time_us)
        if wanted is not None and p.symbol not in wanted:
            continue
        lo, hi = spans.get(p.symbol, (p.min_time_us, p.max_time_us))
        spans[p.symbol] = (min(lo, p.min_time_us), max(hi, p.max_time_us))
    return {
        s: Listing(
            s,
            first_us=lo,
            last_us=hi,
            interval_us=interval_us,
            status="" if hi < (data_end or hi) else None,
        )
        for s, (lo, hi) in sorted(spans.items())
    }


def listings_from_exchange_info(info: Mapping[str, Any]) -> dict[str, Listing]:
    """Status, onboard and delivery dates (ms -> µs) from an ``exchangeInfo`` document.

    Raises:
        SchemaError: the document has no ``symbols`` list.
    """
    symbols = info.get("symbols")
    if not isinstance(symbols, list):
        raise SchemaError("exchangeInfo: expected a 'symbols' list")
    out: dict[str, Listing] = {}
    for s in symbols:
        onboard = s.get("onboardDate")
        delivery = s.get("deliveryDate")
        out[s["symbol"]] = Listing(
            s["symbol"],
            status=str(s.get("status", "")),
            onboard_us=int(onboard) * 1000 if onboard else None,
            delivery_us=(
                int(delivery) * 1000 if delivery and int(delivery) < NO_DELIVERY_MS else None
            ),
        )
    return out


def fetch_listings(rest: Any, symbols: Iterable[str], interval: str = "1d") -> dict[str, Listing]:
    """Listings from Binance REST: ``exchangeInfo`` plus first (and, for symbols no longer
    ``TRADING``, last) bar of ``interval`` per symbol.

    Args:
        rest: a :class:`data.binance_rest.BinanceRest`.
        symbols: symbols to look up (delisted ones may be absent from exchangeInfo).
        interval: bar interval used to find the first/last bar.
    """
    from alphaforge.data.schemas import interval_us

    info = listings_from_exchange_info(rest.exchange_info())
    iv = interval_us(interval)
    out: dict[str, Listing] = {}
    for sym in symbols:
        base = info.get(sym, Listing(sym, status=""))
        try:
            first = rest.edge_bar_us(sym, interval)
            last = rest.edge_bar_us(sym, interval, last=True) if base.status != "TRADING" else None
        except UnknownSymbol:  # delisted long ago: Binance no longer serves its bars
            first = last = None
        out[sym] = replace(base, first_us=first, last_us=last, interval_us=iv)
    return out


def merge_listings(
    seen: Mapping[str, Listing], exchange: Mapping[str, Listing] | None = None
) -> dict[str, Listing]:
    """Bars seen (``seen``) + exchange facts. With ``exchange`` given, a symbol it does not list
    gets status ``""`` (delisted: tradable until the end of its last bar)."""
    if exchange is None:
        return dict(seen)
    out: dict[str, Listing] = {}
    for sym in sorted(set(seen) | set(exchange)):
        a, b = seen.get(sym), exchange.get(sym)
        if a is None:
            assert b is not None
            out[sym] = b
        elif b is None:
            out[sym] = replace(a, status="")
        else:
            out[sym] = replace(a, status=b.status, onboard_us=b.onboard_us,
                               delivery_us=b.delivery_us)  # fmt: skip
    return out


def tradable_mask(
    ts_us: npt.ArrayLike, symbols: Sequence[str], listings: Mapping[str, Listing]
) -> npt.NDArray[np.bool_]:
    """(T, N) bool: may ``symbols[n]`` be traded at ``ts_us[t]``?

    Args:
        ts_us: (T,) int64 epoch µs (the decision/trade times of the backtest).
        symbols: (N,) symbols, the Panel's column order.
        listings: symbol -> :class:`Listing`; a symbol without one is never tradable.

    Returns:
        (T, N) bool array; ``listed_from_us <= ts < delisted_at_us`` per column.

    Raises:
        SchemaError: ``ts_us`` is not one-dimensional integer time.
    """
    ts = np.asarray(ts_us)
    if ts.ndim != 1 or not np.issubdtype(ts.dtype, np.integer):
        raise SchemaError(
            f"ts_us must be a 1-D int64 array of epoch µs, got shape {ts.shape} dtype {ts.dtype}"
        )
    lo = np.full(len(symbols), _INF, dtype=np.int64)
    hi = np.full(len(symbols), _INF, dtype=np.int64)
    for j, sym in enumerate(symbols):
        lst = listings.get(sym)
        if lst is None or lst.listed_from_us is None:
            continue
        lo[j] = lst.listed_from_us
        end = lst.delisted_at_us
        if end is not None:
            hi[j] = end
    t = ts.astype(np.int64)[:, None]
    mask: npt.NDArray[np.bool_] = (t >= lo[None, :]) & ((t < hi[None, :]) | (hi[None, :] == _INF))
    return mask
