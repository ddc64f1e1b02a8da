"""Probabilistic and Deflated Sharpe Ratios (Bailey & Lopez de Prado 2012, 2014).

All Sharpe ratios here are *per period* (not annualized): SR = mean(r) / std(r, ddof=1) of the
strategy's per-bar returns. Kurtosis is the plain (non-excess) kurtosis: 3 for a normal law.

Formula:
    PSR(SR*) = Phi( (SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2) )
    SR0      = sqrt(V[SR_n]) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))
    DSR      = PSR(SR0)
with T observations, skewness g3, kurtosis g4, N independent trials whose Sharpe ratios have
variance V[SR_n], and gamma the Euler-Mascheroni constant. Paper example (2014, section 5):
N = 100, V = 1/2 annualized (250 days), SR = 2.5 annualized, T = 1250, g3 = -3, g4 = 10 gives
SR0 = 0.1132 per day and DSR = 0.9004.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from alphaforge.factors.errors import ScoreError

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
"""The standard normal (the standard library's: ``cdf`` by ``erfc``, ``inv_cdf`` by Wichura's
AS241, about 16 digits; importing scipy.special for two scalars cost every command ~0.25 s)."""


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    """Inputs and results of a Deflated Sharpe computation (per-period units).

    Attributes:
        sr: observed Sharpe ratio per period.
        n_obs: T, number of returns.
        skew: sample skewness of the returns.
        kurtosis: sample (non-excess) kurtosis of the returns.
        n_trials: N, number of independent trials behind the selected strategy.
        var_trials: V[SR_n], variance of the trials' per-period Sharpe ratios.
        sr0: expected maximum Sharpe of N zero-skill trials (the deflation benchmark).
        psr: PSR against 0 (probability the true SR > 0).
        dsr: PSR against sr0.
    """

    sr: float
    n_obs: int
    skew: float
    kurtosis: float
    n_trials: int
    var_trials: float
    sr0: float
    psr: float
    dsr: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict of every field (n_obs and n_trials stay ints)."""
        return {k: v if isinstance(v, int) else float(v) for k, v in asdict(self).items()}


def return_moments(returns: npt.ArrayLike) -> tuple[float, int, float, float]:
    """(per-period Sharpe, T, skewness, non-excess kurtosis) of a return series.

    NaN: NaN returns are dropped; fewer than 2 returns or zero std gives NaN moments.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    n = int(r.size)
    if n < 2:
        return math.nan, n, math.nan, math.nan
    sd = float(np.std(r, ddof=1))
    if not sd > 0:
        return math.nan, n, math.nan, math.nan
    sr = float(np.mean(r)) / sd
    d = r - r.mean()
    d2 = d * d  # products, not d**3 and d**4: numpy's power is a libm call per value (15x)
    m2 = float(np.mean(d2))
    skew = float(np.mean(d2 * d)) / m2**1.5  # biased moments, as scipy.stats.skew(bias=True)
    kurt = float(np.mean(d2 * d2)) / (m2 * m2)  # non-excess, as scipy.stats.kurtosis(fisher=False)
    return sr, n, skew, kurt


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probability that the true Sharpe exceeds ``sr_benchmark`` (see module Formula).

    NaN: any NaN input, n_obs < 2, or a non-positive variance term gives NaN.
    """
    if n_obs < 2 or not all(math.isfinite(x) for x in (sr, sr_benchmark, skew, kurtosis)):
        return math.nan
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not var > 0:
        return math.nan
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)
    return _NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, var_trials: float) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` zero-skill trials (SR0).

    Raises:
        ScoreError: n_trials < 1 or a negative variance.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise ScoreError(f"n_trials must be an integer >= 1; got {n_trials!r}")
    if not var_trials >= 0:
        raise ScoreError(f"variance of trial Sharpe ratios must be >= 0; got {var_trials}")
    if n_trials == 1:
        return 0.0
    n = float(n_trials)
    z = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(var_trials) * z


def deflated_sharpe_ratio(
    returns: npt.ArrayLike | None = None,
    *,
    n_trials: int = 1,
    var_trials: float | None = None,
    trial_sharpes: npt.ArrayLike | None = None,
    sr: float | None = None,
    n_obs: int | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
) -> DeflatedSharpe:
    """Deflated Sharpe Ratio of a selected strategy.

    Args:
        returns: (T,) per-period returns of the selected strategy; its moments fill any of
            sr, n_obs, skew, kurtosis not given explicitly.
        n_trials: N, independent trials run before selecting this one (>= 1).
        var_trials: V[SR_n], variance of the trials' per-period Sharpe ratios.
        trial_sharpes: the trials' per-period Sharpe ratios (their ddof=1 variance is used
            when var_trials is None).
        sr, n_obs, skew, kurtosis: explicit moments (per-period SR, non-excess kurtosis).

    Returns:
        DeflatedSharpe. When N > 1 and neither var_trials nor trial_sharpes is given, V is the
        sampling variance of the SR estimator itself, (1 - g3 SR + (g4 - 1)/4 SR^2) / (T - 1):
        the spread of Sharpe ratios that N zero-skill strategies of this shape would show.

    Raises:
        ScoreError: neither returns nor the explicit moments, or bad trial inputs.
    """
    m_sr, m_n, m_skew, m_kurt = (
        return_moments(returns) if returns is not None else (math.nan, 0, 0.0, 3.0)
    )
    sr_ = float(m_sr if sr is None else sr)
    n_ = int(m_n if n_obs is None else n_obs)
    skew_ = float(m_skew if skew is None else skew)
    kurt_ = float(m_kurt if kurtosis is None else kurtosis)
    if returns is None and (sr is None or n_obs is None):
        raise ScoreError("deflated_sharpe_ratio needs returns, or sr and n_obs")
    if var_trials is None and trial_sharpes is not None:
        ts = np.asarray(trial_sharpes, dtype=np.float64)
        ts = ts[np.isfinite(ts)]
        if ts.size < 2:
            raise ScoreError(f"trial_sharpes needs >= 2 finite values; got {ts.size}")
        var_trials = float(np.var(ts, ddof=1))
    if var_trials is None:
        spread = 1.0 - skew_ * sr_ + (kurt_ - 1.0) / 4.0 * sr_ * sr_
        var_trials = spread / (n_ - 1) if n_ >= 2 and spread > 0 else math.nan
    sr0 = expected_max_sharpe(n_trials, var_trials) if math.isfinite(var_trials) else math.nan
    if n_trials == 1:
        sr0 = 0.0
    return DeflatedSharpe(
        sr=sr_,
        n_obs=n_,
        skew=skew_,
        kurtosis=kurt_,
        n_trials=int(n_trials),
        var_trials=float(var_trials),
        sr0=sr0,
        psr=probabilistic_sharpe_ratio(sr_, 0.0, n_, skew_, kurt_),
        dsr=probabilistic_sharpe_ratio(sr_, sr0, n_, skew_, kurt_),
    )
