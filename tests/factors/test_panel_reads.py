"""What a factor reads (``factors.panel_reads``) and the lookahead check that perturbs only that."""

from __future__ import annotations

import numpy as np

from alphaforge.engine.panel import Panel
from alphaforge.factors.lookahead import Perturber, check_lookahead
from alphaforge.factors.panel_reads import BOOK, record_reads
from tests.factors.panels import make_panel

PANEL = make_panel(n_bars=300, n_assets=5, seed=4, nan_frac=0.002, book_levels=3)


def _reads(fn) -> set[str]:
    rec = record_reads(PANEL)
    fn(rec)
    return set(rec.reads)


def test_every_way_of_reading_values_is_recorded() -> None:
    assert _reads(lambda p: p["close"]) == {"close"}
    assert _reads(lambda p: p.fields["volume"] + p.fields.get("open")) == {"volume", "open"}
    assert _reads(lambda p: p.fields.get("no such field")) == set()
    assert _reads(lambda p: (p.T, p.N, p.ts_us, p.symbols, "close" in p)) == set()
    every = set(PANEL.fields)
    assert _reads(lambda p: list(p.fields.values())) == every
    assert _reads(lambda p: dict(p.fields.items())) == every
    assert _reads(lambda p: {**p.fields}) == every
    assert _reads(lambda p: dict(p.fields)) == every
    assert _reads(lambda p: p.fields.copy()) == every
    assert _reads(lambda p: p.fields | {}) == every
    assert _reads(lambda p: p.book.bid_px) == {BOOK}
    # the Panel's own methods read what they copy
    assert _reads(lambda p: p.take_rows(slice(0, 10))) == every | {BOOK}
    assert _reads(lambda p: p.to_pandas("close")) == {"close"}


def test_the_recorder_is_the_same_panel() -> None:
    rec = record_reads(PANEL)
    assert isinstance(rec, Panel)
    assert rec["close"] is PANEL["close"]
    assert rec.book is PANEL.book
    np.testing.assert_array_equal(rec.ts_us, PANEL.ts_us)


def test_perturbing_some_arrays_gives_them_the_noise_of_perturbing_all() -> None:
    pert = Perturber(PANEL)
    everything = pert.after(120, seed=3)
    some = pert.after(120, seed=3, reads={"close", BOOK})
    np.testing.assert_array_equal(some["close"], everything["close"])
    assert not np.array_equal(some["close"][121:], PANEL["close"][121:], equal_nan=True)
    for name in set(PANEL.fields) - {"close"}:
        assert some[name] is PANEL[name], name  # unread: the panel's own array
    assert some.book is not None
    assert everything.book is not None
    np.testing.assert_array_equal(some.book.ask_qty, everything.book.ask_qty)
    assert pert.after(120, seed=3, reads={"close"}).book is PANEL.book


def _next_best_bid(p: Panel) -> np.ndarray:
    """A leak through the book only: the next row's best bid."""
    assert p.book is not None
    bid = p.book.bid_px[:, :, 0]
    return np.vstack([bid[1:], np.full((1, p.N), np.nan)])


def test_a_leak_through_the_book_alone_is_caught() -> None:
    report = check_lookahead(_next_best_bid, PANEL, cuts=[100, 200], probes=("perturb",))
    assert report.leaks


def test_reading_more_on_noise_than_on_the_data_perturbs_everything() -> None:
    """A factor that reads ``volume`` only once ``close`` looks perturbed: the check evaluates
    that cut again with every array perturbed (the volume it is given changes after the cut)."""
    seen: list[bool] = []
    close = PANEL["close"]

    def sneaky(p: Panel) -> np.ndarray:
        c = p["close"]
        if not np.array_equal(c, close, equal_nan=True):
            v = p["volume"]
            seen.append(not np.array_equal(v[151:], PANEL["volume"][151:], equal_nan=True))
        return c.copy()

    check_lookahead(sneaky, PANEL, cuts=[150], probes=("perturb",))
    assert seen == [False, True]  # on noisy close only, then on noise everywhere
