"""Numba kernels of factor turnover: rank autocorrelation and quantile-membership churn."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alphaforge.factors import score_nb


@njit(cache=True, parallel=True)
def cs_ranks(f, order):  # type: ignore[no-untyped-def]
    """Average ranks (1-based) of the finite values of each row -> (T, N), NaN elsewhere.

    ``order[t]`` sorts f[t] ascending (non-finite values anywhere; they are skipped).
    Equivalent to: ``pd.DataFrame(f).rank(axis=1)``.
    """
    t_len, m = f.shape
    out = np.full((t_len, m), np.nan)
    for t in prange(t_len):
        s = np.empty(m)
        idx = np.empty(m, dtype=np.int64)
        n = 0
        for i in range(m):
            j = order[t, i]
            if np.isfinite(f[t, j]):
                s[n] = f[t, j]
                idx[n] = j
                n += 1
        rk = np.empty(n)
        score_nb.sorted_ranks(s, n, rk)
        for i in range(n):
            out[t, idx[i]] = rk[i]
    return out


@njit(cache=True, parallel=True)
def cs_rank_autocorr(ranks, lag, min_obs):  # type: ignore[no-untyped-def]
    """Correlation of each row's cross-sectional ranks with the ranks ``lag`` rows earlier.

    ``ranks`` are per-row average ranks among the finite factor values (``cs_ranks``); the
    correlation is Pearson on the assets ranked in both rows. Equivalent to alphalens
    ``factor_rank_autocorrelation``. Rows t < lag are NaN. Returns (T,).
    """
    t_len, m = ranks.shape
    out = np.full(t_len, np.nan)
    for t in prange(lag, t_len):
        fx = np.empty(m)
        ry = np.empty(m)
        n = score_nb.gather_pairs(ranks[t], ranks[t - lag], fx, ry)
        if n >= min_obs and n >= 2:
            out[t] = score_nb.pearson_prefix(fx, ry, n)
    return out


@njit(cache=True, parallel=True)
def bin_turnover(bins, k, lag):  # type: ignore[no-untyped-def]
    """Share of the assets in bin k at row t that were not in bin k at row t - lag -> (T,).

    Equivalent to alphalens ``quantile_turnover``. NaN where bin k is empty or t < lag.
    """
    t_len, m = bins.shape
    out = np.full(t_len, np.nan)
    for t in prange(lag, t_len):
        now = 0
        stay = 0
        for j in range(m):
            if bins[t, j] == k:
                now += 1
                if bins[t - lag, j] == k:
                    stay += 1
        if now > 0:
            out[t] = 1.0 - stay / now
    return out
