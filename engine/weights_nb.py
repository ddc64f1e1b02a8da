"""Numba kernels: cross-sectional signals -> target weights, one row at a time.

Every row kernel takes one row of signals (N,) with NaN = no opinion and writes (N,) weights
whose absolute values sum to ``gross`` (0 where the signal is NaN). One (T, N) driver per
scheme fills a range of rows (``nogil``: its Python caller runs ranges on ``engine.pool``'s
threads).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from alphaforge.engine.rank_nb import COUNT_ROW, argsort, count_ranks

RANK = 0
QUANTILE = 1
SIGN = 2
ZSCORE = 3
RAW = 4


@njit(cache=True)
def _average_ranks_counted(x, out):  # type: ignore[no-untyped-def]
    """``average_ranks`` by counting (``engine.rank_nb.count_ranks``); no sort, two scratch
    rows."""
    n = x.shape[0]
    vals = np.empty(n)
    counted = np.empty(n)
    m = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
    for i in range(n):
        if not math.isnan(x[i]):
            vals[m] = x[i]
            m += 1
    count_ranks(vals, m, counted)  # the non-NaN entries' ranks, in entry order
    k = int(np.int64(0))
    for i in range(n):
        if math.isnan(x[i]):
            out[i] = math.nan
        else:
            out[i] = counted[k]
            k += 1
    return m


@njit(cache=True)
def average_ranks(x, out):  # type: ignore[no-untyped-def]
    """1-based average ranks of the non-NaN entries of x (ties share their mean rank).

    Equivalent to: scipy.stats.rankdata(x[~isnan(x)], method="average"); NaN stays NaN.
    Returns the number of valid entries. Rows of up to ``COUNT_ROW`` values are ranked by
    counting (``engine.rank_nb``: no sort; identical ranks); longer rows by a merge sort
    (``engine.rank_nb.argsort``).
    """
    n = x.shape[0]
    if n <= COUNT_ROW:
        return _average_ranks_counted(x, out)
    idx = np.empty(n, dtype=np.int64)
    m = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
    for i in range(n):
        out[i] = math.nan
        if not math.isnan(x[i]):
            idx[m] = i
            m += 1
    vals = np.empty(m)
    for j in range(m):
        vals[j] = x[idx[j]]
    order = argsort(vals, m, np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64))
    j = 0
    while j < m:
        j2 = j
        while j2 + 1 < m and vals[order[j2 + 1]] == vals[order[j]]:
            j2 += 1
        r = 0.5 * (j + j2) + 1.0
        for q in range(j, j2 + 1):
            out[idx[order[q]]] = r
        j = j2 + 1
    return m


@njit(cache=True)
def _scale_to_gross(w, gross, demean):  # type: ignore[no-untyped-def]
    n = w.shape[0]
    if demean:
        s = 0.0
        c = 0
        for i in range(n):
            if not math.isnan(w[i]):
                s += w[i]
                c += 1
        if c > 0:
            mu = s / c
            for i in range(n):
                if not math.isnan(w[i]):
                    w[i] -= mu
    tot = 0.0
    for i in range(n):
        if not math.isnan(w[i]):
            tot += abs(w[i])
    for i in range(n):
        if math.isnan(w[i]) or tot == 0.0:
            w[i] = 0.0
        else:
            w[i] = w[i] * gross / tot


@njit(cache=True)
def rank_row(sig, gross, out):  # type: ignore[no-untyped-def]
    """ "rank": demeaned average ranks scaled to ``gross``; writes ``out`` (N,)."""
    m = average_ranks(sig, out)
    if m < 2:
        out[:] = 0.0
        return
    _scale_to_gross(out, gross, True)


@njit(cache=True)
def quantile_row(sig, gross, quantile, neutral, out):  # type: ignore[no-untyped-def]
    """ "quantile": equal weights long the top ``quantile`` of ranks, short the bottom (or
    long only unless ``neutral``); writes ``out`` (N,)."""
    n = sig.shape[0]
    ranks = np.empty(n)
    m = average_ranks(sig, ranks)
    if m < 2:
        out[:] = 0.0
        return
    # symmetric equal-count buckets on ranks: bottom = rank <= q*m, top = rank >= m+1-q*m
    lo = quantile * m
    hi = m + 1.0 - lo
    for i in range(n):
        r = ranks[i]
        if math.isnan(r):
            out[i] = math.nan
        elif r >= hi:
            out[i] = 1.0
        elif r <= lo:
            out[i] = -1.0 if neutral else math.nan
        else:
            out[i] = math.nan
    nl = 0
    ns = 0
    for i in range(n):
        if out[i] == 1.0:
            nl += 1
        elif out[i] == -1.0:
            ns += 1
    for i in range(n):
        if out[i] == 1.0:
            out[i] = (0.5 * gross if neutral and ns > 0 else gross) / nl
        elif out[i] == -1.0:
            out[i] = -(0.5 * gross if nl > 0 else gross) / ns
        else:
            out[i] = 0.0


@njit(cache=True)
def sign_row(sig, gross, out):  # type: ignore[no-untyped-def]
    """ "sign": sign of each signal over the count of non-zero signs, times ``gross``."""
    n = sig.shape[0]
    for i in range(n):
        x = sig[i]
        out[i] = math.nan if math.isnan(x) else (1.0 if x > 0 else (-1.0 if x < 0 else 0.0))
    c = 0
    for i in range(n):
        if not math.isnan(out[i]) and out[i] != 0.0:
            c += 1
    for i in range(n):
        out[i] = 0.0 if (math.isnan(out[i]) or c == 0) else out[i] * gross / c


@njit(cache=True)
def zscore_row(sig, gross, out):  # type: ignore[no-untyped-def]
    """ "zscore": cross-sectional z-scores scaled to ``gross`` (0 without a spread)."""
    n = sig.shape[0]
    s = 0.0
    c = 0
    lo = math.inf
    hi = -math.inf
    for i in range(n):
        x = sig[i]
        if not math.isnan(x):
            s += x
            c += 1
            lo = min(lo, x)
            hi = max(hi, x)
    if c < 2 or lo == hi:  # no cross-section, or all equal: no opinion
        out[:] = 0.0
        return
    mu = s / c
    ss = 0.0
    for i in range(n):
        if not math.isnan(sig[i]):
            ss += (sig[i] - mu) * (sig[i] - mu)
    sd = math.sqrt(ss / c)
    if not sd > 0.0:  # spread below float resolution (e.g. subnormal signals)
        out[:] = 0.0
        return
    for i in range(n):
        out[i] = math.nan if math.isnan(sig[i]) else (sig[i] - mu) / sd
    _scale_to_gross(out, gross, True)


# One range driver per scheme, chosen in Python (``engine.weights``): a driver that branched on
# the scheme would compile all five row kernels on first use (measured 4.4-6.0 s, against
# 2.7-2.9 s for the rank driver alone). Each takes the same arguments. They stay four explicit
# loops rather than one driver taking the row kernel as an argument: numba compiles such a
# driver once per function passed anyway, and its on-disk cache does not keep a function that
# takes another compiled function as an argument (tried: it compiled again in a new process).


@njit(cache=True, nogil=True)
def rank_rows(signal, gross, quantile, neutral, out, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``lo:hi`` of (T, N) signals -> the same rows of ``out`` by ``rank_row``."""
    for t in range(lo, hi):
        rank_row(signal[t], gross, out[t])


