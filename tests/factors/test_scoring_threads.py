"""The scoring, weight and proposal kernels split across threads equal one thread, bit for bit.

Over ``engine.pool.PARALLEL_MIN_CELLS`` their Python callers run ranges of rows (or columns,
or factors) on the shared threads; each range writes a disjoint part of the output, so the
result must not depend on the split. A dropped, doubled or shifted range shows up here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pytest

from alphaforge.engine import pool
from alphaforge.engine.weights import weights_from_signals
from alphaforge.factors import ic
from alphaforge.factors.propose_score import RankSet, rank_corr_rows, rank_rows
from alphaforge.factors.returns import forward_returns

from .panels import make_panel


def _calls() -> dict[str, Callable[[], Any]]:
    rng = np.random.default_rng(11)
    n = 23
    t = pool.PARALLEL_MIN_CELLS // n + 37  # just over the threshold, an odd split
    f = rng.normal(size=(t, n))
    f[rng.random(f.shape) < 0.03] = np.nan
    f[:, 3] = np.round(f[:, 3], 1)  # ties
    r = 0.1 * f + rng.normal(size=(t, n))
    r[rng.random(r.shape) < 0.03] = np.nan
    fwd = np.stack([r, np.roll(r, 1, axis=0)])
    bins = ic.quantile_bins(f, 5)
    panel = make_panel(t, n, seed=3)
    rs = RankSet()
    members = {f"m{k}": f + k * rng.normal(size=f.shape) for k in range(3)}
    for name, values in members.items():
        rs.add(name, rs.ranks(values))
    return {
        "cs_ic_quantiles": lambda: ic.cross_section(f, fwd, quantiles=5),
        "quantile_bins": lambda: ic.quantile_bins(f, 5),
        "rank_autocorrelation": lambda: ic.rank_autocorrelation(f, lag=3),
        "quantile_turnover": lambda: ic.quantile_turnover(bins, 4, lag=2),
        "ts_ic": lambda: ic.ts_ic(f, r),
        "rolling_ts_ic": lambda: ic.rolling_ts_ic(f[:20000], r[:20000], 30),
        "forward_returns": lambda: forward_returns(panel, (1, 7), 1),
        "weights_rank": lambda: weights_from_signals(f, "rank"),
        "weights_quantile": lambda: weights_from_signals(f, "quantile", quantile=0.2),
        "weights_sign": lambda: weights_from_signals(f, "sign"),
        "weights_zscore": lambda: weights_from_signals(f, "zscore"),
        "weights_raw": lambda: weights_from_signals(f, "raw"),
        "rank_rows": lambda: rank_rows(f),
        "rank_corr_rows": lambda: rank_corr_rows(rank_rows(f), rank_rows(r)),
        "rank_set_corrs": lambda: rs.corrs(rank_rows(r)),
    }


def _as_arrays(x: Any) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, tuple):
        return [a for part in x for a in _as_arrays(part)]
    return [np.asarray(getattr(x, k)) for k in x.__slots__]  # CrossSection


def test_scoring_kernels_split_across_threads_equal_one_thread() -> None:
    if numba.get_num_threads() < 2:
        pytest.skip("one thread: nothing to split")
    calls = _calls()
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        alone = {k: _as_arrays(fn()) for k, fn in calls.items()}
    finally:
        numba.set_num_threads(threads)
    for k, fn in calls.items():
        split = _as_arrays(fn())
        assert len(split) == len(alone[k]), k
        for a, b in zip(split, alone[k], strict=True):
            assert np.isfinite(a).any() or a.dtype.kind == "i", f"{k}: nothing computed"
            np.testing.assert_array_equal(a, b, err_msg=k)
