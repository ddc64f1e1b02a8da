"""Rolling skewness by running sums (``ts_nb._skew_block``) against the two-pass formula
(``ts_nb._direct_block``, the kernel it replaced): the same NaN cells, values within 1e-7."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.factors.expr import kernels, ts_nb


def _two_pass(x: np.ndarray, w: int) -> np.ndarray:
    out = np.empty_like(x)
    ts_nb._direct_block(x, out, 0, x.shape[1], w, ts_nb.SKEW)
    return out


def _check(x: np.ndarray, w: int) -> None:
    got = kernels.ts_window(x, w, ts_nb.SKEW, np.empty)
    want = _two_pass(x, w)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


@st.composite
def _series(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    t = draw(st.integers(3, 400))
    n = draw(st.integers(1, 5))
    w = draw(st.integers(3, min(t, 70)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_t(3, (t, n)) * draw(st.sampled_from([1e-6, 1e-3, 1.0, 1e4]))
    x += draw(st.sampled_from([0.0, 1e-3, 100.0, 5e4]))
    if draw(st.booleans()):  # prices on a tick grid: ties, equal windows
        tick = np.abs(x).mean() * 1e-3 + 1e-12
        x = np.round(x / tick) * tick
    lo = draw(st.integers(0, t - 1))
    x[lo : lo + draw(st.integers(0, 2 * w))] = draw(st.sampled_from([0.0, 0.5, 3e4]))
    spikes = rng.random((t, n)) < draw(st.sampled_from([0.0, 0.01, 0.05]))
    x[spikes] *= draw(st.sampled_from([1e3, 1e6]))
    x[rng.random((t, n)) < draw(st.sampled_from([0.0, 0.03]))] = np.nan
    return x, w


@settings(max_examples=300, deadline=None)
@given(_series())
def test_running_skew_equals_two_pass(case: tuple[np.ndarray, int]) -> None:
    _check(*case)


def test_a_spike_leaving_the_window_leaves_no_residue() -> None:
    """A value 10^6 times the others enters and leaves: the sums re-anchor when it has gone,
    so the quiet windows after it are as exact as before it."""
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, 1e-3, (3_000, 3))
    x[500, :] = 1e3
    _check(x, 60)


def test_large_panel_in_blocks_and_threads() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_t(4, (30_000, 40)) * 1e-3
    x[rng.random(x.shape) < 0.01] = np.nan
    _check(x, 60)
