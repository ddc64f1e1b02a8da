"""Slippage models: book-walk properties (hypothesis), hand-computed VWAPs with both exhaustion
policies, every model through run_backtest, impact-k fitting and look-ahead-free inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.engine import slippage_nb
from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.errors import InputError, OptionError, ShapeError
from alphaforge.engine.panel import BookLevels
from alphaforge.engine.slippage import (
    fit_impact_k,
    to_execution_rows,
    trailing_adv,
    trailing_sigma,
    walk_books,
)
from alphaforge.engine.types import Exhaustion
from tests.strategies import book_sides

CANCEL, PENALTY = int(Exhaustion.CANCEL_REST), int(Exhaustion.PENALTY)


def walk(side: float, qty: float, px: list[float], q: list[float], levels: int = 0,
         exh: int = CANCEL, pen: float = 0.0) -> tuple[float, float]:  # fmt: skip
    return slippage_nb.walk_book(side, qty, np.array(px, float), np.array(q, float), levels,
                                 exh, pen)  # fmt: skip


# ---------------------------------------------------------------- hand-computed examples
ASKS = ([100.0, 101.0, 103.0], [1.0, 2.0, 3.0])
BIDS = ([99.0, 98.0, 95.0], [1.0, 2.0, 3.0])


def test_vwap_within_top_level() -> None:
    assert walk(1, 0.5, *ASKS) == (100.0, 0.5)


def test_vwap_two_levels() -> None:
    # 1 @ 100 + 1.5 @ 101 = 251.5 over 2.5
    px, filled = walk(1, 2.5, *ASKS)
    assert filled == 2.5
    assert px == pytest.approx(251.5 / 2.5, rel=1e-15)


def test_vwap_sell_side() -> None:
    # 1 @ 99 + 2 @ 98 + 1 @ 95 = 390 over 4
    px, filled = walk(-1, 4.0, *BIDS)
    assert (px, filled) == (pytest.approx(97.5, rel=1e-15), 4.0)


def test_exhaustion_cancel_rest() -> None:
    # book holds 6: 100 + 202 + 309 = 611 over 6; 4 cancelled
    px, filled = walk(1, 10.0, *ASKS, exh=CANCEL)
    assert filled == 6.0
    assert px == pytest.approx(611 / 6, rel=1e-15)


def test_exhaustion_penalty() -> None:
    # 6 as above, remaining 4 at 103 * (1 + 100 bps) = 104.03 -> (611 + 416.12) / 10
    px, filled = walk(1, 10.0, *ASKS, exh=PENALTY, pen=100.0)
    assert filled == 10.0
    assert px == pytest.approx((611 + 4 * 104.03) / 10, rel=1e-14)
    # sells are pushed down: rest at 95 * (1 - 1%) = 94.05
    px, filled = walk(-1, 8.0, *BIDS, exh=PENALTY, pen=100.0)
    assert px == pytest.approx((99 + 196 + 285 + 2 * 94.05) / 8, rel=1e-14)


def test_truncation_uses_first_levels_only() -> None:
    px, filled = walk(1, 10.0, *ASKS, levels=2, exh=CANCEL)
    assert (filled, px) == (3.0, pytest.approx(302 / 3, rel=1e-15))
    px, filled = walk(1, 10.0, *ASKS, levels=1, exh=PENALTY, pen=0.0)
    assert (filled, px) == (10.0, 100.0)


def test_empty_book_fills_nothing() -> None:
    px, filled = walk(1, 1.0, [math.nan, math.nan], [math.nan, math.nan], exh=PENALTY)
    assert math.isnan(px)
    assert filled == 0.0


# ---------------------------------------------------------------- properties
@given(book_sides(), st.floats(1e-6, 500.0), st.sampled_from([1.0, -1.0]))
def test_fill_between_best_and_worst_consumed(side_book, qty, side) -> None:
    px_levels, q_levels = side_book
    px_levels = px_levels if side > 0 else px_levels[::-1].copy()  # bids descend
    px, filled = slippage_nb.walk_book(side, qty, px_levels, q_levels, 0, CANCEL, 0.0)
    cum = np.cumsum(q_levels)
    used = int(np.searchsorted(cum, min(qty, cum[-1]) * (1 - 1e-12))) + 1
    lo, hi = sorted((px_levels[0], px_levels[min(used, px_levels.size) - 1]))
    assert lo * (1 - 1e-12) <= px <= hi * (1 + 1e-12)
    assert filled == pytest.approx(min(qty, cum[-1]), rel=1e-12)


@given(book_sides(), st.floats(1e-6, 200.0), st.floats(1e-6, 200.0),
       st.sampled_from([CANCEL, PENALTY]))  # fmt: skip
def test_cost_non_decreasing_in_size(side_book, q1, q2, exh) -> None:
    px_levels, q_levels = side_book
    small, large = sorted((q1, q2))
    p_small, _ = slippage_nb.walk_book(1.0, small, px_levels, q_levels, 0, exh, 25.0)
    p_large, _ = slippage_nb.walk_book(1.0, large, px_levels, q_levels, 0, exh, 25.0)
    assert p_large >= p_small * (1 - 1e-12)


@given(st.floats(1e-3, 1e6), st.floats(1e-6, 1e6), st.sampled_from([1.0, -1.0]))
def test_unlimited_depth_at_one_price(price, qty, side) -> None:
    px, filled = slippage_nb.walk_book(side, qty, np.array([price, price * 2]),
                                       np.array([math.inf, 1.0]), 0, CANCEL, 0.0)  # fmt: skip
    assert (px, filled) == (price, qty)


@given(book_sides(), st.floats(1e-6, 300.0), st.sampled_from([CANCEL, PENALTY]))
def test_buy_sell_symmetric_on_mirrored_book(side_book, qty, exh) -> None:
    asks, q_levels = side_book
    center = float(asks[-1])  # any center; this one keeps every mirrored price positive
    bids = 2 * center - asks  # mirror image around center, descending
    # (a multiplicative penalty is not mirror-symmetric, so PENALTY runs with 0 bps here)
    pb, fb = slippage_nb.walk_book(1.0, qty, asks, q_levels, 0, exh, 0.0)
    ps, fs = slippage_nb.walk_book(-1.0, qty, bids, q_levels, 0, exh, 0.0)
    assert fb == fs
    assert (pb - center) == pytest.approx(center - ps, rel=1e-9, abs=1e-9 * center)


def test_walk_books_matches_single_walks_and_validates() -> None:
    rng = np.random.default_rng(3)
    px = np.cumsum(rng.uniform(0.1, 1, (50, 8)), axis=1) + 100
    q = rng.uniform(0.1, 2, (50, 8))
    qty = rng.uniform(0.1, 20, 50)
    avg, filled = walk_books(np.ones(50), qty, px, q, 5, Exhaustion.PENALTY, 10.0)
    for m in range(50):
        assert (avg[m], filled[m]) == slippage_nb.walk_book(1.0, qty[m], px[m], q[m], 5,
                                                            PENALTY, 10.0)  # fmt: skip
    with pytest.raises(ShapeError):
        walk_books(np.ones(3), qty, px, q)
    with pytest.raises(InputError, match="qty"):
        walk_books(np.ones(50), -qty, px, q)


# ---------------------------------------------------------------- models through the engine
def _market(t_len: int = 6) -> dict:
    close = np.array([100.0, 101, 100, 102, 101, 103][:t_len])
    return {"close": close, "open": close.copy()}


def _book(t_len: int, ask0: float = 100.2, bid0: float = 99.8) -> BookLevels:
    ap = np.array([ask0, ask0 + 0.5, ask0 + 1.5])
    bp = np.array([bid0, bid0 - 0.5, bid0 - 1.5])
    qty = np.array([1.0, 2.0, 100.0])
    rep = lambda a: np.broadcast_to(a, (t_len, 1, 3)).copy()  # noqa: E731
    return BookLevels(rep(bp), rep(qty), rep(ap), rep(qty))


def test_book_walk_fill_records_split_cost() -> None:
    w = np.array([np.nan, 2.5, np.nan, np.nan, np.nan, np.nan])  # buy at row 2 open
    m = _market()
    res = run_backtest(w, **m, init_cash=100.0, record_trades=True,
                       slippage=Slippage("book_walk", book=_book(6)))  # fmt: skip
    tr = res.trades[0]
    # target 2.5 * 100 / open 100 = 2.5 units: 1 @ 100.2 + 1.5 @ 100.7
    assert tr["fill_px"] == pytest.approx((100.2 + 1.5 * 100.7) / 2.5, rel=1e-12)
    assert tr["ref_px"] == pytest.approx(100.0)  # book mid
    assert tr["half_spread"] == pytest.approx(2.5 * 0.2, rel=1e-12)
    assert tr["slippage"] == pytest.approx(tr["half_spread"] + tr["impact"], rel=1e-12)
    assert tr["impact"] == pytest.approx(2.5 * (tr["fill_px"] - 100.2), rel=1e-9)


def test_book_walk_per_parameter_depth_sweep() -> None:
    w = np.array([np.nan, 2.5, np.nan, np.nan, np.nan, np.nan])
    res = run_backtest(np.repeat(w[:, None, None], 2, axis=2), **_market(), init_cash=100.0,
                       record_trades=True,
                       slippage=Slippage("book_walk", book=_book(6), book_levels=np.array([1, 0]),
                                         exhaustion=Exhaustion.CANCEL_REST))  # fmt: skip
    t1 = res.trades[res.trades["param"] == 0][0]
    t0 = res.trades[res.trades["param"] == 1][0]
    assert (t1["qty"], t1["unfilled_qty"]) == (1.0, 1.5)
    assert t0["qty"] == 2.5


def test_half_spread_and_sqrt_impact_models() -> None:
    w = np.array([np.nan, 1.0, np.nan, np.nan, np.nan, np.nan])
    m = _market()
    spread = np.full((6, 1), 10.0)  # 10 bps -> half 5 bps
    r = run_backtest(w, **m, init_cash=100.0, record_trades=True,
                     slippage=Slippage("half_spread", spread_bps=spread))  # fmt: skip
    assert r.trades[0]["fill_px"] == pytest.approx(100.0 * (1 + 5e-4), rel=1e-12)
    sigma, adv = np.full((6, 1), 0.01), np.full((6, 1), 4.0)
    r = run_backtest(w, **m, init_cash=100.0, record_trades=True,
                     slippage=Slippage("sqrt_impact", spread_bps=spread, sigma=sigma, adv=adv,
                                       impact_k=2.0))  # fmt: skip
    # q = 1 unit: 5 bps + 2 * 0.01 * sqrt(1 / 4) = 5 bps + 1 %
    assert r.trades[0]["fill_px"] == pytest.approx(100.0 * (1 + 5e-4 + 0.01), rel=1e-12)
    with pytest.raises(OptionError, match="sigma and adv"):
        run_backtest(w, **m, slippage=Slippage("sqrt_impact", spread_bps=spread))


# ---------------------------------------------------------------- fitting and inputs
def test_fit_impact_k_recovers_k() -> None:
    rng = np.random.default_rng(11)
    q, adv, sig = (
        rng.uniform(1, 100, 400),
        rng.uniform(100, 1000, 400),
        rng.uniform(0.001, 0.01, 400),
    )
    x = sig * np.sqrt(q / adv)
    cost = 0.7 * x + rng.normal(0, 1e-5, 400)
    k = fit_impact_k(q, adv, sig, cost)
    ref = np.linalg.lstsq(x[:, None], cost, rcond=None)[0][0]
    assert k == pytest.approx(ref, rel=1e-10)
    assert k == pytest.approx(0.7, rel=0.02)
    with pytest.raises(InputError, match="no usable rows"):
        fit_impact_k(q, adv * 0, sig, cost)


def test_fit_impact_k_from_book_walk_records() -> None:
    w = np.array([np.nan, 2.5, -2.5, 2.5, -2.5, np.nan])
    res = run_backtest(w, **_market(), init_cash=100.0, record_trades=True,
                       slippage=Slippage("book_walk", book=_book(6)))  # fmt: skip
    sigma, adv = np.full((6, 1), 0.02), np.full((6, 1), 10.0)
    k = fit_impact_k(res.trades, adv, sigma)
    tr = res.trades
    x = 0.02 * np.sqrt(np.abs(tr["qty"]) / 10.0)
    y = tr["impact"] / (np.abs(tr["qty"]) * tr["ref_px"])
    assert k == pytest.approx(float(x @ y / (x @ x)), rel=1e-12)
    assert k > 0


def test_trailing_inputs_match_pandas_and_have_no_lookahead() -> None:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (80, 3)), axis=0))
    vol = rng.uniform(1, 5, (80, 3))
    sig = trailing_sigma(close, 10)
    ref = pd.DataFrame(close).pct_change(fill_method=None).rolling(10).std().to_numpy()
    np.testing.assert_allclose(sig, ref, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(trailing_adv(vol, 7), pd.DataFrame(vol).rolling(7).mean(),
                               rtol=1e-12, equal_nan=True)  # fmt: skip
    bumped = close.copy()
    bumped[50:] *= 3.0  # perturb data after row 49
    ex0 = to_execution_rows(trailing_sigma(close, 10), 1)
    ex1 = to_execution_rows(trailing_sigma(bumped, 10), 1)
    np.testing.assert_array_equal(ex0[:51], ex1[:51])  # row s uses data up to s - 1
    assert np.all(np.isnan(ex0[:11]))


def test_book_walk_multi_asset_uses_each_assets_book() -> None:
    t_len = 4
    close = np.column_stack([np.full(t_len, 100.0), np.full(t_len, 50.0)])
    b1 = _book(t_len)  # asset 0: asks 100.2 (1), 100.7 (2), 101.7 (100)
    b2 = _book(t_len, ask0=50.1, bid0=49.9)  # asset 1: asks 50.1 (1), 50.6 (2), 51.6 (100)
    book = BookLevels(*(np.concatenate([a, b], axis=1) for a, b in zip(b1._arrays(), b2._arrays(),
                                                                        strict=True)))  # fmt: skip
    w = np.full((t_len, 2), np.nan)
    w[1] = [0.5, 0.5]  # 100 quote each at row 2: 1 unit of asset 0, 2 units of asset 1
    weights = np.repeat(w[:, :, None], 2, axis=2)
    slip = Slippage("book_walk", book=book, book_levels=np.array([0, 1]),
                    exhaustion=Exhaustion.PENALTY, penalty_bps=100.0)  # fmt: skip
    res = run_backtest(weights, close=close, open=close, init_cash=200.0,
                       record_trades=True, slippage=slip)  # fmt: skip
    tr = res.trades
    a0 = tr[(tr["col"] == 0) & (tr["param"] == 0)][0]
    a1 = tr[(tr["col"] == 1) & (tr["param"] == 0)][0]
    assert a0["fill_px"] == 100.2
    assert a1["fill_px"] == pytest.approx((50.1 + 50.6) / 2, rel=1e-12)
    # one level with a 100 bps penalty: 1 @ 50.1, 1 @ 50.1 * 1.01
    b1_ = tr[(tr["col"] == 1) & (tr["param"] == 1)][0]
    assert b1_["fill_px"] == pytest.approx((50.1 + 50.1 * 1.01) / 2, rel=1e-12)
    assert b1_["unfilled_qty"] == 0.0
