"""The demo market holds what it says it planted: the planted values are the library factor's
own values, every close printed at the book's best bid or ask, valid klines, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from alphaforge.data.synthetic import SYNTHETIC_META
from alphaforge.data.synthetic_demo import PLANTED_FACTOR, generate_demo_market
from alphaforge.data.validate import validate_table
from alphaforge.factors.expr import evaluate
from alphaforge.factors.library import LIBRARY
from alphaforge.panels import demo_panel


@pytest.fixture(scope="module")
def small():
    return demo_panel(n_symbols=5, weeks=1, seed=3)


def test_planted_values_are_the_library_factor(small) -> None:
    got = evaluate(LIBRARY[PLANTED_FACTOR].expr, small.panel)
    ok = np.isfinite(small.planted)
    assert ok.mean() > 0.99
    np.testing.assert_allclose(got[ok], small.planted[ok], rtol=1e-9, atol=1e-12)  # sums' order


def test_every_close_printed_at_the_best_bid_or_ask(small) -> None:
    p = small.panel
    bid, ask, close = p.book.bid_px[:, :, 0], p.book.ask_px[:, :, 0], p["close"]
    at_bid, at_ask = np.isclose(close, bid, rtol=1e-12), np.isclose(close, ask, rtol=1e-12)
    assert (at_bid | at_ask).all()
    assert 0.4 < at_ask.mean() < 0.6
    assert (bid < ask).all()
    np.testing.assert_array_equal(p["open"][1:], close[:-1])  # a bar opens at the last print


def test_klines_are_valid_labelled_and_seeded() -> None:
    a = generate_demo_market(n_symbols=4, weeks=1, seed=5)
    b = generate_demo_market(n_symbols=4, weeks=1, seed=5)
    assert a.klines.equals(b.klines)
    assert a.books.equals(b.books)
    assert (
        a.klines.schema.metadata[b"alphaforge.synthetic"] == SYNTHETIC_META[b"alphaforge.synthetic"]
    )
    rep = validate_table(a.klines, "klines_5m", source="demo")
    assert rep.worst_severity in ("ok", "info"), [c.name for c in rep.checks if c.count]
    assert a.meta["demo"]["planted_factor"] == PLANTED_FACTOR
