"""Numba kernels of factor turnover: rank autocorrelation and quantile-membership churn.

Each fills a range of rows of an output allocated (NaN-filled) by its Python caller
(``nogil``: the caller runs ranges on ``engine.pool``'s threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from alphaforge.factors import score_nb


@njit(cache=True, nogil=True)
def cs_ranks(f, order, out, lo, hi):  # type: ignore[no-untyped-def]
    """Average ranks (1-based) of the finite values of rows ``lo:hi`` into out (T, N); the
    caller fills out with NaN, which stays where f is not finite.

    ``order[t]`` sorts f[t] ascending (non-finite values anywhere; they are skipped).
    Equivalent to: ``pd.DataFrame(f).rank(axis=1)``.
    """
    m = f.shape[1]
    s = np.empty(m)
    idx = np.empty(m, dtype=np.int64)
    rk = np.empty(m)
    for t in range(lo, hi):
        n = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
        for i in range(m):
            j = order[t, i]
            if np.isfinite(f[t, j]):
                s[n] = f[t, j]
                idx[n] = j
                n += 1
        score_nb.sorted_ranks(s, n, rk)
        for i in range(n):
            out[t, idx[i]] = rk[i]


@njit(cache=True, nogil=True)
def cs_rank_autocorr(ranks, lag, min_obs, out, lo, hi):  # type: ignore[no-untyped-def]
    """Correlation of each row's cross-sectional ranks with the ranks ``lag`` rows earlier,
    for rows ``lo:hi`` at or after ``lag`` into out (T,) (NaN-filled by the caller).

    ``ranks`` are per-row average ranks among the finite factor values (``cs_ranks``); the
    correlation is Pearson on the assets ranked in both rows. Equivalent to alphalens
    ``factor_rank_autocorrelation``.
    """
    m = ranks.shape[1]
    fx = np.empty(m)
    ry = np.empty(m)
    for t in range(max(lo, lag), hi):
        n = score_nb.gather_pairs(ranks[t], ranks[t - lag], fx, ry)
        if n >= min_obs and n >= 2:
            out[t] = score_nb.pearson_prefix(fx, ry, n)


@njit(cache=True, nogil=True)
def bin_turnover(bins, k, lag, out, lo, hi):  # type: ignore[no-untyped-def]
    """Share of the assets in bin k at row t that were not in bin k at row t - lag, for rows
    ``lo:hi`` into out (T,) (NaN-filled by the caller).

    Equivalent to alphalens ``quantile_turnover``. NaN where bin k is empty or t < lag.
    """
    m = bins.shape[1]
    for t in range(max(lo, lag), hi):
        now = 0
        stay = 0
        for j in range(m):
            if bins[t, j] == k:
                now += 1
                if bins[t - lag, j] == k:
                    stay += 1
        if now > 0:
            out[t] = 1.0 - stay / now
