"""Derived fields: returns, vwap and the book fields, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from alphaforge.engine.panel import BookLevels, Panel
from alphaforge.factors.errors import ExprError
from alphaforge.factors.fields import (
    BOOK_FIELDS,
    DEPTH_BAND_BPS,
    available_fields,
    derive_field,
    derive_fields,
)

TS = np.arange(3, dtype=np.int64) * 60_000_000


def _book() -> BookLevels:
    # one asset, two levels per side, three rows; mid = 100 on every row
    bid_px = np.array([[[99.95, 99.80]], [[99.99, 99.95]], [[np.nan, np.nan]]])
    ask_px = np.array([[[100.05, 100.20]], [[100.01, 100.05]], [[np.nan, np.nan]]])
    bid_qty = np.array([[[1.0, 2.0]], [[3.0, 1.0]], [[np.nan, np.nan]]])
    ask_qty = np.array([[[2.0, 5.0]], [[1.0, 1.0]], [[np.nan, np.nan]]])
    return BookLevels(bid_px, bid_qty, ask_px, ask_qty)


def test_returns_and_vwap() -> None:
    close = np.array([[100.0], [110.0], [0.0]])
    p = Panel(
        TS,
        ("a",),
        {
            "close": close,
            "volume": np.array([[2.0], [0.0], [1.0]]),
            "quote_volume": np.array([[201.0], [0.0], [5.0]]),
        },
    )
    np.testing.assert_allclose(derive_field(p, "returns")[:, 0], [np.nan, 0.1, -1.0], rtol=1e-12)
    np.testing.assert_array_equal(derive_field(p, "vwap")[:, 0], [100.5, np.nan, 5.0])
    after_zero = Panel(TS, ("a",), {"close": np.array([[0.0], [1.0], [2.0]])})
    np.testing.assert_array_equal(derive_field(after_zero, "returns")[:, 0], [np.nan, np.nan, 1.0])


def test_book_fields_by_hand() -> None:
    p = Panel(TS, ("a",), {"close": np.full((3, 1), 100.0)}, book=_book())
    np.testing.assert_allclose(derive_field(p, "spread_bps")[:2, 0], [10.0, 2.0], rtol=1e-9)
    np.testing.assert_allclose(
        derive_field(p, "depth_imbalance")[:2, 0], [(3 - 7) / 10, (4 - 2) / 6], rtol=1e-12
    )
    # within 10 bps of 100: row 0 only level 0 per side, row 1 both levels per side
    want = [99.95 * 1 + 100.05 * 2, 99.99 * 3 + 99.95 * 1 + 100.01 * 1 + 100.05 * 1]
    assert DEPTH_BAND_BPS == 10.0
    np.testing.assert_allclose(derive_field(p, "depth_at_bps")[:2, 0], want, rtol=1e-12)
    for name in BOOK_FIELDS:
        assert np.isnan(derive_field(p, name)[2, 0]), name


def test_derive_fields_adds_everything_derivable_and_keeps_stored_vwap() -> None:
    stored_vwap = np.full((3, 1), 7.0)
    p = Panel(
        TS,
        ("a",),
        {
            "close": np.ones((3, 1)),
            "volume": np.ones((3, 1)),
            "quote_volume": np.ones((3, 1)),
            "vwap": stored_vwap,
        },
        book=_book(),
    )
    full = derive_fields(p)
    assert set(full.fields) == {"close", "volume", "quote_volume", "vwap", "returns", *BOOK_FIELDS}
    np.testing.assert_array_equal(full["vwap"], stored_vwap)
    assert available_fields(p) == frozenset(full.fields)


def test_underivable_fields_raise() -> None:
    p = Panel(TS, ("a",), {"open": np.ones((3, 1))})
    assert available_fields(p) == {"open"}
    assert derive_fields(p) is p
    with pytest.raises(ExprError, match="cannot be derived") as info:
        derive_field(p, "returns")
    assert info.value.token == "returns"
    with pytest.raises(ExprError, match="no book"):
        derive_field(p, "depth_imbalance")
    with pytest.raises(ExprError, match="unknown field"):
        derive_field(p, "nonsense")


def test_returns_and_vwap_equal_numpy_bit_for_bit() -> None:
    """The kernels behind ``returns`` and ``vwap`` give numpy's bits for close[t] / close[t-1]
    - 1 and quote_volume / volume, non-finite results NaN: zeros of both signs, infinities,
    NaN and ordinary values, on a panel large enough to split across threads."""
    rng = np.random.default_rng(11)
    shape = (4_000, 60)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, 1e300, -3.0])

    def draw() -> np.ndarray:
        a = rng.lognormal(0, 1, shape)
        pick = rng.random(shape) < 0.05
        a[pick] = rng.choice(special, int(pick.sum()))
        return a

    close, qv, vol = draw(), draw(), draw()
    ts = np.arange(shape[0], dtype=np.int64) * 60_000_000
    p = Panel(ts, tuple(f"s{j}" for j in range(shape[1])),
              {"close": close, "quote_volume": qv, "volume": vol})  # fmt: skip
    with np.errstate(all="ignore"):
        r = np.full(shape, np.nan)
        r[1:] = close[1:] / close[:-1] - 1.0
        v = qv / vol
    for name, want in (("returns", r), ("vwap", v)):
        want = np.where(np.isfinite(want), want, np.nan)
        got = derive_field(p, name)
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)
