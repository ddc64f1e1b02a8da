"""The backtest's specialised kernels agree with its general one, bit for bit, and the
curve-free summaries agree with the curves.

``run_backtest`` takes the fast kernels (backtest_fast_nb) for slippage NONE / FIXED_BPS without
funding or records, and the general one (backtest_path_nb.simulate_path) otherwise; asking for
records or passing an all-zero funding array forces the general kernel on the same problem.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.engine import backtest_nb
from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.backtest_stats import run_backtest_stats
from alphaforge.engine.errors import InputError
from tests.strategies import price_paths

OPTIONS = st.fixed_dictionaries(
    {
        "lag": st.integers(0, 2),
        "fee_bps": st.sampled_from([0.0, 4.0, 25.0]),
        "slippage_bps": st.sampled_from([0.0, 3.0]),
        "max_gross": st.sampled_from([math.inf, 0.5]),
        "min_trade_frac": st.sampled_from([0.0, 0.01]),
        "lot": st.sampled_from([None, 0.01]),
        "use_open": st.booleans(),
        "k": st.integers(1, 3),
    }
)


def _run(path: tuple, o: dict, **extra: object) -> tuple:
    close, open_, w = path
    wk = np.repeat(w[:, :, None], o["k"], axis=2)
    if o["k"] > 1:  # different parameter sets: scale the targets per k
        wk = wk * np.linspace(1.0, 0.5, o["k"])
    kw = {
        "close": close,
        "open": open_ if o["use_open"] else None,
        "lag": o["lag"],
        "fee_bps": o["fee_bps"],
        "slippage_bps": o["slippage_bps"],
        "max_gross": o["max_gross"],
        "min_trade_frac": o["min_trade_frac"],
        "lot_size": o["lot"],
    }
    return wk, kw, run_backtest(wk, **kw, **extra)  # type: ignore[arg-type]


@given(price_paths(max_t=40, max_n=3), OPTIONS, st.sampled_from(["record", "funding", "none"]))
def test_fast_kernels_equal_the_general_kernel_bit_for_bit(path: tuple, o: dict, how: str) -> None:
    wk, kw, fast = _run(path, o)
    t, n = path[0].shape
    if how == "record":
        general = run_backtest(wk, record_trades=True, **kw)
    elif how == "funding":
        general = run_backtest(wk, funding=np.zeros((t, n)), **kw)
    else:  # model NONE through the general kernel (records) vs the fast one
        kw["slippage_bps"] = 0.0
        fast = run_backtest(wk, slippage=Slippage("none"), **kw)
        general = run_backtest(wk, slippage=Slippage("none"), record_trades=True, **kw)
    for name in ("equity", "returns", "fees", "slippage", "turnover", "n_fills", "exposure"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(general, name), err_msg=name)


@given(price_paths(max_t=40, max_n=3), OPTIONS)
def test_stats_without_curves_match_the_curves(path: tuple, o: dict) -> None:
    wk, kw, res = _run(path, o)
    s = run_backtest_stats(wk, **kw)  # type: ignore[arg-type]
    eq, r = res.equity, res.returns
    np.testing.assert_array_equal(s.final_equity, eq[-1])
    np.testing.assert_array_equal(s.fees, res.fees)
    np.testing.assert_array_equal(s.n_fills, res.n_fills)
    np.testing.assert_allclose(s.total_return, eq[-1] / res.init_cash - 1.0, rtol=1e-15)
    np.testing.assert_allclose(s.mean_return, r.mean(axis=0), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(s.std_return, r.std(axis=0, ddof=1), rtol=1e-7, atol=1e-12)
    peak = np.maximum.accumulate(np.vstack([np.full((1, eq.shape[1]), res.init_cash), eq]))
    mdd = (1.0 - np.vstack([np.full((1, eq.shape[1]), res.init_cash), eq]) / peak).max(axis=0)
    np.testing.assert_allclose(s.max_drawdown, mdd, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_previous_close_execution_without_open_equals_an_explicit_shifted_open(lag: int) -> None:
    rng = np.random.default_rng(lag)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (50, 2)), axis=0))
    w = rng.uniform(-0.5, 0.5, (50, 2))
    shifted = np.vstack([close[:1], close[:-1]])  # row 0 is never an execution row
    a = run_backtest(w, close=close, lag=lag, fee_bps=3)
    b = run_backtest(w, close=close, open=shifted, lag=lag, fee_bps=3)
    np.testing.assert_array_equal(a.equity, b.equity)


def test_inf_weight_in_rows_never_executed_is_still_an_error() -> None:
    w = np.array([0.5, 0.5, 0.5, math.inf])  # row 3 would execute at row 4, past the end
    with pytest.raises(InputError, match="weights contain inf: asset column 0, row 3"):
        run_backtest(w, close=np.ones(4))


def test_inf_weight_after_a_bankruptcy_is_still_an_error() -> None:
    close = np.array([100.0, 100.0, 1.0, 1.0, 1.0, 1.0])
    w = np.array([2.0, np.nan, np.nan, np.nan, math.inf, np.nan])  # 2x long into a 100x fall
    with pytest.raises(InputError, match="weights contain inf: asset column 0, row 4"):
        run_backtest(w, close=close, lag=0)
    res = run_backtest(np.where(np.isinf(w), np.nan, w), close=close, lag=0)
    assert res.equity[-1] <= 0.0  # the same run without the inf is a plain bankruptcy


@given(
    st.integers(1, 300),
    st.integers(1, 4),
    st.lists(st.sampled_from([0.0, -1.0, math.inf, -math.inf, math.nan]), max_size=3),
    st.randoms(use_true_random=False),
)
def test_find_invalid_price_equals_numpy(t: int, n: int, bad: list, rnd: object) -> None:
    px = np.full((t, n), 100.0)
    for value in bad:
        px.flat[rnd.randrange(t * n)] = value  # type: ignore[attr-defined]
    hits = np.flatnonzero((px <= 0) | np.isinf(px))
    assert backtest_nb.find_invalid_price(px) == (hits[0] if hits.size else -1)


@given(price_paths(max_t=40, max_n=3), OPTIONS, st.sampled_from(["fast", "record", "funding"]))
def test_one_path_dispatched_in_python_equals_the_parallel_kernels_choice(
    path: tuple, o: dict, how: str
) -> None:
    """K = 1 picks its per-path kernel in Python (``engine.backtest._run_one_path``), K > 1 in
    numba (``backtest_nb.run_path``): the same path run both ways gives the same bits."""
    close, open_, w = path
    t, n = close.shape
    kw = {"close": close, "open": open_ if o["use_open"] else None, "lag": o["lag"],
          "fee_bps": o["fee_bps"], "slippage_bps": o["slippage_bps"],
          "max_gross": o["max_gross"], "min_trade_frac": o["min_trade_frac"],
          "lot_size": o["lot"], "record_trades": how == "record",
          "funding": np.full((t, n), 1e-4) if how == "funding" else None}  # fmt: skip
    one = run_backtest(w, **kw)  # type: ignore[arg-type]
    two = run_backtest(np.repeat(w[:, :, None], 2, axis=2), **kw)  # type: ignore[arg-type]
    for name in ("equity", "returns", "fees", "slippage", "turnover", "n_fills", "exposure"):
        a, b = np.asarray(getattr(one, name)), np.asarray(getattr(two, name))
        for k in range(2):
            np.testing.assert_array_equal(a, b[..., k], err_msg=f"{name}, path {k}")
