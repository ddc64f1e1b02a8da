"""Numba kernel of factors.returns: forward returns for several horizons in one pass."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def forward_rows(px, horizons, out, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``lo:hi`` of the (H, T, N) returns px[t + h] / px[t] - 1 for each horizon h into
    ``out``, NaN on the last h rows.

    Equivalent to: ``px.shift(-h) / px - 1`` per horizon (NaN in either price gives NaN).
    """
    t_len, m = px.shape
    h_len = horizons.shape[0]
    for t in range(lo, hi):
        for k in range(h_len):
            h = horizons[k]
            if t + h < t_len:
                for j in range(m):
                    out[k, t, j] = px[t + h, j] / px[t, j] - 1.0
            else:
                for j in range(m):
                    out[k, t, j] = np.nan
