"""The running-sum kernels (``ts_nb._moments_block``: rolling mean, sum, std, zscore;
``ts_nb._pair_block``: rolling corr, cov) against exact two-pass statistics of every window.
Their sums re-anchor on a schedule of the row, and a column on its own after a large value
leaves the window or when the anchor is far from it, after a non-finite gap and for
near-constant windows; whatever the data, each window's result stays within rounding of the
exact one, relative to the values in that window."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.factors.expr import kernels, ts_nb


@st.composite
def _panels(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """(T, 3) float64 with a random walk, constant stretches, spikes up to 1e12 times the
    level and non-finite cells; a window of 2..40 rows."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(40, 400))
    level = 10.0 ** draw(st.integers(-4, 6))
    x = level * (1.0 + np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0))
    for _ in range(draw(st.integers(0, 4))):  # constant stretches
        a = int(rng.integers(0, n))
        x[a : a + int(rng.integers(2, 60)), int(rng.integers(0, 3))] = x[a, 0]
    for _ in range(draw(st.integers(0, 4))):  # spikes of either sign
        size = level * 10.0 ** draw(st.integers(2, 12))
        x[int(rng.integers(0, n)), int(rng.integers(0, 3))] = size * rng.choice([-1.0, 1.0])
    bad = rng.random(x.shape) < draw(st.sampled_from([0.0, 0.01, 0.05]))
    x[bad] = rng.choice([np.nan, np.inf, -np.inf], size=int(bad.sum()))
    return x, draw(st.integers(2, 40))


def _exact(x: np.ndarray, w: int, code: int) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, largest |value| of the window) of every full window with finite values;
    NaN elsewhere. Sums by ``math.fsum`` (exactly rounded)."""
    want = np.full(x.shape, np.nan)
    scale = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        for t in range(w - 1, x.shape[0]):
            win = x[t - w + 1 : t + 1, j]
            if not np.isfinite(win).all():
                continue
            mean = math.fsum(win) / w
            # a constant window has variance 0 (fsum(win) / w need not round back to the value)
            var = math.fsum((win - mean) ** 2) / (w - 1) if (win != win[0]).any() else 0.0
            scale[t, j] = np.abs(win).max()
            want[t, j] = {
                ts_nb.MEAN: mean,
                ts_nb.SUM: math.fsum(win),
                ts_nb.STD: math.sqrt(var),
                ts_nb.ZSCORE: (win[-1] - mean) / math.sqrt(var) if var > 0 else np.nan,
            }[code]
    return want, scale


@settings(max_examples=150, deadline=None)
@given(_panels(), st.sampled_from([ts_nb.MEAN, ts_nb.SUM, ts_nb.STD]))
def test_moments_stay_within_rounding_of_each_window(case, code) -> None:
    """A value 1e12 times the level that left the window, or an anchor that was one, must
    leave no residue: the error is measured against the current window's own scale."""
    x, w = case
    got = kernels.ts_window(x, w, code)
    want, scale = _exact(x, w, code)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    tol = (1e-11 * w if code != ts_nb.STD else 1e-7) * scale[ok]
    err = np.abs(got[ok] - want[ok])
    assert (err <= tol).all(), f"worst error {err.max()} vs tolerance {tol[err.argmax()]}"


@settings(max_examples=60, deadline=None)
@given(_panels())
def test_zscore_matches_exact_and_is_nan_on_constant_windows(case) -> None:
    x, w = case
    got = kernels.ts_window(x, w, ts_nb.ZSCORE)
    want, _ = _exact(x, w, ts_nb.ZSCORE)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-6, atol=1e-6)


def test_a_spike_as_the_anchor_leaves_no_residue() -> None:
    """The sums re-anchor on rows w-1, 2w-1, ... around the window's oldest value; when that
    value is a spike, the next row must not carry its rounding (the anchor is then far from
    the window and the column re-anchors on its own)."""
    w = 20
    x = 100.0 + np.cumsum(np.random.default_rng(0).normal(0, 0.1, (200, 1)), axis=0)
    x[100, 0] = -1e12  # the oldest value of the window re-anchored on row 119
    got = kernels.ts_window(x, w, ts_nb.MEAN)
    want, _ = _exact(x, w, ts_nb.MEAN)
    np.testing.assert_allclose(got[120:], want[120:], rtol=1e-13)


def _exact_pair(x: np.ndarray, y: np.ndarray, w: int, code: int) -> tuple[np.ndarray, ...]:
    """(statistic, |x| scale, |y| scale, constant window) per full window with finite x and
    y; NaN elsewhere. Two passes with ``math.fsum``."""
    shape = x.shape
    want, sx, sy = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    const = np.zeros(shape, dtype=bool)
    for j in range(shape[1]):
        for t in range(w - 1, shape[0]):
            a, b = x[t - w + 1 : t + 1, j], y[t - w + 1 : t + 1, j]
            if not (np.isfinite(a).all() and np.isfinite(b).all()):
                continue
            da, db = a - math.fsum(a) / w, b - math.fsum(b) / w
            cxy = math.fsum(da * db)
            sx[t, j], sy[t, j] = np.abs(a).max(), np.abs(b).max()
            const[t, j] = (a == a[0]).all() or (b == b[0]).all()
            if code == ts_nb.COV:
                want[t, j] = cxy / (w - 1)
            elif not const[t, j]:
                want[t, j] = cxy / math.sqrt(math.fsum(da * da) * math.fsum(db * db))
    return want, sx, sy, const


@settings(max_examples=120, deadline=None)
@given(_panels(), _panels(), st.sampled_from([ts_nb.CORR, ts_nb.COV]))
def test_pairs_stay_within_rounding_of_each_window(xs, ys, code) -> None:
    """Spikes up to 1e12 times the level in either input leave no residue once they leave the
    window (covariance within 1e-11 w of the product of the window's scales, correlation
    within 1e-5); a window with a non-finite value is NaN and a constant one NaN
    (correlation)."""
    (x, w), (y, _) = xs, ys
    n = min(x.shape[0], y.shape[0])
    x, y = np.ascontiguousarray(x[:n]), np.ascontiguousarray(y[:n])
    got = kernels.ts_pair(x, y, w, code)
    want, sx, sy, const = _exact_pair(x, y, w, code)
    full = np.isfinite(sx)
    assert np.isnan(got[~full]).all()
    if code == ts_nb.CORR:
        assert np.isnan(got[full & const]).all()
        ok = np.isfinite(got) & np.isfinite(want)
        err, tol = np.abs(got[ok] - want[ok]), 1e-5
    else:
        np.testing.assert_array_equal(np.isnan(got), ~full)
        ok = full
        err, tol = np.abs(got[ok] - want[ok]), 1e-11 * w * sx[ok] * sy[ok]
    assert (err <= tol).all(), f"worst error {err.max()}"