@njit(cache=True, nogil=True)
def quantile_rows(signal, gross, quantile, neutral, out, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``lo:hi`` of (T, N) signals -> the same rows of ``out`` by ``quantile_row``."""
    for t in range(lo, hi):
        quantile_row(signal[t], gross, quantile, neutral, out[t])


@njit(cache=True, nogil=True)
def sign_rows(signal, gross, quantile, neutral, out, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``lo:hi`` of (T, N) signals -> the same rows of ``out`` by ``sign_row``."""
    for t in range(lo, hi):
        sign_row(signal[t], gross, out[t])


@njit(cache=True, nogil=True)
def zscore_rows(signal, gross, quantile, neutral, out, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``lo:hi`` of (T, N) signals -> the same rows of ``out`` by ``zscore_row``."""
    for t in range(lo, hi):
        zscore_row(signal[t], gross, out[t])


@njit(cache=True, nogil=True)
def raw_rows(signal, gross, quantile, neutral, out, lo, hi):  # type: ignore[no-untyped-def]
    """ "raw": rows ``lo:hi`` of the signal itself, NaN as 0."""
    n = signal.shape[1]
    for t in range(lo, hi):
        for i in range(n):
            out[t, i] = 0.0 if math.isnan(signal[t, i]) else signal[t, i]
