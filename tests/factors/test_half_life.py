"""``ic.half_life``: the exponential fit of an IC decay curve, against scipy's least squares."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import curve_fit

from alphaforge.factors import ic

HORIZONS = np.array([1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 48.0])


def _sse(h: np.ndarray, v: np.ndarray, lam: float) -> float:
    """Residual sum of squares of the best a * exp(-lam h) for this rate."""
    g = np.exp(-lam * h)
    a = float(v @ g) / float(g @ g)
    return float(np.sum((v - a * g) ** 2))


def _scipy_rate(h: np.ndarray, v: np.ndarray) -> float | None:
    """The rate scipy's bounded curve_fit finds from the start the old code used (None: it
    found none)."""
    a0 = float(v[np.argmin(h)]) or float(v[np.argmax(np.abs(v))])
    lam0 = math.log(2.0) / max(float(np.median(h)), 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            bounds = ([-np.inf, 0.0], [np.inf, 50.0 / float(h.min())])
            params, _ = curve_fit(
                lambda x, a, lam: a * np.exp(-lam * x), h, v, p0=(a0, lam0), bounds=bounds
            )
        except RuntimeError:
            return None
    return float(params[1])


@settings(max_examples=60, deadline=None)
@given(amp=st.floats(1e-4, 0.5) | st.floats(-0.5, -1e-4), hl=st.floats(0.3, 200.0),
       horizons=st.lists(st.integers(1, 240), min_size=2, max_size=9, unique=True))  # fmt: skip
def test_an_exact_exponential_gives_its_half_life(amp, hl, horizons):
    h = np.array(sorted(horizons), dtype=np.float64)
    v = amp * np.exp(-math.log(2.0) / hl * h)
    # a tail many decades below the first value barely moves the residual: its rate is not
    # determined to 1e-6 by least squares in values (scipy's fit neither)
    assume(np.min(np.abs(v)) > 1e-4 * np.max(np.abs(v)))
    got = ic.half_life(h, v)
    if math.log(2.0) / hl > 50.0 / h.min():  # faster than the fit's bound: clamped to it
        assert got == pytest.approx(math.log(2.0) * h.min() / 50.0, rel=1e-9)
    elif hl > 100.0 * h.max():
        assert got == math.inf
    else:
        assert got == pytest.approx(hl, rel=1e-9)


@settings(max_examples=80, deadline=None)
@given(amp=st.floats(0.01, 0.2), hl=st.floats(0.5, 60.0), noise=st.floats(0.0, 0.3),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_the_fit_is_at_least_as_good_as_scipys_least_squares(amp, hl, noise, seed):
    """The global fit: never a larger residual than scipy's local solver."""
    v = amp * np.exp(-math.log(2.0) / hl * HORIZONS)
    v = v + noise * amp * np.random.default_rng(seed).standard_normal(HORIZONS.size)
    lam_ref = _scipy_rate(HORIZONS, v)
    got = ic.half_life(HORIZONS, v)
    if lam_ref is None:  # scipy gave up (maximum evaluations): ours still answers
        assert not math.isnan(got)
        return
    if not math.isfinite(got):  # no decay within 100 x the longest horizon, or flat
        assert lam_ref < math.log(2.0) / (100.0 * HORIZONS.max()) * (1.0 + 1e-3) or _sse(
            HORIZONS, v, 0.0
        ) <= _sse(HORIZONS, v, lam_ref) * (1.0 + 1e-9)
        return
    lam = math.log(2.0) / got
    assert _sse(HORIZONS, v, lam) <= _sse(HORIZONS, v, lam_ref) * (1.0 + 1e-9) + 1e-30


def test_edge_cases_and_a_curve_scipy_fits_worse():
    h = np.array([1, 5, 15, 60])
    assert ic.half_life(h, [0.05, 0.05, 0.05, 0.05]) == math.inf  # flat: no decay
    assert math.isnan(ic.half_life([1], [0.1]))
    assert math.isnan(ic.half_life(h, [0, 0, 0, 0]))
    assert math.isnan(ic.half_life(h, [np.nan, 0.1, np.nan, np.nan]))
    # all the IC at the first horizon: any fast rate fits exactly; gone before the second
    assert 0.0 < ic.half_life(h, [0.1, 0.0, 0.0, 0.0]) < 1.0
    # a noisy curve: scipy stops in a worse local fit (near-flat) from its starting guess
    v = np.array([-0.011, -0.017, 0.061, -0.002, -0.04, -0.013, 0.014])
    lam = math.log(2.0) / ic.half_life(HORIZONS, v)
    assert _sse(HORIZONS, v, lam) < _sse(HORIZONS, v, _scipy_rate(HORIZONS, v)) * (1.0 - 1e-6)
