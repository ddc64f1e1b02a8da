"""An account's own fills, as Binance gives them, in the columns ``alphaforge gap`` reads.

Accepted layouts (told apart by the file's content, not its name):

- **REST JSON** (``.json``): the list ``GET /api/v3/myTrades`` (spot: ``isBuyer``) or
  ``GET /fapi/v1/userTrades`` (USD-M: ``side``/``buyer``) returns, or several such lists
  concatenated in one JSON array; ``time`` in ms, prices and quantities as strings.
- **REST fields as CSV**: the same field names as a CSV header (``symbol, orderId, price, qty,
  commission, commissionAsset, time`` and ``isBuyer`` or ``side``), as API export tools write.
- **The account's trade-history export** (web/app "Export Trade History"): header
  ``Date(UTC),Pair,Side,Price,Executed,Amount,Fee`` (spot; the futures export says ``Symbol``
  and ``Quantity``), times ``YYYY-MM-DD HH:MM:SS`` in UTC, and quantities with their asset
  glued on (``0.5BTC``, ``0.000010 BNB``); a separate ``Fee Coin`` column when present.

Output columns (numpy arrays, one row per fill): ``ts_us`` (int64 UTC µs), ``symbol``, ``side``
(+1 buy / -1 sell), ``qty`` (base units, > 0), ``price``, ``fee`` (>= 0, in ``fee_asset``),
``fee_asset``, and ``order_id`` / ``trade_id`` when the layout has them. The USD-M layout gives
commissions with either sign in the wild; the fee is taken as its absolute value (a maker
rebate cannot be told apart there).

Anything else is returned as None by ``detect_layout`` so the caller can read the gap's own
column layout instead.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alphaforge.data.errors import SchemaError

Layout = Literal["rest_json", "rest_csv", "export_csv"]
_AMOUNT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z0-9]*)\s*$")
_EXPORT_TIME = ("date(utc)", "time(utc)", "date", "time")
_EXPORT_QTY = ("executed", "quantity", "qty", "filled")


def detect_layout(path: str | Path) -> Layout | None:
    """Which Binance user-trade layout ``path`` holds, or None for another layout."""
    p = Path(path)
    head = _text(p)[:4096].lstrip("\ufeff").lstrip()
    if head.startswith("["):
        return "rest_json"
    first = head.splitlines()[0].lower() if head else ""
    cols = {c.strip().strip('"') for c in first.split(",")}
    if {"commissionasset", "price", "qty"} <= cols:
        return "rest_csv"
    if {"date(utc)", "time(utc)"} & cols and {"pair", "symbol"} & cols and set(_EXPORT_QTY) & cols:
        return "export_csv"
    return None


def read_user_trades(path: str | Path) -> dict[str, np.ndarray]:
    """The fills of a Binance user-trade file (module docstring) as columns.

    Raises:
        SchemaError: not a recognised layout, or a row whose field cannot be read (file, row
            and field named).
    """
    p = Path(path)
    layout = detect_layout(p)
    if layout == "rest_json":
        try:
            rows = json.loads(_text(p))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{p}: not valid JSON ({exc})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SchemaError(f"{p}: expected a JSON list of trade objects")
        return _from_rest(p, rows)
    if layout == "rest_csv":
        return _from_rest(p, list(csv.DictReader(io.StringIO(_text(p).lstrip("\ufeff")))))
    if layout == "export_csv":
        return _from_export(p, list(csv.DictReader(io.StringIO(_text(p).lstrip("\ufeff")))))
    raise SchemaError(f"{p}: not a Binance user-trade file (REST myTrades/userTrades JSON or "
                      "CSV, or the trade-history export)")  # fmt: skip


def _text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{p}: cannot read as UTF-8 text ({exc})") from None


def _from_rest(p: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    out: dict[str, list[Any]] = {k: [] for k in ("ts_us", "symbol", "side", "qty", "price", "fee",
                                                  "fee_asset", "order_id", "trade_id")}  # fmt: skip
    for i, r in enumerate(rows, 1):
        where = f"{p}: trade {i}"
        out["ts_us"].append(_int(r, "time", where) * 1000)
        out["symbol"].append(_str(r, "symbol", where))
        out["side"].append(_rest_side(r, where))
        out["qty"].append(_pos(r, "qty", where))
        out["price"].append(_pos(r, "price", where))
        out["fee"].append(abs(_num(r, "commission", where)))
        out["fee_asset"].append(_str(r, "commissionAsset", where))
        out["order_id"].append(str(r.get("orderId", "")))
        out["trade_id"].append(str(r.get("id", "")))
    return _arrays(out)


def _from_export(p: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    out: dict[str, list[Any]] = {k: [] for k in ("ts_us", "symbol", "side", "qty", "price", "fee",
                                                  "fee_asset")}  # fmt: skip
    ids: list[str] = []
    for i, raw in enumerate(rows, 2):  # line 1 is the header
        r = {str(k).strip().lower(): ("" if v is None else str(v).strip()) for k, v in raw.items()}
        where = f"{p}: line {i}"
        stamp = next((r[k] for k in _EXPORT_TIME if r.get(k)), "")
        try:
            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise SchemaError(f"{where}: field Date(UTC) {stamp!r} is not YYYY-MM-DD HH:MM:SS"
                              ) from None  # fmt: skip
        out["ts_us"].append(int(t.timestamp()) * 1_000_000)
        out["symbol"].append((r.get("pair") or r.get("symbol") or "").replace("/", ""))
        side = r.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            raise SchemaError(f"{where}: field Side {side!r} is not BUY or SELL")
        out["side"].append(1.0 if side == "BUY" else -1.0)
        qty_text = next((r[k] for k in _EXPORT_QTY if r.get(k)), "")
        out["qty"].append(_amount(qty_text, "Executed", where, positive=True)[0])
        out["price"].append(_amount(r.get("price", ""), "Price", where, positive=True)[0])
        fee, unit = _amount(r.get("fee", ""), "Fee", where, positive=False)
        coin = r.get("fee coin") or r.get("fee asset") or r.get("feecoin") or unit
        if not coin:
            raise SchemaError(f"{where}: field Fee {r.get('fee')!r} names no asset and there is "
                              "no Fee Coin column")  # fmt: skip
        out["fee"].append(abs(fee))
        out["fee_asset"].append(coin.upper())
        ids.append(r.get("order id") or r.get("orderid") or "")
    cols = _arrays(out)
    if any(ids):
        cols["order_id"] = np.asarray(ids)
    return cols


def _arrays(out: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    kinds = {"ts_us": np.int64, "side": np.float64, "qty": np.float64, "price": np.float64,
             "fee": np.float64}  # fmt: skip
    return {k: np.asarray(v, dtype=kinds.get(k, str)) for k, v in out.items()}


def _amount(text: str, field: str, where: str, *, positive: bool) -> tuple[float, str]:
    m = _AMOUNT.match(text.replace(",", ""))
    if not m:
        raise SchemaError(f"{where}: field {field} {text!r} is not a number (with an optional "
                          "asset, e.g. 0.5BTC)")  # fmt: skip
    value = float(m.group(1))
    if positive and not value > 0:
        raise SchemaError(f"{where}: field {field} {text!r} must be > 0")
    return value, m.group(2).upper()


def _num(r: Mapping[str, Any], key: str, where: str) -> float:
    if key not in r or r[key] in (None, ""):
        raise SchemaError(f"{where}: field {key!r} is missing")
    try:
        return float(r[key])
    except (TypeError, ValueError):
        raise SchemaError(f"{where}: field {key!r} = {r[key]!r} is not a number") from None


def _pos(r: Mapping[str, Any], key: str, where: str) -> float:
    v = _num(r, key, where)
    if not v > 0:
        raise SchemaError(f"{where}: field {key!r} = {r[key]!r} must be > 0")
    return v


def _int(r: Mapping[str, Any], key: str, where: str) -> int:
    v = _num(r, key, where)
    if v != int(v):
        raise SchemaError(f"{where}: field {key!r} = {r[key]!r} is not an integer")
    return int(v)


def _str(r: Mapping[str, Any], key: str, where: str) -> str:
    v = r.get(key)
    if v in (None, ""):
        raise SchemaError(f"{where}: field {key!r} is missing")
    return str(v)


def _rest_side(r: Mapping[str, Any], where: str) -> float:
    if r.get("side") not in (None, ""):
        s = str(r["side"]).upper()
        if s not in ("BUY", "SELL"):
            raise SchemaError(f"{where}: field 'side' = {r['side']!r} is not BUY or SELL")
        return 1.0 if s == "BUY" else -1.0
    for key in ("isBuyer", "buyer"):
        if key in r:
            v = r[key]
            if isinstance(v, str):
                if v.lower() not in ("true", "false"):
                    raise SchemaError(f"{where}: field {key!r} = {v!r} is not true/false")
                v = v.lower() == "true"
            return 1.0 if bool(v) else -1.0
    raise SchemaError(f"{where}: no side (fields 'side', 'isBuyer' or 'buyer')")
