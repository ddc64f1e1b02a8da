"""Lookahead detection: planted leaks are caught, causal factors (and the whole library) pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from alphaforge.engine.panel import Panel
from alphaforge.factors.errors import LookaheadError
from alphaforge.factors.expr import evaluate, parse
from alphaforge.factors.library import LIBRARY
from alphaforge.factors.lookahead import check_lookahead, perturb_after
from tests.factors.panels import make_panel
from tests.strategies import expr_asts

PANEL = make_panel(n_bars=400, n_assets=6, seed=3, nan_frac=0.002)
CUTS = [150, 260, 398]


def _next_bar_peek(p: Panel) -> np.ndarray:
    close = p["close"]
    return np.vstack([close[1:], np.full((1, p.N), np.nan)]) / close - 1.0


def _centred_window(p: Panel) -> np.ndarray:
    return p.to_pandas("close").rolling(5, center=True).mean().to_numpy()


def _full_sample_zscore(p: Panel) -> np.ndarray:
    c = p["close"]
    return (c - np.nanmean(c, axis=0)) / np.nanstd(c, axis=0)


def _trailing_mean(p: Panel) -> np.ndarray:
    return p.to_pandas("close").rolling(5).mean().to_numpy()


def test_next_bar_peek_is_caught_at_the_cut() -> None:
    report = check_lookahead(_next_bar_peek, PANEL, cuts=CUTS)
    assert report.leaks
    assert report.first_leak_cut == CUTS[0]
    assert report.first_leak_ts_us == int(PANEL.ts_us[CUTS[0]])
    assert [d.first_row for d in report.details] == [c for c in CUTS for _ in range(2)]
    assert [d.probe for d in report.details] == ["truncate", "perturb"] * len(CUTS)
    with pytest.raises(LookaheadError, match=str(report.first_leak_ts_us)):
        report.raise_if_leaks("peek")


def test_centred_rolling_window_is_caught_one_bar_early() -> None:
    # a centred 5-bar window at row t reads rows t+1 and t+2: rows cut-1 and cut change
    report = check_lookahead(_centred_window, PANEL, cuts=CUTS)
    assert report.leaks
    assert report.first_leak_ts_us == int(PANEL.ts_us[CUTS[0] - 1])
    assert all(d.first_row == d.cut - 1 for d in report.details)


def test_full_sample_normalisation_is_caught_from_the_first_row() -> None:
    report = check_lookahead(_full_sample_zscore, PANEL, seed=5)
    assert report.leaks
    assert report.first_leak_ts_us == int(PANEL.ts_us[0])
    assert all(d.n_changed > 0 for d in report.details)


def test_expression_reading_the_future_through_a_callable_wrapper() -> None:
    # a leak hidden behind a legitimate expression: shift its output back by one bar
    def shifted(p: Panel) -> np.ndarray:
        v = evaluate("ts_mean(returns, 3)", p)
        return np.vstack([v[1:], v[-1:]])

    assert check_lookahead(shifted, PANEL).leaks


def test_causal_callable_passes() -> None:
    report = check_lookahead(_trailing_mean, PANEL, cuts=CUTS)
    assert not report.leaks
    assert report.first_leak_ts_us is None
    assert report.first_leak_cut is None
    assert sorted({d.cut for d in report.details}) == CUTS
    report.raise_if_leaks()


@pytest.mark.parametrize(
    "factor", ["cs_rank(ts_mean(returns, 20))", parse("ts_corr(close, volume, 9)")]
)
def test_expression_text_and_nodes_pass(factor) -> None:
    report = check_lookahead(factor, PANEL)
    assert not report.leaks
    # every row of the 400-row panel is a truncation cut; 16 of them (spread over the
    # panel, the last included) are perturbed too
    assert report.n_cuts == PANEL.T - 1
    assert sum(d.probe == "perturb" for d in report.details) == 16


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_every_library_factor_passes(name: str) -> None:
    report = check_lookahead(LIBRARY[name], PANEL, CUTS, seed=1)
    assert not report.leaks, report.describe(name)


def test_perturbation_changes_only_rows_after_the_cut() -> None:
    noisy = perturb_after(PANEL, 200, seed=2)
    for name, arr in PANEL.fields.items():
        np.testing.assert_array_equal(noisy[name][:201], arr[:201], err_msg=name)
        changed = ~np.isclose(noisy[name][201:], arr[201:], equal_nan=True)
        assert changed[np.isfinite(arr[201:])].mean() > 0.9, name
    assert PANEL.book is not None
    assert noisy.book is not None
    np.testing.assert_array_equal(noisy.book.ask_qty[:201], PANEL.book.ask_qty[:201])
    assert not np.allclose(noisy.book.ask_qty[201:], PANEL.book.ask_qty[201:])


SMALL = make_panel(n_bars=80, n_assets=4, seed=9, book_levels=3)


@settings(max_examples=40)
@given(expr_asts(max_leaves=8))
def test_every_expression_of_the_language_is_causal(node) -> None:
    assert not check_lookahead(node, SMALL, cuts=[20, 50, 78]).leaks


def test_bad_inputs() -> None:
    with pytest.raises(LookaheadError, match="shape"):
        check_lookahead(lambda p: np.zeros(3), PANEL)
    # a callable that ignores its panel and returns stored values cannot be checked
    stored = np.ones((PANEL.T, PANEL.N))
    with pytest.raises(LookaheadError, match="computed from the panel it is given"):
        check_lookahead(lambda p: stored, PANEL)
    with pytest.raises(LookaheadError, match="out of range"):
        check_lookahead("close", PANEL, cuts=[PANEL.T - 1])
    with pytest.raises(LookaheadError, match="got <class 'int'>"):
        check_lookahead(3, PANEL)  # type: ignore[arg-type]
    tiny = Panel(np.zeros(1, dtype=np.int64), ("a",), {"close": np.ones((1, 1))})
    with pytest.raises(LookaheadError, match="at least 2 rows"):
        check_lookahead("close", tiny)


def test_tolerance_accepts_tiny_numerical_differences() -> None:
    rng = np.random.default_rng(0)

    def jittery(p: Panel) -> np.ndarray:
        return pd.DataFrame(p["close"]).rolling(3).mean().to_numpy() + rng.normal(0, 1e-12)

    assert check_lookahead(jittery, PANEL, CUTS, rtol=0.0).leaks
    assert not check_lookahead(jittery, PANEL, CUTS, atol=1e-9).leaks
    # the default tolerance is relative to the factor's scale (max |value| x 1e-9)
    report = check_lookahead(jittery, PANEL, CUTS)
    assert not report.leaks
    assert report.tolerance == pytest.approx(1e-9 * np.nanmax(np.abs(jittery(PANEL))), rel=1e-3)


def test_peeking_at_the_sign_of_a_stored_signed_field_is_caught() -> None:
    # multiplicative noise would keep signs; signed fields get independent draws instead
    with_returns = PANEL.with_fields(returns=evaluate("returns", PANEL))

    def next_sign(p: Panel) -> np.ndarray:
        r = p["returns"]
        return np.vstack([np.sign(r[1:]), np.full((1, p.N), np.nan)])

    report = check_lookahead(next_sign, with_returns, cuts=CUTS)
    assert report.leaks
    assert report.first_leak_cut == CUTS[0]


def test_all_nan_columns_do_not_warn() -> None:
    close = PANEL["close"].copy()
    close[:, 1] = np.nan
    p = PANEL.with_fields(close=close)
    assert not check_lookahead("ts_mean(close, 3)", p).leaks


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=7),
        elements=st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.just(np.nan),
            st.just(np.inf),
            st.just(-np.inf),
            st.just(0.0),
            st.just(-0.0),
        ),
    )
)
def test_nanmedian_rows_equals_numpy(x: np.ndarray) -> None:
    import warnings

    from alphaforge.factors.lookahead import nanmedian_rows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmedian(x, axis=0)
    assert np.array_equal(nanmedian_rows(x), want, equal_nan=True)
