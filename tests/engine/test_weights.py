"""Signals -> weights: gross and neutrality invariants, NaN = no position, scipy golden ranks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from alphaforge.engine import weights_nb
from alphaforge.engine.errors import OptionError, ShapeError
from alphaforge.engine.weights import weights_from_signals

signals = arrays(
    np.float64, st.tuples(st.integers(1, 8), st.integers(1, 12)),
    elements=st.one_of(st.floats(-5, 5), st.just(np.nan), st.sampled_from([0.0, 1.0, 1.0])),
)  # fmt: skip


@given(signals, st.sampled_from(["rank", "zscore", "quantile", "sign"]), st.floats(0.1, 3.0))
def test_rows_sum_to_gross_and_nan_means_flat(sig: np.ndarray, scheme: str, gross: float) -> None:
    w = weights_from_signals(sig, scheme, gross=gross, quantile=0.3)
    assert w.shape == sig.shape
    assert np.isfinite(w).all()
    assert np.all(w[np.isnan(sig)] == 0.0)
    for row, _s in zip(w, sig, strict=True):
        tot = np.abs(row).sum()
        assert tot == pytest.approx(gross, rel=1e-9) or tot == 0.0
        if scheme in ("rank", "zscore") and tot > 0:
            assert row.sum() == pytest.approx(0.0, abs=1e-9)  # dollar neutral


@given(arrays(np.float64, st.integers(1, 300),
              elements=st.one_of(st.floats(-3, 3), st.just(np.nan), st.just(1.0),
                                 st.just(-0.0), st.just(0.0), st.just(np.inf))))  # fmt: skip
def test_average_ranks_match_scipy(x: np.ndarray) -> None:
    out = np.empty_like(x)
    m = weights_nb.average_ranks(x, out)
    valid = ~np.isnan(x)
    assert m == valid.sum()
    np.testing.assert_array_equal(out[valid], stats.rankdata(x[valid], method="average"))
    assert np.isnan(out[~valid]).all()
    assert weights_nb.COUNT_ROW < 300  # rows ranked by counting and by the sort are drawn


def test_quantile_buckets_are_symmetric_equal_weight() -> None:
    sig = np.arange(10, dtype=float)[None, :]
    w = weights_from_signals(sig, "quantile", quantile=0.2)[0]
    np.testing.assert_allclose(w, [-0.25, -0.25, 0, 0, 0, 0, 0, 0, 0.25, 0.25])
    long_only = weights_from_signals(sig, "quantile", quantile=0.2, neutral=False)[0]
    np.testing.assert_allclose(long_only, [0] * 8 + [0.5, 0.5])


def test_single_asset_sign_and_bad_options() -> None:
    np.testing.assert_array_equal(weights_from_signals(np.array([2.0, -1.0, np.nan, 0.0]), "sign"),
                                  [1.0, -1.0, 0.0, 0.0])  # fmt: skip
    with pytest.raises(OptionError, match="unknown weight scheme 'magic'"):
        weights_from_signals(np.zeros((2, 2)), "magic")
    with pytest.raises(OptionError, match="gross"):
        weights_from_signals(np.zeros((2, 2)), gross=0)
    with pytest.raises(ShapeError):
        weights_from_signals(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("every", [1, 7, 12])
def test_factor_weights_on_rebalance_rows_equal_every_row_then_held(every: int) -> None:
    """``factor_weights`` weighs the rebalance rows only; the result equals weighing every row,
    holding (NaN) off the rebalance rows and masking non-executable decisions."""
    from alphaforge import synthetic_panel
    from alphaforge.engine.portfolio import factor_weights
    from alphaforge.engine.tradable import executable_mask, mask_weights

    panel = synthetic_panel(n_symbols=6, n_bars=300, seed=5)
    rng = np.random.default_rng(every)
    values = rng.normal(size=(panel.T, panel.N))
    values[rng.random(values.shape) < 0.1] = np.nan
    for scheme in ("rank", "quantile"):
        want = weights_from_signals(values, scheme)
        want[np.arange(panel.T) % every != 0] = np.nan
        mask_weights(want, executable_mask(panel, 1))
        got = factor_weights(values, panel, scheme=scheme, rebalance_every=every, lag=1)
        np.testing.assert_array_equal(got, want)
        assert np.isfinite(got[::every]).any()
