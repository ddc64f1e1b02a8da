"""Gap analysis: planted components are recovered; calibration picks the generating model;
bad inputs are named."""

from __future__ import annotations

import re

import numpy as np
import pytest

from alphaforge.engine.errors import InputError
from alphaforge.engine.gap import Quotes, analyze_gap, calibrate_models
from alphaforge.engine.panel import BookLevels
from alphaforge.engine.paper_live import LatencyModel, simulate_fills

MID0 = 100.0


def _case(seed: int = 0, m: int = 200, delay_bps: float = 3.0, half_bps: float = 2.0,
          impact_bps: float = 4.0, fee_bps: float = 5.0, fill_frac: float = 1.0,
          drift_bps: float = 10.0) -> tuple[dict, dict, Quotes]:  # fmt: skip
    rng = np.random.default_rng(seed)
    side = rng.choice([-1.0, 1.0], m)
    ts = np.arange(m, dtype=np.int64) * 60_000_000
    t_fill = ts + 5_000_000
    arrival = MID0 * (1 + side * delay_bps * 1e-4)
    half = MID0 * half_bps * 1e-4
    price = arrival + side * (half + MID0 * impact_bps * 1e-4)
    qty = rng.uniform(1, 10, m)
    filled = qty * fill_frac
    orders = {"order_id": np.arange(m), "ts_us": ts, "symbol": np.full(m, "BTCUSDT"),
              "side": side, "qty": qty, "decision_mid": np.full(m, MID0),
              "bt_fill_px": np.full(m, MID0), "bt_fee": np.zeros(m)}  # fmt: skip
    fills = {"order_id": np.arange(m), "ts_us": t_fill, "symbol": np.full(m, "BTCUSDT"),
             "side": np.where(side > 0, "buy", "sell"), "qty": filled, "price": price,
             "fee": filled * price * fee_bps * 1e-4, "fee_asset": np.full(m, "USDT")}  # fmt: skip
    end_mid = MID0 * (1 + side * drift_bps * 1e-4)
    q_ts = np.concatenate([ts, t_fill, ts + 60_000_000 - 1])
    q_mid = np.concatenate([np.full(m, MID0), arrival, end_mid])
    order = np.argsort(q_ts, kind="stable")
    quotes = Quotes(q_ts[order], np.full(3 * m, "BTCUSDT"), (q_mid - half)[order],
                    (q_mid + half)[order])  # fmt: skip
    return orders, fills, quotes


def test_planted_components_are_recovered() -> None:
    orders, fills, quotes = _case()
    g = analyze_gap(orders, fills, quotes=quotes, horizon_us=60_000_000 - 1)
    assert g.live_bps["delay"] == pytest.approx(3.0, abs=1e-6)
    assert g.live_bps["half_spread"] == pytest.approx(2.0, abs=1e-6)
    assert g.live_bps["impact"] == pytest.approx(4.0, abs=1e-6)
    fee_expected = np.sum(fills["fee"]) / np.sum(orders["qty"] * MID0) * 1e4
    assert g.live_bps["fees"] == pytest.approx(fee_expected, rel=1e-9)
    assert g.live_bps["opportunity"] == pytest.approx(0.0, abs=1e-9)
    assert g.backtest_bps["total"] == pytest.approx(0.0, abs=1e-9)
    assert g.driver == "fees"


def test_partial_fills_cost_opportunity() -> None:
    orders, fills, quotes = _case(fill_frac=0.25, drift_bps=20.0, delay_bps=0.0, impact_bps=0.0)
    g = analyze_gap(orders, fills, quotes=quotes, horizon_us=60_000_000 - 1)
    assert g.live_bps["opportunity"] == pytest.approx(0.75 * 20.0, rel=1e-6)
    assert g.live_bps["half_spread"] == pytest.approx(0.25 * 2.0, rel=1e-6)
    assert g.driver == "opportunity"


def test_matching_without_ids_uses_symbol_side_and_window() -> None:
    orders, fills, quotes = _case(m=20)
    del orders["order_id"], fills["order_id"]
    g = analyze_gap(orders, fills, quotes=quotes, window_us=10_000_000)
    assert g.unmatched_fills == 0
    np.testing.assert_allclose(g.per_order["filled"], orders["qty"])
    with pytest.raises(InputError, match="match no order"):
        analyze_gap(orders, fills, window_us=1_000_000)


def test_calibration_picks_the_generating_model() -> None:
    rng = np.random.default_rng(3)
    m = 400
    qty = rng.uniform(1, 100, m)
    sigma = rng.uniform(0.001, 0.01, m)
    adv = rng.uniform(1_000, 10_000, m)
    sqrt_cost = 1.0 + 0.7 * sigma * np.sqrt(qty / adv) * 1e4 + rng.normal(0, 0.05, m)
    res = calibrate_models(sqrt_cost, qty, np.full(m, 100.0), {"sigma": sigma, "adv": adv})
    assert res["best"] == "sqrt_impact"
    assert res["sqrt_impact"]["k"] == pytest.approx(0.7, rel=0.05)
    flat_cost = 2.0 + rng.normal(0, 0.5, m)
    res = calibrate_models(flat_cost, qty, np.full(m, 100.0), {"sigma": sigma, "adv": adv})
    assert res["best"] == "fixed_bps"
    walk = flat_cost + rng.normal(0, 0.01, m)
    res = calibrate_models(flat_cost, qty, np.full(m, 100.0), {"book_walk_bps@L5": walk})
    assert res["best"] == "book_walk@L5"


