"""Validation kernels: golden comparisons against pandas, and hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.data import validate_nb, validate_rolling_nb
from tests.strategies import float_arrays_with_nans


@settings(max_examples=80)
@given(
    x=float_arrays_with_nans(),
    window=st.integers(1, 40),
    min_periods=st.integers(1, 40),
)
def test_rolling_median_equals_pandas(x: list[float], window: int, min_periods: int) -> None:
    arr = np.asarray(x, dtype=np.float64)
    mp = min(min_periods, window)
    got = validate_rolling_nb.rolling_median(arr, window, mp)
    want = pd.Series(arr, dtype=float).rolling(window, min_periods=mp).median().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)


def test_rolling_median_random_with_nans_large() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_t(3, 20_000)
    x[rng.random(x.size) < 0.05] = np.nan
    for w, mp in ((5, 1), (60, 30), (1440, 720)):
        got = validate_rolling_nb.rolling_median(x, w, mp)
        want = pd.Series(x).rolling(w, min_periods=mp).median().to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)


def test_two_pass_robust_zscore_equals_pandas() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(5_000)
    x[rng.random(x.size) < 0.03] = np.nan
    z, med, mad = validate_rolling_nb.robust_zscore(x, 100, 50, 0.0)
    s = pd.Series(x)
    pm = s.rolling(100, min_periods=50).median()
    pmad = (s - pm).abs().rolling(100, min_periods=50).median()
    np.testing.assert_allclose(med, pm.to_numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(mad, pmad.to_numpy(), rtol=1e-12, equal_nan=True)
    want = ((s - pm) / (1.4826 * pmad)).to_numpy()
    np.testing.assert_allclose(z, want, rtol=1e-12, equal_nan=True)


@settings(max_examples=60)
@given(
    x=float_arrays_with_nans(250),
    window=st.integers(1, 50),
    stride=st.integers(1, 60),
    min_periods=st.integers(1, 50),
)
def test_strided_robust_zscore_equals_pandas_reference(
    x: list[float], window: int, stride: int, min_periods: int
) -> None:
    arr = np.asarray(x, dtype=np.float64)
    mp = min(min_periods, window)
    z, med, mad = validate_rolling_nb.strided_robust_zscore(arr, window, stride, mp, 0.0)
    s = pd.Series(arr, dtype=float)
    ref_med = s.shift(1).rolling(window, min_periods=mp).median().to_numpy()
    lead = arr[:window][~np.isnan(arr[:window])]
    for t in range(arr.size):
        b = t - t % stride
        win = arr[max(0, b - window) : b]
        win = win[~np.isnan(win)]
        if win.size >= mp:
            want_med = ref_med[b]
            want_mad = np.median(np.abs(win - want_med))
        elif lead.size >= mp:
            want_med = np.median(lead)
            want_mad = np.median(np.abs(lead - want_med))
        else:
            assert np.isnan(med[t])
            assert np.isnan(z[t])
            continue
        assert med[t] == pytest.approx(want_med, rel=1e-12, abs=0)
        assert mad[t] == pytest.approx(want_mad, rel=1e-12, abs=1e-300)


def test_strided_zscore_zero_scale_policy() -> None:
    x = np.array([1.0] * 20 + [1.0, 2.0, 0.0])
    z, _, _ = validate_rolling_nb.strided_robust_zscore(x, 10, 1, 5, 0.0)
    assert z[20] == 0.0
    assert z[21] == np.inf
    assert z[22] == -np.inf
    z2, _, _ = validate_rolling_nb.strided_robust_zscore(x, 10, 1, 5, 0.5)
    assert z2[21] == pytest.approx(2.0)
    assert z2[22] == pytest.approx(-2.0)


def test_kline_row_flags_hand_computed() -> None:
    iv = 60_000_000
    o_us = np.array([0, iv, 2 * iv, 3 * iv + 1], dtype=np.int64)
    c_us = o_us + iv - 1000
    c_us[1] += 1
    o = np.array([10.0, 10.0, 10.0, 10.0])
    h = np.array([11.0, 11.0, 9.0, 11.0])
    lo = np.array([9.0, 9.0, 8.0, 0.0])
    c = np.array([10.5, 10.5, 8.5, 10.0])
    v = np.array([2.0, 2.0, 2.0, 2.0])
    qv = np.array([20.0, 23.0, 17.0, 10.0])
    tb = np.array([1.0, 1.0, 3.0, -1.0])
    f = validate_nb.kline_row_flags(o_us, c_us, o, h, lo, c, v, qv, tb, iv, 1e-6)
    nb = validate_nb
    assert f[0] == 0
    assert f[1] == nb.K_CLOSE_TIME | nb.K_QUOTE_RANGE  # 23 > 11*2
    assert f[2] == nb.K_OHLC | nb.K_TAKER_GT_VOLUME  # open 10 > high 9
    assert f[3] == nb.K_OFF_GRID | nb.K_NONPOS_PRICE | nb.K_NEG_VOLUME


def test_sequence_breaks_spot_and_futures() -> None:
    # spot: snapshot lid=100, stale diff (u=90), straddling diff 95..105, then 106..110 ok,
    # then 112..115 breaks (U != 111)
    U = np.array([0, 80, 95, 106, 112], dtype=np.int64)
    u = np.array([100, 90, 105, 110, 115], dtype=np.int64)
    pu = np.full(5, -1, dtype=np.int64)
    snap = np.array([True, False, False, False, False])
    brk = validate_nb.sequence_breaks(U, u, pu, snap, False)
    assert brk.tolist() == [False, False, False, False, True]
    # futures: pu chain
    U = np.array([0, 95, 106, 112], dtype=np.int64)
    u = np.array([100, 105, 110, 115], dtype=np.int64)
    pu = np.array([-1, 94, 105, 109], dtype=np.int64)
    brk = validate_nb.sequence_breaks(U, u, pu, np.array([True, False, False, False]), True)
    assert brk.tolist() == [False, False, False, True]
    # a first diff that does not straddle the snapshot is a break
    brk = validate_nb.sequence_breaks(
        np.array([0, 102], dtype=np.int64),
        np.array([100, 105], dtype=np.int64),
        np.array([-1, -1], dtype=np.int64),
        np.array([True, False]),
        False,
    )
    assert brk.tolist() == [False, True]


def test_trade_row_flags_hand_computed() -> None:
    ids = np.array([10, 11, 14, 14, 13], dtype=np.int64)
    first = np.array([100, 101, 110, 110, 108], dtype=np.int64)
    last = np.array([100, 103, 110, 110, 109], dtype=np.int64)
    ts = np.array([1, 2, 3, 3, 2], dtype=np.int64)
    px = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    qty = np.array([1.0, -1.0, 1.0, 1.0, 1.0])
    f, missing = validate_nb.trade_row_flags(ids, first, last, ts, px, qty, True)
    nb = validate_nb
    assert f[0] == 0
    assert f[1] == nb.T_NONPOS_QTY
    assert f[2] == nb.T_ID_GAP | nb.T_NONPOS_PRICE
    assert missing[2] == 2
    assert f[3] == nb.T_ID_DUPLICATE
    assert f[4] == nb.T_ID_STEP_BACK | nb.T_TS_STEP_BACK
    assert missing.sum() == 2


@settings(max_examples=60)
@given(
    x=float_arrays_with_nans(400),
    stride=st.integers(1, 30),
    blocks=st.integers(1, 8),
    min_periods=st.integers(1, 60),
)
def test_presorted_strided_path_equals_the_plain_kernel(
    x: list[float], stride: int, blocks: int, min_periods: int
) -> None:
    from alphaforge.data.validate_common import strided_zscore

    arr = np.asarray(x, dtype=np.float64)
    window = stride * blocks
    mp = min(min_periods, window)
    want = validate_rolling_nb.strided_robust_zscore(arr, window, stride, mp, 1e-3)
    got = strided_zscore(arr, window, stride, mp, 1e-3)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_two_thread_block_ranges_equal_the_plain_kernel() -> None:
    from alphaforge.data.validate_common import strided_zscore

    rng = np.random.default_rng(11)
    x = rng.standard_t(3, 50_000) * 1e-3
    x[rng.random(x.size) < 0.02] = np.nan
    x[:700] = np.nan  # the first blocks fall back to the leading window
    for window, stride in ((1440, 360), (512, 512), (60, 15)):
        want = validate_rolling_nb.strided_robust_zscore(x, window, stride, window // 2, 1e-4)
        got = strided_zscore(x, window, stride, window // 2, 1e-4, parallel_min_rows=0)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
