"""Deflated / Probabilistic Sharpe Ratio (factors.dsr) against the paper's worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.factors.dsr import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    return_moments,
)
from alphaforge.factors.errors import ScoreError


def test_paper_worked_example():
    """Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example.

    A strategist ran N = 100 independent trials whose annualized Sharpe ratios have variance
    V = 1/2; the selected one has an annualized SR of 2.5 over T = 1250 daily returns
    (250 days a year) with skewness -3 and kurtosis 10. The paper reports the benchmark
    SR0 = 0.1132 (per day) and DSR = 0.9004.
    """
    ppy = 250
    sr0 = expected_max_sharpe(100, 0.5 / ppy)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    d = deflated_sharpe_ratio(
        sr=2.5 / math.sqrt(ppy), n_obs=1250, skew=-3.0, kurtosis=10.0,
        n_trials=100, var_trials=0.5 / ppy,
    )  # fmt: skip
    assert d.sr0 == pytest.approx(0.1132, abs=5e-5)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)
    assert d.psr > d.dsr


def test_trial_sharpes_give_the_same_variance():
    half = math.sqrt(0.5 / 250 / 2.0)  # two values with sample variance exactly 0.5 / 250
    d = deflated_sharpe_ratio(
        sr=2.5 / math.sqrt(250), n_obs=1250, skew=-3.0, kurtosis=10.0,
        n_trials=100, trial_sharpes=[-half, half],
    )  # fmt: skip
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)


def test_normal_case_reduces_to_the_textbook_standard_error():
    # skew 0, kurtosis 3: sd(SR_hat) = sqrt((1 + SR^2 / 2) / (T - 1))
    sr, t = 0.1, 500
    z = sr * math.sqrt(t - 1) / math.sqrt(1 + sr * sr / 2)
    assert probabilistic_sharpe_ratio(sr, 0.0, t) == pytest.approx(ss.norm.cdf(z), rel=1e-12)
    assert probabilistic_sharpe_ratio(sr, sr, t) == pytest.approx(0.5)


def test_moments_from_returns_match_scipy():
    rng = np.random.default_rng(5)
    r = rng.standard_t(4, size=3000) * 0.01 + 0.001
    r[::97] = np.nan
    sr, n, skew, kurt = return_moments(r)
    x = r[np.isfinite(r)]
    assert n == x.size
    assert sr == pytest.approx(x.mean() / x.std(ddof=1), rel=1e-12)
    assert skew == pytest.approx(ss.skew(x), rel=1e-12)
    assert kurt == pytest.approx(ss.kurtosis(x, fisher=False), rel=1e-12)
    d = deflated_sharpe_ratio(r, n_trials=1)
    assert d.sr0 == 0.0
    assert d.dsr == d.psr


@given(st.floats(0.01, 0.3), st.integers(50, 5000), st.integers(2, 10_000))
def test_more_trials_deflate_more(sr, t, n):
    a = deflated_sharpe_ratio(sr=sr, n_obs=t, n_trials=n, var_trials=1e-3)
    b = deflated_sharpe_ratio(sr=sr, n_obs=t, n_trials=n + 50, var_trials=1e-3)
    assert b.sr0 > a.sr0
    assert b.dsr <= a.dsr


def test_edge_cases():
    assert math.isnan(return_moments([0.01])[0])
    assert math.isnan(return_moments([0.01, 0.01, 0.01])[0])  # constant: zero std
    assert math.isnan(probabilistic_sharpe_ratio(math.nan, 0.0, 100))
    with pytest.raises(ScoreError, match="n_trials"):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(ScoreError, match="variance"):
        expected_max_sharpe(10, -1.0)
    with pytest.raises(ScoreError, match="returns, or sr and n_obs"):
        deflated_sharpe_ratio(n_trials=3)
