"""Shared enums and structured record dtypes of the engine.

Modes are IntEnums; kernels receive ``.value`` ints. Records are aligned numpy structured
dtypes whose field units are documented here, once.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class SlippageModel(IntEnum):
    """How a fill price is derived from the reference (execution) price.

    NONE: fill at the reference price.
    FIXED_BPS: reference * (1 + side * slippage_bps / 1e4).
    HALF_SPREAD: reference mid +/- half the quoted spread (needs a ``spread_bps`` input).
    SQRT_IMPACT: half-spread + k * sigma * sqrt(|qty| / ADV) (needs sigma and ADV inputs).
    BOOK_WALK: volume-weighted price of walking the book levels in force at execution.
    """

    NONE = 0
    FIXED_BPS = 1
    HALF_SPREAD = 2
    SQRT_IMPACT = 3
    BOOK_WALK = 4


class Exhaustion(IntEnum):
    """What a book walk does when the order is larger than the visible depth.

    CANCEL_REST: fill what the book holds, cancel the remainder.
    PENALTY: fill the remainder at the last consumed level worsened by a penalty in bps.
    """

    CANCEL_REST = 0
    PENALTY = 1


class WeightScheme(IntEnum):
    """How cross-sectional signals become target weights (engine.weights)."""

    RANK = 0
    QUANTILE = 1
    SIGN = 2
    ZSCORE = 3
    RAW = 4


class Status(IntEnum):
    """Kernel status codes, turned into exceptions by the API modules."""

    OK = 0
    NAN_PRICE_WITH_POSITION = 1
    NONPOSITIVE_PRICE = 2
    BANKRUPT = 3
    NAN_PRICE_WITH_TARGET = 4
    INF_WEIGHT = 5


TRADE_DTYPE = np.dtype(
    [
        ("row", np.int64),  # Panel row at which the fill happened (t + lag)
        ("decision_row", np.int64),  # Panel row whose data decided the order
        ("col", np.int64),  # asset index into Panel.symbols
        ("param", np.int64),  # parameter-set index k
        ("qty", np.float64),  # signed base-asset quantity filled (> 0 buy)
        ("ref_px", np.float64),  # reference (arrival) price: open[t+lag], or close[t] at lag 0
        ("fill_px", np.float64),  # average fill price after slippage
        ("notional", np.float64),  # |qty| * fill_px, quote currency
        ("fee", np.float64),  # fee paid, quote currency (>= 0)
        ("slippage", np.float64),  # |qty| * |fill_px - ref_px|, quote currency (>= 0)
        ("half_spread", np.float64),  # part of the slippage due to the quoted half-spread
        ("impact", np.float64),  # rest of the slippage (depth / impact), quote currency
        ("unfilled_qty", np.float64),  # signed quantity a book walk could not fill
    ],
    align=True,
)
"""One fill per record; the cost split satisfies slippage == half_spread + impact."""
