"""Documented request weights of the Binance market-data endpoints alphaforge calls.

From the Binance Spot API and USD-M Futures API docs ("Request Weight" of each endpoint):

- spot ``/api/v3/klines`` 2 (any limit), ``/api/v3/aggTrades`` 4, ``/api/v3/exchangeInfo`` 20,
  ``/api/v3/depth`` by limit: 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50, 1001-5000 -> 250;
- USD-M ``/fapi/v1/klines``, ``markPriceKlines``, ``indexPriceKlines`` by limit:
  [1,100) -> 1, [100,500) -> 2, [500,1000] -> 5, > 1000 -> 10 (default limit 500);
  ``/fapi/v1/aggTrades`` 20, ``/fapi/v1/exchangeInfo`` 1, ``/fapi/v1/fundingRate`` 1 (it also
  shares a separate 500 requests / 5 min / IP limit), ``/fapi/v1/depth`` by limit:
  5-50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20.

Per-minute ``REQUEST_WEIGHT`` limits (``exchangeInfo.rateLimits``): spot 6000, USD-M 2400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SPOT_WEIGHT_LIMIT: Final = 6000
USDM_WEIGHT_LIMIT: Final = 2400

_FIXED: Final[dict[str, int]] = {
    "/api/v3/klines": 2,
    "/api/v3/uiKlines": 2,
    "/api/v3/aggTrades": 4,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/fapi/v1/aggTrades": 20,
    "/fapi/v1/exchangeInfo": 1,
    "/fapi/v1/fundingRate": 1,
    "/fapi/v1/ping": 1,
    "/fapi/v1/time": 1,
}
_FUTURES_KLINES: Final = frozenset(
    {"/fapi/v1/klines", "/fapi/v1/markPriceKlines", "/fapi/v1/indexPriceKlines"}
)


def _limit(params: Mapping[str, Any] | None, default: int) -> int:
    if not params or params.get("limit") is None:
        return default
    return int(params["limit"])


def futures_klines_weight(limit: int) -> int:
    """USD-M klines weight: [1,100) -> 1, [100,500) -> 2, [500,1000] -> 5, > 1000 -> 10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def spot_depth_weight(limit: int) -> int:
    """Spot depth weight: 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50, 1001-5000 -> 250."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def futures_depth_weight(limit: int) -> int:
    """USD-M depth weight: 5-50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20."""
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def endpoint_weight(path: str, params: Mapping[str, Any] | None = None) -> int:
    """Request weight of ``path`` with ``params`` (1 for endpoints not listed above)."""
    if path in _FUTURES_KLINES:
        return futures_klines_weight(_limit(params, 500))
    if path == "/api/v3/depth":
        return spot_depth_weight(_limit(params, 100))
    if path == "/fapi/v1/depth":
        return futures_depth_weight(_limit(params, 500))
    return _FIXED.get(path, 1)
