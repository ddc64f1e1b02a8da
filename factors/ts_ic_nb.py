"""Numba kernels of time-series IC (factors.ic.ts_ic, rolling_ts_ic): per asset, over time.

They reuse the cross-sectional row kernels of factors.score_nb on a column at a time. Each
fills a range of columns of an output allocated by its Python caller (``nogil``: the caller
runs ranges on ``engine.pool``'s threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from alphaforge.factors import score_nb


@njit(cache=True, nogil=True)
def ts_corr_assets(f, r, rank, min_obs, out, lo, hi):  # type: ignore[no-untyped-def]
    """Whole-period time-series correlation of f[:, j] with r[:, j] for assets ``lo:hi``
    into out (N,). Each column is copied into one reused buffer by a loop (numba's
    ``np.ascontiguousarray`` cost 0.4 s of the first compile and a new array per column)."""
    t_len = f.shape[0]
    a = np.empty(t_len)
    b = np.empty(t_len)
    for j in range(lo, hi):
        for t in range(t_len):
            a[t] = f[t, j]
            b[t] = r[t, j]
        out[j] = score_nb.row_corr(a, b, rank, min_obs)


@njit(cache=True, nogil=True)
def ts_rolling_corr(f, r, window, min_obs, out, lo, hi):  # type: ignore[no-untyped-def]
    """Rolling Pearson correlation over the last ``window`` rows for assets ``lo:hi`` into
    out (T, N), which the caller fills with NaN.

    Row t uses rows t-window+1..t (pairwise complete); NaN before the first full window.
    Equivalent to: ``pd.Series(f).rolling(window, min_periods=min_obs).corr(pd.Series(r))``
    up to the first window-1 rows (NaN here).
    """
    t_len = f.shape[0]
    fx = np.empty(window)
    ry = np.empty(window)
    for j in range(lo, hi):
        for t in range(window - 1, t_len):
            n = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
            for s in range(t - window + 1, t + 1):
                a = f[s, j]
                b = r[s, j]
                if np.isfinite(a) and np.isfinite(b):
                    fx[n] = a
                    ry[n] = b
                    n += 1
            if n >= min_obs:
                out[t, j] = score_nb.pearson_prefix(fx, ry, n)
