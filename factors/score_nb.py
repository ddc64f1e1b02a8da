"""Numba kernels of factor scoring: per-timestamp cross-sectional statistics.

Every kernel takes C-contiguous float64 arrays with NaN = missing and works on the
*pairwise-complete* observations of one row (assets where both the factor and the forward
return are finite). The (T, N) kernels fill a range of rows of outputs that their Python
caller allocates (``nogil``: the caller runs ranges on ``engine.pool``'s threads); each
range allocates its scratch vectors of length N once.

Conventions shared with ``factors.score``:
- ranks are average ranks 1..n (ties share the mean of their positions), as
  ``scipy.stats.rankdata(method="average")``;
- a correlation with fewer than ``min_obs`` pairs, or with a constant side, is NaN;
- quantile bins replicate ``pandas.qcut(x, q, labels=False)`` on the valid values: edges are
  the linear-interpolated sample quantiles at the probabilities ``qk`` (passed in, computed by
  the Python API exactly as pandas does) and a value equal to an interior edge falls in the
  lower bin.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from alphaforge.engine.rank_nb import argsort


@njit(cache=True)
def average_ranks(x, n, out):  # type: ignore[no-untyped-def]
    """Average ranks (1-based) of the first n finite values of x, written into out[:n].

    Equivalent to: ``scipy.stats.rankdata(x[:n], method="average")``.
    """
    order = argsort(x, n, np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64))
    i = 0
    while i < n:
        j = i
        while j + 1 < n and x[order[j + 1]] == x[order[i]]:
            j += 1
        r = 0.5 * (i + j) + 1.0
        for k in range(i, j + 1):
            out[order[k]] = r
        i = j + 1


@njit(cache=True)
def pearson_prefix(x, y, n):  # type: ignore[no-untyped-def]
    """Pearson correlation of x[:n] and y[:n] (all finite); NaN when n < 2 or constant.

    Equivalent to: ``scipy.stats.pearsonr(x[:n], y[:n])[0]`` (two-pass, centred sums).
    """
    if n < 2:
        return np.nan
    mx = 0.0
    my = 0.0
    for i in range(n):
        mx += x[i]
        my += y[i]
    mx /= n
    my /= n
    sxy = 0.0
    sxx = 0.0
    syy = 0.0
    for i in range(n):
        dx = x[i] - mx
        dy = y[i] - my
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
    if sxx <= 0.0 or syy <= 0.0:
        return np.nan
    c = sxy / np.sqrt(sxx * syy)
    return min(1.0, max(-1.0, c))


@njit(cache=True)
def gather_pairs(f_row, r_row, fx, ry):  # type: ignore[no-untyped-def]
    """Copy the pairwise-complete values of two rows into fx, ry; return their count."""
    n = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
    for j in range(f_row.shape[0]):
        a = f_row[j]
        b = r_row[j]
        if np.isfinite(a) and np.isfinite(b):
            fx[n] = a
            ry[n] = b
            n += 1
    return n


@njit(cache=True)
def row_corr(f_row, r_row, rank, min_obs):  # type: ignore[no-untyped-def]
    """Cross-sectional Pearson (rank=False) or Spearman (rank=True) correlation of one row.

    Equivalent to: ``scipy.stats.spearmanr(f, r, nan_policy="omit")`` on pairwise-complete
    values (Spearman = Pearson of average ranks).
    """
    m = f_row.shape[0]
    fx = np.empty(m)
    ry = np.empty(m)
    n = gather_pairs(f_row, r_row, fx, ry)
    if n < min_obs or n < 2:
        return np.nan
    if rank:
        rf = np.empty(n)
        rr = np.empty(n)
        average_ranks(fx, n, rf)
        average_ranks(ry, n, rr)
        return pearson_prefix(rf, rr, n)
    return pearson_prefix(fx, ry, n)


@njit(cache=True)
def qcut_edges(sorted_x, n, qk, edges):  # type: ignore[no-untyped-def]
    """Quantile edges of sorted_x[:n] at probabilities qk, numpy 'linear' method.

    Equivalent to: ``np.quantile(sorted_x[:n], qk)`` bit for bit (same virtual index,
    the same two-sided lerp), which is what ``pandas.qcut`` uses.
    """
    for k in range(qk.shape[0]):
        vi = (n - 1) * qk[k]
        if vi >= n - 1:
            edges[k] = sorted_x[n - 1]
            continue
        if vi < 0:
            edges[k] = sorted_x[0]
            continue
        lo = int(np.floor(vi))
        g = vi - lo
        a = sorted_x[lo]
        b = sorted_x[lo + 1]
        d = b - a
        edges[k] = b - d * (1.0 - g) if g >= 0.5 else a + d * g


@njit(cache=True, nogil=True)
def cs_bins(f, order, qk, min_obs, out, lo, hi):  # type: ignore[no-untyped-def]
    """Quantile bins of rows ``lo:hi`` of a (T, N) factor into out (T, N) int64, which the
    caller fills with -1 (it stays where f is NaN).

    ``order[t]`` sorts f[t] ascending (non-finite values anywhere; they are skipped). Rows
    with fewer than ``min_obs`` finite values, or non-unique edges (pandas raises), stay -1.

    Equivalent to: ``pandas.qcut(f[t].dropna(), q, labels=False)`` per row.
    """
    m = f.shape[1]
    q = qk.shape[0] - 1
    s = np.empty(m)
    idx = np.empty(m, dtype=np.int64)
    edges = np.empty(q + 1)
    bins = np.empty(m, dtype=np.int64)
    for t in range(lo, hi):
        n = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
        for i in range(m):
            j = order[t, i]
            if np.isfinite(f[t, j]):
                s[n] = f[t, j]
                idx[n] = j
                n += 1
        if n < min_obs or n < 2:
            continue
        qcut_edges(s, n, qk, edges)
        unique = True
        for k in range(q):
            if not edges[k] < edges[k + 1]:
                unique = False
        if not unique:
            continue
        sorted_bins(s, n, edges, bins)
        for i in range(n):
            out[t, idx[i]] = bins[i]


@njit(cache=True)
def sorted_ranks(s, n, out):  # type: ignore[no-untyped-def]
    """Average ranks (1-based) of an ascending-sorted s[:n] into out[:n] (ties share)."""
    i = 0
    while i < n:
        j = i
        while j + 1 < n and s[j + 1] == s[i]:
            j += 1
        r = 0.5 * (i + j) + 1.0
        for k in range(i, j + 1):
            out[k] = r
        i = j + 1


@njit(cache=True)
def sorted_bins(s, n, edges, bins):  # type: ignore[no-untyped-def]
    """qcut bins of an ascending-sorted s[:n] given unique edges (q+1,) into bins[:n]."""
    q = edges.shape[0] - 1
    b = 0
    for i in range(n):
        while b < q - 1 and s[i] > edges[b + 1]:
            b += 1
        bins[i] = b


@njit(cache=True)
def walk_ranks(vals, order, f_row, slot, out):  # type: ignore[no-untyped-def]
    """Average ranks of vals over the assets finite in both vals and f_row, by a walk.

    ``order`` sorts ``vals`` ascending (non-finite values anywhere: they are skipped);
    ``slot[j]`` is the position of asset j in the caller's pairwise-complete arrays, and
    out[slot[j]] receives the rank of j.
    """
    m = order.shape[0]
    k = 0  # rank position among the pairwise-complete assets
    i = 0
    while i < m:
        j = order[i]
        v = vals[j]
        if not np.isfinite(v) or not np.isfinite(f_row[j]):
            i += 1
            continue
        # the run of equal values starting at i (skipping assets without a factor value)
        e = i
        cnt = 1
        while e + 1 < m and vals[order[e + 1]] == v:
            e += 1
            if np.isfinite(f_row[order[e]]):
                cnt += 1
        r = k + 0.5 * (cnt - 1) + 1.0
        for u in range(i, e + 1):
            if np.isfinite(f_row[order[u]]):
                out[slot[order[u]]] = r
        k += cnt
        i = e + 1


@njit(cache=True)
def pearson_and_rank(x, y, rx, ry, n):  # type: ignore[no-untyped-def]
    """(Pearson of x, y; Pearson of their ranks rx, ry) over [:n] in one centred pass.

    Average ranks of n values always have mean (n + 1) / 2, so the rank correlation needs
    no mean pass. NaN for a constant side.
    """
    mx = 0.0
    my = 0.0
    for i in range(n):
        mx += x[i]
        my += y[i]
    mx /= n
    my /= n
    c = 0.5 * (n + 1)
    sxy = 0.0
    sxx = 0.0
    syy = 0.0
    rxy = 0.0
    rxx = 0.0
    ryy = 0.0
    for i in range(n):
        dx = x[i] - mx
        dy = y[i] - my
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
        ex = rx[i] - c
        ey = ry[i] - c
        rxy += ex * ey
        rxx += ex * ex
        ryy += ey * ey
    p = np.nan
    if sxx > 0.0 and syy > 0.0:
        p = min(1.0, max(-1.0, sxy / np.sqrt(sxx * syy)))
    r = np.nan
    if rxx > 0.0 and ryy > 0.0:
        r = min(1.0, max(-1.0, rxy / np.sqrt(rxx * ryy)))
    return p, r


@njit(cache=True, nogil=True)
def cs_ic_quantiles(  # type: ignore[no-untyped-def]
    f, fwd, f_order, r_order, qk, min_obs, demean, ic, ric, qmean, qcount, lo, hi
):
    """IC, RankIC and quantile mean returns for every horizon at timestamps ``lo:hi``.

    The sorting is done before the call (numpy's vectorized argsort is several times faster
    than a sort compiled here): ``f_order[t]`` sorts f[t] and ``r_order[h, t]`` sorts
    fwd[h, t] ascending (non-finite values anywhere: they are skipped). The kernel only
    walks those orders, so factor ranks, forward-return ranks and qcut bins of the
    pairwise-complete assets need no sort.

    Args:
        f: (T, N) factor.
        fwd: (H, T, N) forward returns per horizon.
        f_order: (T, N) int64 argsort of each factor row.
        r_order: (H, T, N) int64 argsort of each forward-return row.
        qk: (q+1,) quantile probabilities (pandas.qcut convention).
        min_obs: fewest pairwise-complete assets for a row to count.
        demean: subtract the row's mean forward return before averaging by quantile
            (alphalens ``demeaned=True``).

    Outputs (float64, allocated by the caller): ic (H, T), rank_ic (H, T) and qmean (H, T, q)
    filled with NaN, qcount (H, T, q) with zeros. Bins are formed on the pairwise-complete
    assets of each (horizon, row).
    """
    h_len, _t_len, m = fwd.shape
    q = qk.shape[0] - 1
    sx = np.empty(m)
    ry = np.empty(m)
    rf = np.empty(m)
    rr = np.empty(m)
    slot = np.empty(m, dtype=np.int64)
    bins = np.empty(m, dtype=np.int64)
    edges = np.empty(q + 1)
    for t in range(lo, hi):
        for h in range(h_len):
            n = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
            for i in range(m):
                j = f_order[t, i]
                a = f[t, j]
                if not np.isfinite(a):
                    continue
                v = fwd[h, t, j]
                if np.isfinite(v):
                    sx[n] = a
                    ry[n] = v
                    slot[j] = n
                    n += 1
            if n < min_obs or n < 2:
                continue
            sorted_ranks(sx, n, rf)
            walk_ranks(fwd[h, t], r_order[h, t], f[t], slot, rr)
            ic[h, t], ric[h, t] = pearson_and_rank(sx, ry, rf, rr, n)
            qcut_edges(sx, n, qk, edges)
            unique = True
            for k in range(q):
                if not edges[k] < edges[k + 1]:
                    unique = False
            if not unique:
                continue
            sorted_bins(sx, n, edges, bins)
            mu = 0.0
            if demean:
                for i in range(n):
                    mu += ry[i]
                mu /= n
            for k in range(q):
                qmean[h, t, k] = 0.0
            for i in range(n):
                qmean[h, t, bins[i]] += ry[i] - mu
                qcount[h, t, bins[i]] += 1.0
            for k in range(q):
                if qcount[h, t, k] > 0:
                    qmean[h, t, k] /= qcount[h, t, k]
                else:
                    qmean[h, t, k] = np.nan
