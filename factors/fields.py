"""Fields an expression may name, and the derived ones computed from a Panel.

Raw fields come from the Panel as loaded (klines: open, high, low, close, volume, quote_volume,
trades, taker_buy_volume; perpetuals: funding_rate, basis, mark_close). Derived fields:

- ``returns``: simple close-to-close return ``close[t] / close[t-1] - 1`` (NaN on row 0 and
  where the previous close is 0 or NaN). Look-back 1 bar.
- ``vwap``: ``quote_volume / volume`` when the Panel has no vwap field (NaN where volume is 0).
- Book fields, only when the Panel carries ``BookLevels``:
  - ``spread_bps``: ``(ask_px[0] - bid_px[0]) / mid * 1e4`` with ``mid = (ask0 + bid0) / 2``;
  - ``depth_imbalance``: ``(sum bid_qty - sum ask_qty) / (sum bid_qty + sum ask_qty)`` over
    every level present, in [-1, 1];
  - ``depth_at_bps``: quote notional (price x qty, both sides summed) resting within
    ``DEPTH_BAND_BPS`` = 10 bps of the mid.

Every derived value at row t uses only rows <= t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import Panel
from alphaforge.factors.errors import ExprError

F64 = npt.NDArray[np.float64]

DEPTH_BAND_BPS = 10.0
"""Half-width of the band around the mid counted by ``depth_at_bps``, in basis points."""


SOURCES = {
    "funding_rate": "the store's funding dataset: ingest fundingRate archive files or "
    "`pull --dataset funding`",
    "funding_paid": "the store's funding dataset: ingest fundingRate archive files or "
    "`pull --dataset funding`",
    "mark_close": "the store's mark_klines_<interval>: ingest markPriceKlines archive files or "
    "`pull --dataset mark_klines`",
    "basis": "the store's mark_klines_<interval> and index_klines_<interval>: ingest "
    "markPriceKlines and indexPriceKlines archive files",
    "open_interest": "the store's metrics dataset (USD-M open interest): ingest metrics archive "
    "files or `pull --dataset metrics`; or Tardis derivative_ticker files",
    "open_interest_value": "the store's metrics dataset: ingest metrics archive files or "
    "`pull --dataset metrics`",
    "spread_bps": "order-book levels (a panel with recorded depth)",
    "depth_imbalance": "order-book levels (a panel with recorded depth)",
    "depth_at_bps": "order-book levels (a panel with recorded depth)",
}
"""Where a field the kline panel lacks comes from: named in the error when it is missing."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field name of the language.

    Attributes:
        name: the identifier in expressions.
        lookback: bars of history the field itself needs (returns: 1).
        derived: computed by ``derive_field`` when absent from the Panel.
        doc: one line with the unit.
    """

    name: str
    lookback: int
    derived: bool
    doc: str


_SPECS = [
    FieldSpec("open", 0, False, "bar open price (quote currency)"),
    FieldSpec("high", 0, False, "bar high price"),
    FieldSpec("low", 0, False, "bar low price"),
    FieldSpec("close", 0, False, "bar close price"),
    FieldSpec("volume", 0, False, "base-asset volume of the bar"),
    FieldSpec("quote_volume", 0, False, "quote-currency volume of the bar"),
    FieldSpec("trades", 0, False, "number of trades in the bar"),
    FieldSpec("taker_buy_volume", 0, False, "base volume bought by takers"),
    FieldSpec("vwap", 0, True, "volume-weighted price, quote_volume / volume if absent"),
    FieldSpec("returns", 1, True, "close[t] / close[t-1] - 1"),
    FieldSpec(
        "funding_rate",
        0,
        False,
        "perpetual funding: last settled rate per hour (fraction per hour)",
    ),
    FieldSpec(
        "funding_paid",
        0,
        False,
        "perpetual funding settled on the bar (fraction; NaN on other bars)",
    ),
    FieldSpec("basis", 0, False, "perpetual basis (fraction of index price)"),
    FieldSpec("mark_close", 0, False, "mark price at bar close"),
    FieldSpec("open_interest", 0, False, "perpetual open interest last published (contracts)"),
    FieldSpec("open_interest_value", 0, False, "open interest last published (quote currency)"),
    FieldSpec("spread_bps", 0, True, "top-of-book spread in bps of mid (needs a book)"),
    FieldSpec("depth_imbalance", 0, True, "(bid qty - ask qty) / total over all levels"),
    FieldSpec("depth_at_bps", 0, True, "quote notional within 10 bps of mid, both sides"),
]

FIELDS: dict[str, FieldSpec] = {s.name: s for s in _SPECS}
"""Every field name the expression language knows."""

BOOK_FIELDS = ("spread_bps", "depth_imbalance", "depth_at_bps")


def _returns(close: F64) -> F64:
    """close[t] / close[t-1] - 1, NaN on row 0 and where not finite: the expression kernel of
    ``ts_pct_change(close, 1)`` (one threaded pass; numpy's version made five passes and four
    temporaries, about 80 ms on 100 x 100,000 against 10-25 ms)."""
    from alphaforge.factors.expr import kernels, ts_nb  # the expr package imports this module

    return kernels.ts_shift(_kernel_input(close), 1, ts_nb.PCT)


def _kernel_input(a: F64) -> F64:
    """``a`` as a C-ordered, writable float64 array (a read-only one would make numba compile
    another specialization of the kernel)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a if a.flags.writeable else a.copy()


