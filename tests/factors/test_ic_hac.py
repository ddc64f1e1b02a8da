"""IC standard errors under overlap and persistence (Newey-West), and PBO with missing cells."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.factors import ic
from alphaforge.factors.pbo import pbo


@settings(max_examples=30, deadline=None)
@given(st.integers(30, 400), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_newey_west_matches_statsmodels_hac(n: int, h: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(0.01, 0.1, n)
    lags = ic.newey_west_lags(n, h)
    hac = {"maxlags": lags, "use_correction": False}
    fit = sm.OLS(x, np.ones(n)).fit(cov_type="HAC", cov_kwds=hac)
    s = ic.ic_summary(x, h)
    assert s["se_nw"] == pytest.approx(float(fit.bse[0]), rel=1e-9)
    assert s["se"] == pytest.approx(max(s["se_nw"], np.std(x, ddof=1) / math.sqrt(n / h)))
    assert s["t_stat"] == pytest.approx(s["mean"] / s["se"])


def _null_ic(rng: np.random.Generator, n: int, h: int) -> np.ndarray:
    """A zero-mean IC series as h-bar overlapping sums of a persistent (AR(1) 0.3) series."""
    e = rng.normal(size=n + h)
    u = np.empty_like(e)
    u[0] = e[0]
    for i in range(1, e.size):
        u[i] = 0.3 * u[i - 1] + e[i]
    c = np.concatenate([[0.0], np.cumsum(u)])
    return c[h : h + n] - c[:n]


@pytest.mark.parametrize("h", [1, 5, 15, 60])
def test_t_stat_has_its_nominal_size_under_overlap_and_persistence(h: int) -> None:
    rng = np.random.default_rng(100 + h)
    t = np.array([ic.ic_summary(_null_ic(rng, 3_000, h), h)["t_stat"] for _ in range(400)])
    rate = float(np.mean(np.abs(t) > 1.96))
    assert 0.02 <= rate <= 0.09, rate
    if h == 1:  # the windows error alone (the old t-stat) rejects far too often here
        naive = [
            np.mean(x) / (np.std(x, ddof=1) / math.sqrt(x.size))
            for x in (_null_ic(rng, 3_000, 1) for _ in range(400))
        ]
        assert np.mean(np.abs(naive) > 1.96) > 0.1


def test_pbo_ignores_missing_cells_instead_of_failing_every_split() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (4000, 40))
    edge = noise.copy()
    edge[:, 3] += 0.003
    clean_noise, clean_edge = pbo(noise).pbo, pbo(edge).pbo
    noise[17, :] = edge[17, :] = np.nan  # a missing bar: every trial lacks it
    edge[:300, 8] = np.nan  # a trial that started late
    assert pbo(edge).pbo < 0.05
    assert pbo(edge).pbo == pytest.approx(clean_edge, abs=0.02)
    assert pbo(noise).pbo == pytest.approx(clean_noise, abs=0.05)  # it was 1.0: the NaN
    # made every trial's Sharpe NaN in every split, all tied, every logit 0


def test_walk_forward_pbo_matches_a_direct_loop_and_separates_edge_from_noise() -> None:
    from scipy import stats

    from alphaforge.factors.pbo import block_stats, walk_forward_pbo_from_blocks

    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, (3200, 30))
    got = walk_forward_pbo_from_blocks(*block_stats(noise, 16))
    edges = np.linspace(0, 3200, 17).astype(int)
    logits = []
    for k in range(4, 16):  # expanding train blocks [0, k), test block k
        tr, te = noise[: edges[k]], noise[edges[k] : edges[k + 1]]
        best = int(np.argmax(tr.mean(0) / tr.std(0)))
        omega = stats.rankdata(te.mean(0) / te.std(0))[best] / 31
        logits.append(np.log(omega / (1 - omega)))
    np.testing.assert_allclose(got.logits, logits, rtol=1e-9)
    assert got.pbo == pytest.approx(np.mean(np.asarray(logits) <= 0))
    edge = noise.copy()
    edge[:, 7] += 0.004
    assert walk_forward_pbo_from_blocks(*block_stats(edge, 16)).pbo == 0.0
