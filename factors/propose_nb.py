"""Kernels of the proposal loop's redundancy check: row ranks computed once per factor make
each candidate-vs-library rank correlation one pass of products.

Spearman correlation is the Pearson correlation of average ranks. Each factor is kept as its
row ranks (float32: average ranks are multiples of 0.5, exact in float32 below 2**23 assets)
and a per-row ``1 / sqrt(sum((r - mean)**2))``. Two rows with the same finite cells then have
``corr = (sum(ra * rb) - m * ((m + 1) / 2)**2) * scale_a * scale_b``, where the sums of
half-integer products are exact in float64. Rows whose finite cells differ are re-ranked on
their pairwise-complete cells (a counting sort of the ranks, which are strictly increasing
in the values), so the result equals ``ic.cs_ic(a, b, "spearman", min_obs)``.

The (T, N) kernels fill a range of rows (or of factors) of outputs allocated by their Python
caller (``nogil``: ``factors.propose_score`` runs ranges on ``engine.pool``'s threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from alphaforge.engine.rank_nb import count_ranks
from alphaforge.factors import score_nb


@njit(cache=True, nogil=True)
def ranks_from_order(x, order, min_obs, ranks, scale, lo, hi):  # type: ignore[no-untyped-def]
    """Row ranks into ``ranks`` (T, N) float32 (NaN = not finite) and per-row scales into
    ``scale`` (T,) float64 of rows ``lo:hi`` of x, given ``order``, the row-wise argsort of
    x with the non-finite cells last (``ic.argsort_rows``). The scale is 1 / sqrt(sum of
    squared centred ranks), NaN when fewer than max(min_obs, 2) values are finite or all of
    them tie.

    Equivalent to: ``scipy.stats.rankdata(x[t][finite])`` per row.
    """
    n = x.shape[1]
    for t in range(lo, hi):
        m = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
        for i in range(n):
            ranks[t, i] = np.nan
            if np.isfinite(x[t, i]):
                m += 1
        ss = 0.0
        i = 0
        while i < m:
            j = i
            while j + 1 < m and x[t, order[t, j + 1]] == x[t, order[t, i]]:
                j += 1
            r = 0.5 * (i + j) + 1.0
            for k in range(i, j + 1):
                ranks[t, order[t, k]] = r
                ss += r * r
            i = j + 1
        c = 0.5 * (m + 1)
        ss -= m * c * c
        scale[t] = np.nan if (m < min_obs or m < 2 or ss <= 0.0) else 1.0 / np.sqrt(ss)


@njit(cache=True, nogil=True)
def ranks_by_count(x, min_obs, ranks, scale, lo, hi):  # type: ignore[no-untyped-def]
    """``ranks_from_order`` without the sort, for short rows (up to
    ``engine.rank_nb.COUNT_ROW`` values): each finite cell's average rank is counted among the
    row's finite values (``count_ranks``). The ranks are the same half-integers, and their
    squares sum exactly in float64 in any order, so ranks and scales equal the sorted path's
    bit for bit."""
    n = x.shape[1]
    vals = np.empty(n)
    counted = np.empty(n)
    for t in range(lo, hi):
        m = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
        for i in range(n):
            v = x[t, i]
            if np.isfinite(v):
                vals[m] = v
                m += 1
        count_ranks(vals, m, counted)  # the finite cells' ranks, in cell order
        ss = 0.0
        k = int(np.int64(0))
        for i in range(n):
            if np.isfinite(x[t, i]):
                r = counted[k]
                k += 1
                ranks[t, i] = r
                ss += r * r
            else:
                ranks[t, i] = np.nan
        c = 0.5 * (m + 1)
        ss -= m * c * c
        scale[t] = np.nan if (m < min_obs or m < 2 or ss <= 0.0) else 1.0 / np.sqrt(ss)


@njit(cache=True)
def rerank(r_row, keep, bucket, out):  # type: ignore[no-untyped-def]
    """Average ranks, among the cells where ``keep``, of cells given by their ranks ``r_row``
    (half-integers in [1, N]): a counting sort on 2 * rank, no comparison sort. ``bucket``
    is scratch of length >= 2 * N + 2. Writes the kept cells' new ranks into out[:m] in
    cell order; returns m."""
    n = r_row.shape[0]
    bucket[:] = 0.0
    for i in range(n):
        if keep[i]:
            bucket[int(2.0 * r_row[i])] += 1.0
    before = 0.0
    for b in range(bucket.shape[0]):
        k = bucket[b]
        if k > 0.0:
            bucket[b] = before + 0.5 * (k + 1.0)
            before += k
    m = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
    for i in range(n):
        if keep[i]:
            out[m] = bucket[int(2.0 * r_row[i])]
            m += 1
    return m


@njit(cache=True)
def scratch(n):  # type: ignore[no-untyped-def]
    """Work buffers of ``intersect_corr`` for rows of n cells: (keep, xa, xb, bucket)."""
    return np.empty(n, dtype=np.bool_), np.empty(n), np.empty(n), np.empty(2 * n + 2)


@njit(cache=True)
def intersect_corr(ra_row, rb_row, min_obs, keep, xa, xb, bucket):  # type: ignore[no-untyped-def]
    """Spearman correlation of two rows on their pairwise-complete cells, from their ranks
    (buffers from ``scratch``).

    Equivalent to: ``score_nb.row_corr(a, b, True, min_obs)`` on the original values (ranks
    are strictly increasing in the values, so re-ranking a subset of ranks gives the subset's
    ranks).
    """
    n = ra_row.shape[0]
    m = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
    for i in range(n):
        keep[i] = np.isfinite(ra_row[i]) and np.isfinite(rb_row[i])
        m += keep[i]
    if m < min_obs or m < 2:
        return np.nan
    rerank(ra_row, keep, bucket, xa)
    rerank(rb_row, keep, bucket, xb)
    return score_nb.pearson_prefix(xa, xb, m)


@njit(cache=True)
def row_rank_corr(ra_row, sa_t, rb_row, sb_t, min_obs, buf):  # type: ignore[no-untyped-def]
    """Spearman correlation of one row of two ranked factors (see module docstring); ``buf``
    is ``scratch(N)``."""
    n = ra_row.shape[0]
    cnt = 0
    sxy = 0.0
    for i in range(n):
        fa = np.isfinite(ra_row[i])
        if fa != np.isfinite(rb_row[i]):
            return intersect_corr(ra_row, rb_row, min_obs, buf[0], buf[1], buf[2], buf[3])
        if fa:
            sxy += np.float64(ra_row[i]) * np.float64(rb_row[i])
            cnt += 1
    if not (np.isfinite(sa_t) and np.isfinite(sb_t)):
        return np.nan
    c = 0.5 * (cnt + 1)
    return min(1.0, max(-1.0, (sxy - cnt * c * c) * sa_t * sb_t))


@njit(cache=True, nogil=True)
def rank_corr_rows(ra, sa, rb, sb, min_obs, out, lo, hi):  # type: ignore[no-untyped-def]
    """Per-row Spearman correlation of two factors given as ``ranks_from_order`` outputs,
    rows ``lo:hi`` into out (T,).

    Equivalent to: ``score_nb.row_corr(a[t], b[t], True, min_obs)`` per row of the original
    values.
    """
    buf = scratch(ra.shape[1])
    for t in range(lo, hi):
        out[t] = row_rank_corr(ra[t], sa[t], rb[t], sb[t], min_obs, buf)


@njit(cache=True, nogil=True)
def rank_corr_means(ra, sa, rbs, sbs, min_obs, out, lo, hi):  # type: ignore[no-untyped-def]
    """Mean over rows of the Spearman correlation of one ranked factor (ra (T, N), sa (T,))
    with each of the ranked factors ``lo:hi`` of rbs (L, T, N), sbs (L, T) into out (L,);
    NaN when no row has a value.

    Equivalent to: ``np.nanmean(rank_corr_rows(ra, sa, rbs[k], sbs[k], min_obs))`` per k.
    """
    t_len = sbs.shape[1]
    buf = scratch(ra.shape[1])
    for k in range(lo, hi):
        total = 0.0
        cnt = 0
        for t in range(t_len):
            c = row_rank_corr(ra[t], sa[t], rbs[k, t], sbs[k, t], min_obs, buf)
            if np.isfinite(c):
                total += c
                cnt += 1
        out[k] = total / cnt if cnt else np.nan