def test_bad_inputs_are_named() -> None:
    orders, fills, _ = _case(m=5)
    with pytest.raises(InputError, match=r"fills: missing column\(s\) \['price'\]"):
        analyze_gap(orders, {k: v for k, v in fills.items() if k != "price"})
    bad = dict(fills, symbol=np.full(5, "ETHUSDT"))
    with pytest.raises(InputError, match=r"unknown symbol\(s\) \['ETHUSDT'\]"):
        analyze_gap(orders, bad)
    with pytest.raises(InputError, match="side"):
        analyze_gap(dict(orders, side=np.full(5, "hold")), fills)
    with pytest.raises(InputError, match=r"5 fee\(s\) paid in BNB need its price in USDT: "
                       r"pass --fee-price BNB=<price>"):  # fmt: skip
        analyze_gap(orders, dict(fills, fee_asset=np.full(5, "BNB")))


def test_bnb_fees_are_priced_from_given_prices_or_from_quotes() -> None:
    orders, fills, quotes = _case(m=20)
    usdt = analyze_gap(orders, fills, quotes=quotes)
    bnb = dict(fills, fee=fills["fee"] / 600.0, fee_asset=np.full(20, "BNB"))
    given = analyze_gap(orders, bnb, quotes=quotes, fee_rates={"BNB": 600.0})
    assert given.live_bps["fees"] == pytest.approx(usdt.live_bps["fees"], rel=1e-12)
    # BNBUSDT quotes at 600 (spread 0.2) price the fee at the mid in force at each fill
    t = np.array([0], dtype=np.int64)
    q = Quotes(
        np.concatenate([quotes.ts_us, t]),
        np.concatenate([quotes.symbol, ["BNBUSDT"]]),
        np.concatenate([quotes.bid, [599.9]]),
        np.concatenate([quotes.ask, [600.1]]),
    )
    quoted = analyze_gap(orders, bnb, quotes=q)
    assert quoted.live_bps["fees"] == pytest.approx(usdt.live_bps["fees"], rel=1e-12)


def test_fill_counts_and_an_overfilled_order() -> None:
    orders, fills, _ = _case(m=10, fill_frac=0.5)
    rep = analyze_gap(orders, fills)
    assert rep.fills == {"orders": 10, "filled": 0, "partial": 10, "unfilled": 0, "fills": 10,
                         "fill_rate": pytest.approx(0.5)}  # fmt: skip
    three = {k: np.concatenate([v, v[:1], v[:1]]) for k, v in fills.items()}
    three["qty"][[0, 10, 11]] = orders["qty"][0] / 3  # one order, filled in three parts
    rep = analyze_gap(orders, three)
    assert rep.per_order["filled"][0] == pytest.approx(orders["qty"][0])
    assert rep.fills["filled"] == 1
    over = {k: np.concatenate([v, v[:1]]) for k, v in fills.items()}
    over["qty"][0] = over["qty"][10] = orders["qty"][0]
    rep = analyze_gap(orders, over)
    (warning,) = rep.warnings
    assert re.search(r"row 0 \(order_id 0\), BTCUSDT .* matched 2 fill", warning)
    assert rep.per_order["filled"][0] == pytest.approx(2 * orders["qty"][0])
    assert rep.fills["filled"] == 1  # counted as filled; the excess is not a negative cost


def test_paper_live_fills_walk_the_book_after_latency() -> None:
    t = np.array([0, 1_000_000, 2_000_000], dtype=np.int64)
    lv = 2
    bid = np.array([[[99.0, 98.0]], [[89.0, 88.0]], [[79.0, 78.0]]])
    ask = np.array([[[101.0, 102.0]], [[91.0, 92.0]], [[81.0, 82.0]]])
    qty = np.ones((3, 1, lv))
    book = BookLevels(bid, qty, ask, qty)
    orders = {"ts_us": np.array([0, 0]), "symbol": np.array(["X", "X"]),
              "side": np.array([1.0, -1.0]), "qty": np.array([1.5, 1.0])}  # fmt: skip
    fills = simulate_fills(orders, t, ("X",), book, latency=LatencyModel(1_500_000, 0),
                           fee_bps=10.0)  # fmt: skip
    # arrival at 1.5 s -> the snapshot of t = 1 s: buy 1 @ 91 + 0.5 @ 92; sell 1 @ 89
    np.testing.assert_allclose(fills["price"], [(91.0 + 0.5 * 92.0) / 1.5, 89.0])
    np.testing.assert_allclose(fills["fee"], fills["qty"] * fills["price"] * 1e-3)
    assert list(fills["ts_us"]) == [1_500_000, 1_500_000]


def test_funding_difference_is_its_own_component() -> None:
    orders, fills, quotes = _case(delay_bps=0.0, half_bps=0.0, impact_bps=0.0, fee_bps=0.0)
    notional = float(np.sum(orders["qty"] * MID0))
    g = analyze_gap(orders, fills, quotes=quotes, funding_live=0.002 * notional,
                    funding_backtest=0.0005 * notional, equity=notional)  # fmt: skip
    assert g.gap_bps["funding"] == pytest.approx(15.0, rel=1e-9)
    assert g.driver == "funding"
    assert g.gap_bps["total"] == pytest.approx(15.0, rel=1e-6)
    assert g.gap_return == pytest.approx(0.0015, rel=1e-6)


def test_quotes_of_an_unknown_symbol_are_nan() -> None:
    q = Quotes(np.array([0, 10], dtype=np.int64), np.array(["A", "A"]), np.array([1.0, 2.0]),
               np.array([1.5, 2.5]))  # fmt: skip
    bid, ask = q.at("B", np.array([5, 20], dtype=np.int64))
    assert np.isnan(bid).all()
    assert np.isnan(ask).all()
    bid, _ = q.at("A", np.array([-1, 5, 20], dtype=np.int64))
    np.testing.assert_array_equal(bid, [np.nan, 1.0, 2.0])