def _safe_div(a: F64, b: F64) -> F64:
    """a / b for (T, N) arrays, NaN where the result is not finite: the expression language's
    division kernel (one threaded pass; numpy's divide-then-mask made three)."""
    from alphaforge.factors.expr import kernels, ops_nb  # the expr package imports this module

    return kernels.arith(_kernel_input(a), _kernel_input(b), ops_nb.DIV)


def _book_field(panel: Panel, name: str) -> F64:
    book = panel.book
    if book is None:
        raise ExprError(
            f"field {name!r} needs order-book levels but the panel has no book", 0, name
        )
    bid0, ask0 = book.bid_px[:, :, 0], book.ask_px[:, :, 0]
    mid = (bid0 + ask0) / 2.0
    if name == "spread_bps":
        return _safe_div((ask0 - bid0) * 1e4, mid)
    if name == "depth_imbalance":
        bq = np.nansum(book.bid_qty, axis=2)
        aq = np.nansum(book.ask_qty, axis=2)
        out = _safe_div(bq - aq, bq + aq)
        out[np.isnan(mid)] = np.nan
        return out
    band = mid[:, :, None] * (DEPTH_BAND_BPS / 1e4)
    near_bid = book.bid_px >= mid[:, :, None] - band
    near_ask = book.ask_px <= mid[:, :, None] + band
    notional = np.where(near_bid, book.bid_px * book.bid_qty, 0.0)
    notional = notional + np.where(near_ask, book.ask_px * book.ask_qty, 0.0)
    out = np.nansum(notional, axis=2)
    out[np.isnan(mid)] = np.nan
    return np.ascontiguousarray(out)


def derive_field(panel: Panel, name: str) -> F64:
    """The (T, N) float64 values of field ``name``, from the Panel or derived.

    Args:
        panel: the Panel.
        name: a field of ``FIELDS``.

    Returns:
        (T, N) float64 array (the Panel's own array when the field is stored).

    Raises:
        ExprError: unknown field, or a field the panel neither holds nor can derive
            (token = the field name).
    """
    if name in panel.fields:
        return panel.fields[name]
    if name not in FIELDS:
        raise ExprError(f"unknown field {name!r}", 0, name)
    if name == "returns" and "close" in panel.fields:
        return _returns(panel.fields["close"])
    if name == "vwap" and "quote_volume" in panel.fields and "volume" in panel.fields:
        return _safe_div(panel.fields["quote_volume"], panel.fields["volume"])
    if name in BOOK_FIELDS:
        return _book_field(panel, name)
    need = f" (it needs {SOURCES[name]})" if name in SOURCES else ""
    raise ExprError(
        f"field {name!r} is not in the panel and cannot be derived{need}; "
        f"panel has {sorted(panel.fields)}",
        0,
        name,
    )


def available_fields(panel: Panel) -> frozenset[str]:
    """Field names an expression can use on ``panel`` (stored or derivable)."""
    have = set(panel.fields)
    if "close" in have:
        have.add("returns")
    if {"quote_volume", "volume"} <= have:
        have.add("vwap")
    if panel.book is not None:
        have.update(BOOK_FIELDS)
    return frozenset(have)


def derive_fields(panel: Panel) -> Panel:
    """A Panel with every derivable field added (returns, vwap, book fields when a book exists).

    Stored fields are kept as they are (a stored vwap is never overwritten).
    """
    new = {
        name: derive_field(panel, name)
        for name in sorted(available_fields(panel) - set(panel.fields))
    }
    return panel.with_fields(**new) if new else panel
