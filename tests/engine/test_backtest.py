"""Backtest core: hand-computed examples, hypothesis properties and bad-input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.errors import InputError, OptionError, ShapeError
from alphaforge.engine.panel import BookLevels
from tests.strategies import price_paths


# ---------------------------------------------------------------- hand-computed examples
def test_one_asset_buy_and_hold_with_fee_by_hand() -> None:
    close = np.array([100.0, 110.0, 121.0, 110.0])
    open_ = np.array([100.0, 105.0, 120.0, 111.0])
    w = np.array([1.0, np.nan, np.nan, np.nan])  # buy once at row 1's open, then hold
    res = run_backtest(
        w, close=close, open=open_, lag=1, fee_bps=10.0, init_cash=1000.0, record_trades=True
    )
    # row 0: no fill yet; row 1: buy 1000/105 units at 105, fee 0.1% of 1000
    qty = 1000.0 / 105.0
    fee = 1000.0 * 10 * 1e-4
    expected = [1000.0, qty * 110.0 - fee, qty * 121.0 - fee, qty * 110.0 - fee]
    np.testing.assert_allclose(res.equity, expected, rtol=1e-12)
    assert res.n_fills == 1
    assert res.fees == pytest.approx(fee)
    (tr,) = res.trades
    assert (tr["row"], tr["decision_row"], tr["col"]) == (1, 0, 0)
    assert tr["qty"] == pytest.approx(qty)
    assert tr["fill_px"] == 105.0
    assert tr["fee"] == pytest.approx(fee)


def test_fixed_bps_slippage_moves_fill_against_the_trade() -> None:
    close = np.array([100.0, 100.0, 100.0])
    w = np.array([1.0, -1.0, 0.0])
    res = run_backtest(w, close=close, lag=0, slippage_bps=50.0, record_trades=True)
    fills = res.trades
    assert fills["fill_px"][0] == pytest.approx(100.5)  # buy pays up
    assert fills["fill_px"][1] == pytest.approx(99.5)  # sell receives less
    assert np.all(fills["slippage"] > 0)
    assert res.slippage == pytest.approx(fills["slippage"].sum())


def test_funding_is_charged_on_held_notional() -> None:
    close = np.array([100.0, 100.0, 100.0, 100.0])
    funding = np.array([np.nan, 0.001, np.nan, -0.002])
    w = np.array([-0.5, np.nan, np.nan, np.nan])  # short half the equity from row 0 (lag 0)
    res = run_backtest(w, close=close, lag=0, funding=funding, init_cash=1000.0)
    # short 5 units: pays -5*100*0.001 = -0.5 (receives 0.5), then -5*100*-0.002 = +1.0 paid
    assert res.funding == pytest.approx(-0.5 + 1.0)
    np.testing.assert_allclose(res.equity, [1000.0, 1000.5, 1000.5, 999.5])


def test_gross_leverage_cap_scales_targets() -> None:
    close = np.ones((3, 2)) * 10.0
    w = np.array([[2.0, -2.0]] * 3)
    res = run_backtest(w, close=close, lag=0, max_gross=1.0, record_trades=True)
    first = res.trades[res.trades["row"] == 0]
    np.testing.assert_allclose(np.abs(first["qty"] * first["fill_px"]), [0.5, 0.5])


def test_lot_rounding_truncates_toward_zero() -> None:
    close = np.full(3, 7.0)
    res = run_backtest(
        np.full(3, 1.0), close=close, lag=0, init_cash=100.0, lot_size=0.5, record_trades=True
    )
    assert res.trades["qty"][0] == pytest.approx(14.0)  # 100/7 = 14.28 -> 14.0


def test_book_walk_fill_and_cost_split() -> None:
    t, n, lv = 3, 1, 3
    bid = np.broadcast_to(np.array([99.0, 98.0, 97.0]), (t, n, lv)).copy()
    ask = np.broadcast_to(np.array([101.0, 102.0, 103.0]), (t, n, lv)).copy()
    qty = np.full((t, n, lv), 1.0)
    book = BookLevels(bid, qty, ask, qty)
    close = np.full(t, 100.0)
    # 150 quote at ~100 -> 1.5 units: 1 @ 101 + 0.5 @ 102 -> vwap 101.333
    res = run_backtest(
        np.array([1.0, np.nan, np.nan]),
        close=close,
        lag=0,
        init_cash=150.0,
        slippage=Slippage("book_walk", book=book),
        record_trades=True,
    )
    (tr,) = res.trades
    assert tr["fill_px"] == pytest.approx((101.0 + 0.5 * 102.0) / 1.5)
    assert tr["ref_px"] == pytest.approx(100.0)  # arrival mid
    assert tr["half_spread"] == pytest.approx(1.5 * 1.0)
    assert tr["impact"] == pytest.approx(tr["slippage"] - tr["half_spread"])
    assert tr["impact"] > 0


def test_book_walk_cancels_what_depth_cannot_fill() -> None:
    lv = 2
    bid = np.full((2, 1, lv), np.nan)
    ask = np.broadcast_to(np.array([101.0, 102.0]), (2, 1, lv)).copy()
    bid[:, :, 0] = 99.0
    qty = np.full((2, 1, lv), 1.0)
    res = run_backtest(
        np.array([1.0, np.nan]),
        close=np.full(2, 100.0),
        lag=0,
        init_cash=1000.0,
        record_trades=True,
        slippage=Slippage("book_walk", book=BookLevels(bid, qty, ask, qty)),
    )
    (tr,) = res.trades
    assert tr["qty"] == pytest.approx(2.0)
    assert tr["unfilled_qty"] == pytest.approx(1000.0 / 100.0 - 2.0)


# ---------------------------------------------------------------- properties
@given(price_paths(), st.sampled_from([0, 1, 2]))
def test_zero_weights_keep_equity_constant(path: tuple, lag: int) -> None:
    close, open_, _ = path
    res = run_backtest(np.zeros_like(close), close=close, open=open_, lag=lag, fee_bps=5.0)
    np.testing.assert_array_equal(res.equity, np.ones(close.shape[0]))
    assert res.fees == 0
    assert res.n_fills == 0


@given(price_paths())
def test_frictionless_lag0_returns_are_weighted_asset_returns(path: tuple) -> None:
    close, _, w = path
    w = np.nan_to_num(w)
    res = run_backtest(w, close=close, lag=0)
    asset_ret = close[1:] / close[:-1] - 1.0
    np.testing.assert_allclose(
        res.returns[1:], np.sum(w[:-1] * asset_ret, axis=1), rtol=1e-9, atol=1e-12
    )


@given(price_paths())
def test_frictionless_lag1_returns_follow_open_to_open_holding(path: tuple) -> None:
    close, open_, w = path
    w = np.nan_to_num(w)
    res = run_backtest(w, close=close, open=open_, lag=1)
    # independent reference: quantities set at open[s] from row s-1's targets, marked at close
    t, n = close.shape
    eq = np.ones(t)
    cash, qty = 1.0, np.zeros(n)
    for s in range(1, t):
        e_open = cash + qty @ open_[s]
        qty = w[s - 1] * e_open / open_[s]
        cash = e_open - qty @ open_[s]
        eq[s] = cash + qty @ close[s]
    np.testing.assert_allclose(res.equity, eq, rtol=1e-9)


@given(price_paths(), st.floats(0, 50), st.floats(0, 50))
def test_costs_nonnegative_and_monotone_in_fee_and_slippage(
    path: tuple, fee: float, slip: float
) -> None:
    close, open_, w = path
    base = run_backtest(w, close=close, open=open_, fee_bps=fee, slippage_bps=slip)
    more_fee = run_backtest(w, close=close, open=open_, fee_bps=fee + 5, slippage_bps=slip)
    more_slip = run_backtest(w, close=close, open=open_, fee_bps=fee, slippage_bps=slip + 5)
    assert base.fees >= 0
    assert base.slippage >= 0
    assert more_fee.fees >= base.fees - 1e-15
    assert more_slip.slippage >= base.slippage - 1e-15
    if base.n_fills:
        free = run_backtest(w, close=close, open=open_)
        assert base.equity[-1] <= free.equity[-1] + 1e-12


@given(price_paths(), st.floats(0.5, 1e6))
def test_doubling_capital_leaves_returns_unchanged(path: tuple, cash: float) -> None:
    close, open_, w = path
    a = run_backtest(w, close=close, open=open_, fee_bps=4, slippage_bps=2, init_cash=cash)
    b = run_backtest(w, close=close, open=open_, fee_bps=4, slippage_bps=2, init_cash=2 * cash)
    np.testing.assert_allclose(a.returns, b.returns, rtol=1e-9, atol=1e-13)


@given(price_paths(max_t=40, max_n=3), st.integers(1, 5))
def test_batch_equals_separate_runs(path: tuple, k: int) -> None:
    close, open_, w = path
    rng = np.random.default_rng(k)
    batch = np.stack([w * rng.uniform(0.2, 2.0) for _ in range(k)], axis=-1)
    fees = rng.uniform(0, 20, k)
    res = run_backtest(batch, close=close, open=open_, fee_bps=fees, slippage_bps=1.5)
    for j in range(k):
        one = run_backtest(
            batch[:, :, j], close=close, open=open_, fee_bps=fees[j], slippage_bps=1.5
        )
        np.testing.assert_allclose(res.equity[:, j], one.equity, rtol=1e-12)
        assert res.fees[j] == pytest.approx(one.fees, rel=1e-12, abs=1e-15)


@given(price_paths())
def test_recorded_trades_add_up_to_the_totals(path: tuple) -> None:
    close, open_, w = path
    res = run_backtest(w, close=close, open=open_, fee_bps=3, slippage_bps=2, record_trades=True)
    assert res.trades is not None
    assert res.trades["fee"].sum() == pytest.approx(res.fees, rel=1e-9, abs=1e-15)
    assert res.trades["slippage"].sum() == pytest.approx(res.slippage, rel=1e-9, abs=1e-15)
    assert np.all(res.trades["decision_row"] == res.trades["row"] - 1)


# ---------------------------------------------------------------- bad input
def test_mismatched_shapes_are_named() -> None:
    with pytest.raises(ShapeError, match=r"close has shape \(5, 2\).*\(T, N\) = \(5, 3\)"):
        run_backtest(np.zeros((5, 3)), close=np.ones((5, 2)))


def test_negative_price_is_named_with_row_and_column() -> None:
    close = np.ones((4, 2))
    close[2, 1] = -3.0
    with pytest.raises(InputError, match="row 2, column 1"):
        run_backtest(np.zeros((4, 2)), close=close)


def test_nan_price_while_holding_is_an_error_naming_the_symbol() -> None:
    close = np.array([[1.0, 1.0], [1.0, np.nan], [1.0, 1.0]])
    w = np.array([[0.5, 0.5], [np.nan, np.nan], [np.nan, np.nan]])
    with pytest.raises(InputError, match="NaN while a position is held: asset ETH, row 1"):
        run_backtest(w, close=close, lag=0, symbols=("BTC", "ETH"))


def test_nan_price_without_position_is_fine() -> None:
    close = np.array([[1.0, np.nan], [1.1, np.nan], [1.2, 2.0]])
    w = np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    res = run_backtest(w, close=close, lag=0)
    assert np.isfinite(res.equity).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lag": -1}, "lag must be an integer >= 0"),
        ({"fee_bps": -1.0}, "fee_bps must be >= 0"),
        ({"init_cash": 0.0}, "init_cash must be a positive number"),
        ({"slippage": Slippage("teleport")}, "unknown slippage model 'teleport'"),
        ({"slippage": Slippage("book_walk")}, "book_walk needs book levels"),
        ({"slippage": Slippage("half_spread")}, "half_spread needs spread_bps"),
        ({"max_gross": 0.0}, "max_gross must be > 0"),
    ],
)
def test_bad_options_raise_option_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        run_backtest(np.zeros(3), close=np.ones(3), **kwargs)


def test_weights_with_wrong_rank_or_inf() -> None:
    with pytest.raises(ShapeError, match="weights must be"):
        run_backtest(np.zeros((2, 2, 2, 2)), close=np.ones((2, 2)))
    with pytest.raises(InputError, match="inf"):
        run_backtest(np.array([math.inf, 0.0]), close=np.ones(2))
