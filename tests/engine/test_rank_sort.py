"""The shared merge sort of ``engine.rank_nb`` against numpy's stable argsort, on the inputs
that reach it: finite values, infinities and heavy ties, at lengths around the run size and
its powers of two (where a merge pass has a partial last block)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from alphaforge.engine.rank_nb import RUN, argsort

values = st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 1.0, 2.0]))


@given(arrays(np.float64, st.integers(0, 9 * RUN + 3), elements=values), st.integers(0, 3))
def test_argsort_equals_numpy_stable_argsort(x: np.ndarray, spare: int) -> None:
    n = x.size
    padded = np.concatenate([x, np.full(spare, -np.inf)])  # n < len(vals): only vals[:n] sort
    order = np.full(n + spare, -1, dtype=np.int64)
    tmp = np.full(n + spare, -1, dtype=np.int64)
    got = argsort(padded, n, order, tmp)[:n]
    assert np.array_equal(got, np.argsort(x, kind="stable"))


def test_argsort_sorts_a_long_row_with_ties() -> None:
    x = np.random.default_rng(3).integers(0, 50, 5_000).astype(np.float64)
    got = argsort(x, x.size, np.empty(x.size, np.int64), np.empty(x.size, np.int64))
    assert np.array_equal(got, np.argsort(x, kind="stable"))
