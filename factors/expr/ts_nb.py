"""Numba time-series kernels of the expression language over (T, N) float64 arrays.

Arrays are C-ordered (T, N): one row holds every asset. A kernel walks the rows forward and
keeps per-column state for a block of adjacent columns, so memory is read row by row (cache
friendly). Each kernel here is ``nogil`` and fills a range of rows, or of ``BLOCK``-column
units, of a preallocated output; ``factors.expr.kernels`` runs the ranges on threads. A thread
walks its whole range of columns as one block of up to ``WIDE`` columns (``_width``). Wide
blocks matter: a 16-column block reads 128 bytes of each 800-byte row of a 100-asset panel, so
every few rows is a new memory page, and rolling sums, queues and rings ran 1.3-2.4x slower
than over 50-100 columns. Every output at row t is computed from rows <= t only, so values at
or before t are bit-identical whatever follows (lookahead checks rely on it); the blocks only
group columns, so each column's values do not depend on them either.

NaN policy: the output at row t is NaN until the window is full (t < w - 1; t < d for lags) and
whenever any value in the window is not finite (pandas ``rolling(w)``, ``min_periods=w``);
``ts_ewm`` skips non-finite inputs (NaN on those rows) and is NaN until ``span`` values.
Op codes mirror ``factors/expr/ops.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from alphaforge.engine.rank_nb import count_rank

DELAY, DELTA, PCT = 0, 1, 2
MEAN, SUM, STD, ZSCORE, TMIN, TMAX, ARGMIN, ARGMAX, RANK, SKEW, PROD, DECAY = range(12)
WINDOW_CODES = tuple(range(12))
"""Every window statistic code (``window_kernel`` maps each to its family's kernel)."""
CORR, COV = 0, 1

BLOCK = 8
"""Columns per unit of a thread's range (one cache line of float64)."""
WIDE = 256
"""Most columns walked together (per-column state of a block stays in L1/L2)."""
SCAN_W = 40
"""Longest window whose min/max/argmin/argmax scan the window row by row, all columns at
once, instead of keeping a queue per column (the scan is O(w) per cell; on 100 x 100,000
it took 15-65 ms for w = 3-12 against the queue's 160-200 ms, and broke even near 40-60)."""
RANK_SCAN_W = 96
"""Longest window whose rank counts over the window row by row, all columns at once,
instead of over a ring per column (16-38 ms for w = 3-12 against 70-215 ms; even near
100)."""
RING_CELLS = 1 << 17
"""Most window slots (w x columns) of one block's ring (1 MB of float64)."""
_NAN = np.nan
_RESYNC = 256  # rolling sums are recomputed from the window at least this often (drift control)
_NEAR_ZERO = 1e-8  # a running variance this small relative to the values' scale is recomputed
_SPIKE = 20.0
"""The running sums (moments, pairs, skewness) re-anchor a column when the squared deviation
of the value that just left the window, or of the anchor, from the window's values exceeds
``_SPIKE * w`` times the window's variance (for values inside the window it is at most
``4 * w`` times), so the residue a large value leaves in the sums never dominates a quiet
window."""


@njit(cache=True, nogil=True)
def ts_shift_rows(x: np.ndarray, out: np.ndarray, d: int, code: int, lo: int, hi: int) -> None:
    """Lagged ops on rows lo..hi-1 into ``out``: DELAY x[t-d], DELTA x[t]-x[t-d],
    PCT x[t]/x[t-d]-1 (``factors.expr.kernels.ts_shift`` runs the row ranges).

    Equivalent to: ``df.shift(d)``, ``df.diff(d)``, ``df / df.shift(d) - 1`` (NaN where the
    lagged value is 0; non-finite results NaN). NaN for t < d.
    """
    n_cols = x.shape[1]
    for t in range(lo, hi):
        for j in range(n_cols):
            if t < d:
                out[t, j] = _NAN
                continue
            v, p = x[t, j], x[t - d, j]
            if code == DELAY:
                out[t, j] = p
            elif code == DELTA:
                r = v - p
                out[t, j] = r if math.isfinite(r) else _NAN
            else:
                r = v / p - 1.0 if p != 0.0 else _NAN
                out[t, j] = r if math.isfinite(r) else _NAN


@njit(cache=True, error_model="numpy")
def _resync(x: np.ndarray, t: int, j: int, w: int) -> tuple[float, float, float]:
    """(ref, sum, sum of squares) of x[t-w+1..t, j] - ref with ref the oldest value."""
    ref = x[t - w + 1, j]
    s = 0.0
    ss = 0.0
    for k in range(t - w + 1, t + 1):
        s += x[k, j] - ref
        ss += (x[k, j] - ref) * (x[k, j] - ref)
    return ref, s, ss


@njit(cache=True, error_model="numpy")
def _exact_var(x: np.ndarray, t: int, j: int, w: int) -> float:
    """Two-pass sample variance of x[t-w+1..t, j]."""
    mean = 0.0
    for k in range(t - w + 1, t + 1):
        mean += x[k, j]
    mean /= w
    acc = 0.0
    for k in range(t - w + 1, t + 1):
        acc += (x[k, j] - mean) * (x[k, j] - mean)
    return acc / (w - 1)


# Rows of the moment state ``st`` of ``_moments_block`` (one column per block column): the
# anchor, the sums of d = x - ref and d^2, the window's count of non-finite values, 1.0 when
# the column missed a re-anchoring, and scratch.
_REF, _S, _SS, _NBAD, _STALE, _ACC_S, _ACC_SS = range(7)


@njit(cache=True, error_model="numpy")
def _moments_rows(x: np.ndarray, t: int, j0: int, w: int, st: np.ndarray) -> None:
    """Re-anchor every column of the block whose window at row t is all finite: ref = the
    window's oldest value, the sums of d = x - ref and d^2 over the window.

    Walks the window row by row (contiguous reads); each column's sums add in the same order
    as ``_resync``, so the result is the same bits. A column whose window holds a non-finite
    value keeps its sums and becomes stale.
    """
    nb = st.shape[1]
    ref, s, ss, nbad, stale = st[_REF], st[_S], st[_SS], st[_NBAD], st[_STALE]
    acc_s, acc_ss = st[_ACC_S], st[_ACC_SS]
    old = x[t - w + 1, j0 : j0 + nb]
    for b in range(nb):
        acc_s[b] = 0.0
        acc_ss[b] = 0.0
    for k in range(t - w + 1, t + 1):
        row = x[k, j0 : j0 + nb]
        for b in range(nb):
            d = row[b] - old[b]
            acc_s[b] += d
            acc_ss[b] += d * d
    for b in range(nb):
        good = nbad[b] == 0.0
        ref[b] = old[b] if good else ref[b]
        s[b] = acc_s[b] if good else s[b]
        ss[b] = acc_ss[b] if good else ss[b]
        stale[b] = 0.0 if good else 1.0


@njit(cache=True, error_model="numpy")
def _moments_fix(x: np.ndarray, t: int, j: int, b: int, w: int, code: int, st: np.ndarray,
                 low: bool) -> float:  # fmt: skip
    """Re-anchor column j (block column b) at row t and return its statistic; a window whose
    variance is near zero relative to its scale (``low``, or after re-anchoring) gets the
    exact two-pass variance (a constant window gives exactly 0)."""
    ref, s, ss = _resync(x, t, j, w)
    st[_REF, b], st[_S, b], st[_SS, b], st[_STALE, b] = ref, s, ss, 0.0
    mean_d = s / w
    if code == MEAN:
        return ref + mean_d
    if code == SUM:
        return s + w * ref
    var = (ss - s * mean_d) / (w - 1)
    if low or var <= _NEAR_ZERO * (ss / w + ref * ref):
        var = max(0.0, var)
        var = _exact_var(x, t, j, w) if var > 0.0 else 0.0
    sd = math.sqrt(var)
    if code == STD:
        return sd
    return (x[t, j] - ref - mean_d) / sd if sd > 0.0 else _NAN


@njit(cache=True, error_model="numpy")
def _moments_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int, code: int) -> None:
    """MEAN, SUM, STD, ZSCORE of columns j0..j1-1 by running sums of d = x - ref.

    Each row is one pass over the block's columns through 1-D row views, without branches or
    a float sum across columns (LLVM vectorises it; indexing the 2-D arrays cell by cell, a
    branch or a float reduction each stopped it: 3x slower). Rounding stays small by
    re-anchoring: every column on rows w-1, w-1+p, w-1+2p, ... with p = min(w, ``_RESYNC``)
    (``_moments_rows``; a schedule of the row only, so a column's values do not depend on
    its block), and one column on its own (``_moments_fix``) at its first full finite window
    after it missed a re-anchoring, when a value far from the window's mean left it or its
    anchor is far from it (``_SPIKE``: a spike's rounding residue, or an anchor that was the
    spike, would dominate the sums), and where its variance is near
    zero. Within rounding of the exact statistic of each window, relative to that window's
    values (``tests/factors/test_expr_running_sums.py``).
    """
    n_rows = x.shape[0]
    nb = j1 - j0
    st = np.zeros((7, nb))
    ref, s, ss, nbad, stale = st[_REF], st[_S], st[_SS], st[_NBAD], st[_STALE]
    fix = np.zeros(nb, dtype=np.int64)  # 1: re-anchor column b, 2: also near-zero variance
    period = min(w, _RESYNC)
    spike = _SPIKE * w
    for t in range(n_rows):
        xr = x[t, j0:j1]
        orow = out[t, j0:j1]
        gone = t >= w  # row t - w leaves the window (x - 0.0 is x: the same bits before)
        xo = x[max(0, t - w), j0:j1]
        for b in range(nb):
            v, o = xr[b], xo[b]
            fv, fo = math.isfinite(v), math.isfinite(o)
            dv = v - ref[b] if fv else 0.0
            do = o - ref[b] if fo & gone else 0.0
            s[b] = s[b] + dv - do
            ss[b] = ss[b] + dv * dv - do * do
            nbad[b] += (0.0 if fv else 1.0) - (1.0 if gone & ~fo else 0.0)
        if t < w - 1:
            for b in range(nb):
                orow[b] = _NAN
            continue
        fresh = (t - w + 1) % period == 0
        if fresh:
            _moments_rows(x, t, j0, w, st)
        # Re-anchor a column on its own (flag and count without branches; an integer count,
        # since a float sum across the columns would not vectorise) when it is stale, when
        # the value that just left the window (``xo``, finite, none on a re-anchored row) or
        # the anchor lies more than sqrt(_SPIKE * w) of the window's deviations from its mean
        # (its rounding residue would dominate), or (STD, ZSCORE) when the variance is near 0.
        check = 0.0 if fresh or t < w else 1.0  # a value left since the anchoring
        nfix = np.int64(0)
        if code <= SUM:  # MEAN, SUM
            for b in range(nb):
                bad = nbad[b] > 0.0
                mean_d = s[b] / w
                var = (ss[b] - s[b] * mean_d) / w
                do = (xo[b] - ref[b]) * check
                d2 = do * do if math.isfinite(do) else 0.0
                r = ref[b] + mean_d if code == MEAN else s[b] + w * ref[b]
                orow[b] = _NAN if bad else r
                far = (d2 > spike * var) | (mean_d * mean_d > spike * var)
                f = np.int64(((stale[b] > 0.0) | far) & ~bad)
                fix[b] = f
                nfix += f
                stale[b] = 1.0 if bad else stale[b]
        else:
            for b in range(nb):
                bad = nbad[b] > 0.0
                mean_d = s[b] / w
                var = (ss[b] - s[b] * mean_d) / (w - 1)
                low = var <= _NEAR_ZERO * (ss[b] / w + ref[b] * ref[b])
                do = (xo[b] - ref[b]) * check
                d2 = do * do if math.isfinite(do) else 0.0
                sd = math.sqrt(var)
                r = sd if code == STD else (xr[b] - ref[b] - mean_d) / sd
                orow[b] = _NAN if bad else r
                far = (d2 > spike * var) | (mean_d * mean_d > spike * var)
                need = ((stale[b] > 0.0) | low | far) & ~bad
                f = np.int64(need) + np.int64(low & need)
                fix[b] = f
                nfix += f
                stale[b] = 1.0 if bad else stale[b]
        if nfix > 0:
            for b in range(nb):
                if fix[b] > 0:
                    orow[b] = _moments_fix(x, t, j0 + b, b, w, code, st, fix[b] > 1)


# Rows of the skewness state ``st`` of ``_skew_block`` (one column per block column): the
# anchor, the sums of d = x - ref, d^2, d^3, the window's count of non-finite values, 1.0 when
# the column missed a re-anchoring, and scratch.
_K_REF, _K_S1, _K_S2, _K_S3, _K_BAD, _K_STALE = range(6)
_SKEW_ROWS = 9


@njit(cache=True, error_model="numpy")
def _skew_resync(x: np.ndarray, t: int, j: int, b: int, w: int, st: np.ndarray) -> None:
    """Re-anchor column j (block column b) over rows t-w+1..t around its oldest value."""
    ref = x[t - w + 1, j]
    s1 = s2 = s3 = 0.0
    for k in range(t - w + 1, t + 1):
        d = x[k, j] - ref
        dd = d * d
        s1 += d
        s2 += dd
        s3 += dd * d
    st[_K_REF, b], st[_K_S1, b], st[_K_S2, b], st[_K_S3, b] = ref, s1, s2, s3
    st[_K_STALE, b] = 0.0


@njit(cache=True, error_model="numpy")
def _skew_rows(x: np.ndarray, t: int, j0: int, w: int, st: np.ndarray) -> None:
    """Re-anchor every column of the block whose window at row t is all finite (rows outer,
    contiguous reads; the same sums in the same order as ``_skew_resync``)."""
    nb = st.shape[1]
    acc = st[_K_STALE + 1 : _K_STALE + 4]
    old = x[t - w + 1, j0 : j0 + nb]
    acc[:, :] = 0.0
    for k in range(t - w + 1, t + 1):
        row = x[k, j0 : j0 + nb]
        for b in range(nb):
            d = row[b] - old[b]
            dd = d * d
            acc[0, b] += d
            acc[1, b] += dd
            acc[2, b] += dd * d
    for b in range(nb):
        good = st[_K_BAD, b] == 0.0
        st[_K_REF, b] = old[b] if good else st[_K_REF, b]
        for k in range(3):
            st[_K_S1 + k, b] = acc[k, b] if good else st[_K_S1 + k, b]
        st[_K_STALE, b] = 0.0 if good else 1.0


@njit(cache=True, error_model="numpy")
def _skew_fix(x: np.ndarray, t: int, j: int, b: int, w: int, st: np.ndarray,
              low: bool) -> float:  # fmt: skip
    """Re-anchor column j at row t and return its skewness; a window whose variance is near
    zero relative to its scale (``low``, or after re-anchoring) is computed by two passes
    (``_skew_value``: NaN exactly where the two-pass formula puts it)."""
    _skew_resync(x, t, j, b, w, st)
    e1, e2 = st[_K_S1, b] / w, st[_K_S2, b] / w
    m2 = e2 - e1 * e1
    if low or m2 <= _NEAR_ZERO * (e2 + st[_K_REF, b] * st[_K_REF, b]):
        return _skew_value(x, j, t - w + 1, t)
    m3 = st[_K_S3, b] / w - 3.0 * e1 * e2 + 2.0 * e1 * e1 * e1
    return float(math.sqrt(w * (w - 1.0)) / (w - 2.0) * m3 / (m2 * math.sqrt(m2)))


@njit(cache=True, error_model="numpy")
def _skew_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int) -> None:
    """SKEW (w >= 3) of columns j0..j1-1 by running sums of d, d^2, d^3 with d = x - ref.

    O(1) per cell instead of the window's two passes: the central moments come from the
    sums (m2 = E[d^2] - E[d]^2, m3 = E[d^3] - 3 E[d] E[d^2] + 2 E[d]^3). Built like
    ``_moments_block``: branch-free passes over 1-D row views (vectorised), the sums
    re-anchored around the window's oldest value on rows w-1, w-1+p, ... (p = min(w,
    ``_RESYNC``), ``_skew_rows``), and one column on its own (``_skew_fix``) when it missed a
    re-anchoring, when the value that just left the window or the anchor lies more than
    sqrt(``_SPIKE`` w) of the window's deviations from its mean (a spike's residue in the
    sums of cubes would dominate), and where the variance is near zero (``_NEAR_ZERO``: then
    by two passes, so NaN falls exactly where the two-pass formula puts it). Within 1e-7 of
    the two-pass result (``tests/factors/test_expr_skew.py``), closer than pandas' own rolling
    skew.
    """
    n_rows = x.shape[0]
    nb = j1 - j0
    st = np.zeros((_SKEW_ROWS, nb))
    ref, s1, s2, s3 = st[_K_REF], st[_K_S1], st[_K_S2], st[_K_S3]
    nbad, stale = st[_K_BAD], st[_K_STALE]
    fix = np.zeros(nb, dtype=np.int64)  # 1: re-anchor column b, 2: also near-zero variance
    period = min(w, _RESYNC)
    spike = _SPIKE * w
    scale = math.sqrt(w * (w - 1.0)) / (w - 2.0)
    for t in range(n_rows):
        xr = x[t, j0:j1]
        gone = t >= w  # row t - w leaves the window (x - 0.0 is x: the same bits before)
        xo = x[max(0, t - w), j0:j1]
        for b in range(nb):  # two loops of two stored rows (more stopped the vectorising)
            v, o = xr[b], xo[b]
            fv, fo = math.isfinite(v), math.isfinite(o)
            dv = v - ref[b] if fv else 0.0
            do = o - ref[b] if fo & gone else 0.0
            s1[b] = s1[b] + dv - do
            nbad[b] += (0.0 if fv else 1.0) - (1.0 if gone & ~fo else 0.0)
        for b in range(nb):
            v, o = xr[b], xo[b]
            fv, fo = math.isfinite(v), math.isfinite(o)
            dv = v - ref[b] if fv else 0.0
            do = o - ref[b] if fo & gone else 0.0
            s2[b] = s2[b] + dv * dv - do * do
            s3[b] = s3[b] + dv * dv * dv - do * do * do
        orow = out[t, j0:j1]
        if t < w - 1:
            for b in range(nb):
                orow[b] = _NAN
            continue
        fresh = (t - w + 1) % period == 0
        if fresh:
            _skew_rows(x, t, j0, w, st)
        check = 0.0 if fresh or t < w else 1.0  # a value left since the anchoring
        nfix = np.int64(0)
        for b in range(nb):
            bad = nbad[b] > 0.0
            e1, e2 = s1[b] / w, s2[b] / w
            m2 = e2 - e1 * e1
            low = m2 <= _NEAR_ZERO * (e2 + ref[b] * ref[b])
            m3 = s3[b] / w - 3.0 * e1 * e2 + 2.0 * e1 * e1 * e1
            orow[b] = _NAN if bad else scale * m3 / (m2 * math.sqrt(m2))
            do = (xo[b] - ref[b]) * check
            d2 = do * do if math.isfinite(do) else 0.0
            far = (d2 > spike * m2) | (e1 * e1 > spike * m2)
            need = ((stale[b] > 0.0) | low | far) & ~bad
            f = np.int64(need) + np.int64(low & need)
            fix[b] = f
            nfix += f
            stale[b] = 1.0 if bad else stale[b]
        if nfix > 0:
            for b in range(nb):
                if fix[b] > 0:
                    orow[b] = _skew_fix(x, t, j0 + b, b, w, st, fix[b] > 1)


@njit(cache=True)
def _window_value(x: np.ndarray, j: int, lo: int, hi: int, code: int) -> float:
    """One window statistic over rows lo..hi (inclusive) of column j, all values finite."""
    w = hi - lo + 1
    if code in (TMIN, TMAX, ARGMIN, ARGMAX):
        best = lo
        for k in range(lo + 1, hi + 1):
            if (code in (TMIN, ARGMIN) and x[k, j] < x[best, j]) or (
                code in (TMAX, ARGMAX) and x[k, j] > x[best, j]
            ):
                best = k
        if code in (TMIN, TMAX):
            return float(x[best, j])
        return float(best - lo + 1)
    if code == RANK:
        v = x[hi, j]
        less = 0
        same = 0
        for k in range(lo, hi + 1):
            if x[k, j] < v:
                less += 1
            elif x[k, j] == v:
                same += 1
        return (less + (same + 1) / 2.0) / w
    if code == PROD:
        p = 1.0
        for k in range(lo, hi + 1):
            p *= x[k, j]
        return p if math.isfinite(p) else _NAN
    if code == DECAY:
        num = 0.0
        for k in range(lo, hi + 1):
            num += (k - lo + 1) * x[k, j]
        return num / (w * (w + 1) / 2.0)
    return _skew_value(x, j, lo, hi)


@njit(cache=True)
def _skew_value(x: np.ndarray, j: int, lo: int, hi: int) -> float:
    """SKEW over rows lo..hi (inclusive) of column j, all values finite: the adjusted
    Fisher-Pearson coefficient (pandas rolling skew), by two passes."""
    w = hi - lo + 1
    mean = 0.0
    for k in range(lo, hi + 1):
        mean += x[k, j]
    mean /= w
    m2 = 0.0
    m3 = 0.0
    for k in range(lo, hi + 1):
        d = x[k, j] - mean
        m2 += d * d
        m3 += d * d * d
    m2 /= w
    m3 /= w
    if m2 <= 1e-14 * mean * mean or m2 <= 0.0:
        return _NAN
    return float(math.sqrt(w * (w - 1.0)) * m3 / ((w - 2.0) * m2**1.5))


@njit(cache=True)
def _direct_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int, code: int) -> None:
    """Window statistics computed from the whole window at each row (product, linear decay)."""
    n_rows = x.shape[0]
    nbad = np.zeros(j1 - j0, dtype=np.int64)
    for t in range(n_rows):
        for j in range(j0, j1):
            if not math.isfinite(x[t, j]):
                nbad[j - j0] += 1
            if t >= w and not math.isfinite(x[t - w, j]):
                nbad[j - j0] -= 1
            if t < w - 1 or nbad[j - j0] > 0:
                out[t, j] = _NAN
            else:
                out[t, j] = _window_value(x, j, t - w + 1, t, code)


@njit(cache=True)
def _rank_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int) -> None:
    """RANK of columns j0..j1-1: each column's last ``w`` values kept in a contiguous ring, and
    the rank of x[t] counted over it branch-free (``engine.rank_nb.count_rank``, vectorised).

    The same counts as the window scan of ``_window_value`` (the order of a window does not
    matter to a rank), so the result is identical bit for bit, and 3-4x faster on the
    library's windows (5-32): the scan walked a column of the C-ordered array.
    """
    n_rows = x.shape[0]
    nb = j1 - j0
    if w > n_rows:  # no window fills: all NaN, and no ring sized by a huge w
        out[:, j0:j1] = _NAN
        return
    ring = np.empty((nb, w))
    nbad = np.zeros(nb, dtype=np.int64)
    for t in range(n_rows):
        slot = t % w
        for b in range(nb):
            j = j0 + b
            v = x[t, j]
            if t >= w and not math.isfinite(ring[b, slot]):  # x[t - w] leaves the window
                nbad[b] -= 1
            if not math.isfinite(v):
                nbad[b] += 1
            ring[b, slot] = v
            if t < w - 1 or nbad[b] > 0:
                out[t, j] = _NAN
            else:
                out[t, j] = count_rank(ring[b], w, v) / w


@njit(cache=True)
def _minmax_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int, code: int) -> None:
    """TMIN, TMAX, ARGMIN, ARGMAX of columns j0..j1-1 in amortised O(1) per cell.

    Per column, a monotonic queue of row indices (a ring of ``w`` slots): for a maximum, each
    new row first drops the queued rows whose value is strictly smaller, so the front is the
    earliest row holding the window's maximum: the row a left-to-right scan keeping the first
    strict improvement would pick (identical results, ties included). A non-finite value makes
    every window holding it NaN, so the queue restarts after it.
    """
    n_rows = x.shape[0]
    nb = j1 - j0
    if w > n_rows:  # no window fills: all NaN, and no queue sized by a huge w
        out[:, j0:j1] = _NAN
        return
    ring = np.empty((nb, w), dtype=np.int64)
    head = np.zeros(nb, dtype=np.int64)  # position of the front in the ring
    size = np.zeros(nb, dtype=np.int64)
    last_bad = np.full(nb, -1, dtype=np.int64)  # latest non-finite row per column
    want_max = code in (TMAX, ARGMAX)
    for t in range(n_rows):
        lo = t - w + 1
        for b in range(nb):
            j = j0 + b
            v = x[t, j]
            if not math.isfinite(v):
                last_bad[b] = t
                size[b] = 0
                out[t, j] = _NAN
                continue
            h = head[b]
            n = size[b]
            if n > 0 and ring[b, h] < lo:  # the front left the window (at most one row)
                h = h + 1 if h + 1 < w else 0
                n -= 1
            while n > 0:  # drop dominated rows from the back
                k = h + n - 1
                xb = x[ring[b, k - w if k >= w else k], j]
                if (want_max and xb < v) or (not want_max and xb > v):
                    n -= 1
                else:
                    break
            k = h + n
            ring[b, k - w if k >= w else k] = t
            head[b] = h
            size[b] = n + 1
            if lo < 0 or last_bad[b] >= lo:
                out[t, j] = _NAN
                continue
            best = ring[b, head[b]]
            if code in (TMIN, TMAX):
                out[t, j] = x[best, j]
            else:
                out[t, j] = float(best - lo + 1)


@njit(cache=True, error_model="numpy")
def _bad_counts(x: np.ndarray, t: int, j0: int, w: int, nbad: np.ndarray) -> None:
    """Update ``nbad`` (float counts of non-finite values per block column) for row t
    entering the window and row t - w leaving it."""
    nb = nbad.shape[0]
    xr = x[t, j0 : j0 + nb]
    gone = t >= w
    xo = x[max(0, t - w), j0 : j0 + nb]
    for b in range(nb):
        nbad[b] += (0.0 if math.isfinite(xr[b]) else 1.0) - (
            1.0 if gone and not math.isfinite(xo[b]) else 0.0
        )


@njit(cache=True, error_model="numpy")
def _scan_minmax_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int,
                       code: int) -> None:  # fmt: skip
    """TMIN, TMAX, ARGMIN, ARGMAX of columns j0..j1-1 by scanning each window row by row,
    oldest first, all the block's columns at once (1-D row views, vectorised): O(w) per cell
    but a few vector instructions per row, faster than the queue of ``_minmax_block`` up to
    ``SCAN_W`` rows. A strict comparison keeps the earliest row among ties, as the queue and
    ``_window_value`` do, so the results are the same bits.

    Each step writes a different row of ``st`` than it reads (ping-pong): ``a[b] = v if
    v > a[b] else a[b]`` in place became a masked store, which is microcoded on this AMD CPU
    and made the scan 2-4x slower.
    """
    n_rows = x.shape[0]
    nb = j1 - j0
    st = np.zeros((5, nb))
    nbad = st[4]
    want_max = code in (TMAX, ARGMAX)
    want_pos = code in (ARGMIN, ARGMAX)
    for t in range(n_rows):
        _bad_counts(x, t, j0, w, nbad)
        orow = out[t, j0:j1]
        if t < w - 1:
            for b in range(nb):
                orow[b] = _NAN
            continue
        lo = t - w + 1
        first = x[lo, j0:j1]
        a0 = st[0]
        for b in range(nb):  # a loop: a slice assignment compiles numba's shape-error path
            a0[b] = first[b]
        src = 0
        for k in range(1, w):
            row, a, d = x[lo + k, j0:j1], st[src], st[1 - src]
            if want_max:
                for b in range(nb):
                    d[b] = row[b] if row[b] > a[b] else a[b]
            else:
                for b in range(nb):
                    d[b] = row[b] if row[b] < a[b] else a[b]
            src = 1 - src
        best = st[src]
        if want_pos:  # the earliest row holding the extreme: newest to oldest, last match wins
            st[2, :] = 1.0
            p = 2
            for k in range(w - 1, 0, -1):
                row, a, d = x[lo + k, j0:j1], st[p], st[5 - p]
                kk = k + 1.0
                for b in range(nb):
                    d[b] = kk if row[b] == best[b] else a[b]
                p = 5 - p
            pos = st[p]
            for b in range(nb):
                orow[b] = _NAN if nbad[b] > 0.0 else (1.0 if first[b] == best[b] else pos[b])
        else:
            for b in range(nb):
                orow[b] = _NAN if nbad[b] > 0.0 else best[b]


@njit(cache=True, error_model="numpy")
def _scan_rank_block(x: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int) -> None:
    """RANK of columns j0..j1-1 by counting over each window row by row, all the block's
    columns at once (vectorised): the same counts as ``_rank_block`` and ``_window_value``
    (less + (same + 1) / 2, exact in float64), so the same bits, faster up to
    ``RANK_SCAN_W``."""
    n_rows = x.shape[0]
    nb = j1 - j0
    st = np.zeros((2, nb))
    nbad, cnt = st[0], st[1]
    for t in range(n_rows):
        _bad_counts(x, t, j0, w, nbad)
        orow = out[t, j0:j1]
        if t < w - 1:
            for b in range(nb):
                orow[b] = _NAN
            continue
        v = x[t, j0:j1]
        for b in range(nb):
            cnt[b] = 0.5
        for k in range(t - w + 1, t + 1):
            row = x[k, j0:j1]
            for b in range(nb):
                cnt[b] += (1.0 if row[b] < v[b] else 0.0) + (0.5 if row[b] == v[b] else 0.0)
        for b in range(nb):
            orow[b] = _NAN if nbad[b] > 0.0 else cnt[b] / w


@njit(cache=True)
def _width(w: int) -> int:
    """Columns per block for windows of ``w`` rows: ``WIDE``, fewer when the rings of the
    queue and rank kernels (w slots per column) would pass ``RING_CELLS``."""
    return max(BLOCK, min(WIDE, RING_CELLS // max(1, w)))


# One entry kernel per family of window statistics, chosen in Python (``window_kernel``): a
# numba function compiles everything it can call, so one entry for all of them made a first
# ``ts_mean`` compile the queues, rings, skewness and direct scans too (9.6 s on an empty
# cache; the moments alone 2.8-3.2 s; docs/architecture.md, "The first run"). Short and long
# windows of min/max and rank are separate entries for the same reason (row scans up to
# ``SCAN_W`` / ``RANK_SCAN_W`` rows, queues and rings beyond). Each walks the column blocks
# b0..b1-1 (``BLOCK`` columns each) of ``x`` in runs of ``_width(w)`` columns (``WIDE`` for
# the scans, which keep no ring) and writes ``out``; ``factors.expr.kernels.ts_window`` runs
# the block ranges on threads.


@njit(cache=True, nogil=True)
def ts_moments_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                      b1: int) -> None:  # fmt: skip
    """MEAN, SUM, STD, ZSCORE (``_moments_block``) of the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    width = _width(w)
    for j0 in range(b0 * BLOCK, stop, width):
        _moments_block(x, out, j0, min(stop, j0 + width), w, code)


@njit(cache=True, nogil=True)
def ts_minmax_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                     b1: int) -> None:  # fmt: skip
    """TMIN, TMAX, ARGMIN, ARGMAX by queues (``_minmax_block``; windows over ``SCAN_W``) of
    the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    width = _width(w)
    for j0 in range(b0 * BLOCK, stop, width):
        _minmax_block(x, out, j0, min(stop, j0 + width), w, code)


@njit(cache=True, nogil=True)
def ts_minmax_scan_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                          b1: int) -> None:  # fmt: skip
    """TMIN, TMAX, ARGMIN, ARGMAX by scanning each window (``_scan_minmax_block``; windows
    of up to ``SCAN_W`` rows) of the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    for j0 in range(b0 * BLOCK, stop, WIDE):
        _scan_minmax_block(x, out, j0, min(stop, j0 + WIDE), w, code)


@njit(cache=True, nogil=True)
def ts_rank_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                   b1: int) -> None:  # fmt: skip
    """RANK over rings (``_rank_block``; windows over ``RANK_SCAN_W``; ``code`` is unused) of
    the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    width = _width(w)
    for j0 in range(b0 * BLOCK, stop, width):
        _rank_block(x, out, j0, min(stop, j0 + width), w)


@njit(cache=True, nogil=True)
def ts_rank_scan_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                        b1: int) -> None:  # fmt: skip
    """RANK by counting over each window (``_scan_rank_block``; windows of up to
    ``RANK_SCAN_W`` rows; ``code`` is unused) of the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    for j0 in range(b0 * BLOCK, stop, WIDE):
        _scan_rank_block(x, out, j0, min(stop, j0 + WIDE), w)


@njit(cache=True, nogil=True)
def ts_skew_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                   b1: int) -> None:  # fmt: skip
    """SKEW with w >= 3 (``_skew_block``; ``code`` is unused) of the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    width = _width(w)
    for j0 in range(b0 * BLOCK, stop, width):
        _skew_block(x, out, j0, min(stop, j0 + width), w)


@njit(cache=True, nogil=True)
def ts_direct_blocks(x: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                     b1: int) -> None:  # fmt: skip
    """PROD, DECAY and SKEW with w < 3 (``_direct_block``) of the column blocks b0..b1-1."""
    stop = min(x.shape[1], b1 * BLOCK)
    width = _width(w)
    for j0 in range(b0 * BLOCK, stop, width):
        _direct_block(x, out, j0, min(stop, j0 + width), w, code)


def window_kernel(code: int, w: int) -> Any:
    """The entry kernel of window statistic ``code`` over ``w`` rows, called as
    ``kernel(x, out, w, code, b0, b1)``: rolling statistics over windows of ``w`` rows for the
    column blocks b0..b1-1 (``BLOCK`` columns each) into ``out``.

    Equivalent to: ``df.rolling(w).mean() / .sum() / .std() / .min() / .max() / .skew()``,
    ``.rank(pct=True)``, ``.apply(np.argmax) + 1``, ``.apply(np.prod)``, a linearly weighted
    mean (weights 1..w, newest largest) and ``(x - mean) / std``. NaN until the window is full
    and wherever the window holds a non-finite value.
    """
    if code <= ZSCORE:
        return ts_moments_blocks
    if code in (TMIN, TMAX, ARGMIN, ARGMAX):
        return ts_minmax_scan_blocks if w <= SCAN_W else ts_minmax_blocks
    if code == RANK:
        return ts_rank_scan_blocks if w <= RANK_SCAN_W else ts_rank_blocks
    if code == SKEW and w >= 3:
        return ts_skew_blocks
    return ts_direct_blocks


# Rows of the pair state ``st`` of ``_pair_block`` (one column per block column): the anchors,
# the sums of dx = x - refx, dy = y - refy, dx dy, dx^2, dy^2, the window's count of rows with
# a non-finite x or y, 1.0 when the column missed a re-anchoring, and scratch.
_RX, _RY, _SX, _SY, _SXY, _SXX, _SYY, _PBAD, _PSTALE = range(9)
_PAIR_ROWS = 14


@njit(cache=True, error_model="numpy")
def _pair_resync(x: np.ndarray, y: np.ndarray, t: int, j: int, b: int, w: int,
                 st: np.ndarray) -> None:  # fmt: skip
    """Re-anchor column j (block column b) over rows t-w+1..t around its oldest values."""
    rx, ry = x[t - w + 1, j], y[t - w + 1, j]
    sx = sy = sxy = sxx = syy = 0.0
    for k in range(t - w + 1, t + 1):
        dx, dy = x[k, j] - rx, y[k, j] - ry
        sx += dx
        sy += dy
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
    st[_RX, b], st[_RY, b], st[_SX, b], st[_SY, b] = rx, ry, sx, sy
    st[_SXY, b], st[_SXX, b], st[_SYY, b], st[_PSTALE, b] = sxy, sxx, syy, 0.0


@njit(cache=True, error_model="numpy")
def _pair_rows(x: np.ndarray, y: np.ndarray, t: int, j0: int, w: int, st: np.ndarray) -> None:
    """Re-anchor every column of the block whose window at row t is all finite (rows outer,
    contiguous reads; the same sums in the same order as ``_pair_resync``)."""
    nb = st.shape[1]
    acc = st[_PSTALE + 1 : _PSTALE + 6]
    ox = x[t - w + 1, j0 : j0 + nb]
    oy = y[t - w + 1, j0 : j0 + nb]
    acc[:, :] = 0.0
    for k in range(t - w + 1, t + 1):
        xr = x[k, j0 : j0 + nb]
        yr = y[k, j0 : j0 + nb]
        for b in range(nb):
            dx, dy = xr[b] - ox[b], yr[b] - oy[b]
            acc[0, b] += dx
            acc[1, b] += dy
            acc[2, b] += dx * dy
            acc[3, b] += dx * dx
            acc[4, b] += dy * dy
    for b in range(nb):
        good = st[_PBAD, b] == 0.0
        st[_RX, b] = ox[b] if good else st[_RX, b]
        st[_RY, b] = oy[b] if good else st[_RY, b]
        for k in range(5):
            st[_SX + k, b] = acc[k, b] if good else st[_SX + k, b]
        st[_PSTALE, b] = 0.0 if good else 1.0


@njit(cache=True, error_model="numpy")
def _pair_value(st: np.ndarray, b: int, w: int, code: int) -> tuple[float, bool]:
    """(CORR or COV from the sums of block column b, True when a running variance is too
    small to trust: only rounding residue may remain, ``_NEAR_ZERO``)."""
    sx, sy = st[_SX, b], st[_SY, b]
    cxy = st[_SXY, b] - sx * sy / w
    cxx = st[_SXX, b] - sx * sx / w
    cyy = st[_SYY, b] - sy * sy / w
    low = (cxx <= _NEAR_ZERO * (st[_SXX, b] / w + st[_RX, b] * st[_RX, b])) | (
        cyy <= _NEAR_ZERO * (st[_SYY, b] / w + st[_RY, b] * st[_RY, b])
    )
    if code == COV:
        return cxy / (w - 1), False
    if (
        cxx <= 1e-12 * (st[_SXX, b] / w)
        or cyy <= 1e-12 * (st[_SYY, b] / w)
        or cxx <= 0.0
        or cyy <= 0.0
    ):
        return _NAN, low
    return min(1.0, max(-1.0, cxy / math.sqrt(cxx * cyy))), low


@njit(cache=True, error_model="numpy")
def _pair_fix(x: np.ndarray, y: np.ndarray, t: int, j: int, b: int, w: int, code: int,
              st: np.ndarray, low: bool) -> float:  # fmt: skip
    """Re-anchor column j at row t and return its CORR or COV; a correlation whose running
    variance is near zero (``low``, or after re-anchoring) is computed by two passes."""
    _pair_resync(x, y, t, j, b, w, st)
    r, low_now = _pair_value(st, b, w, code)
    if code == CORR and (low or low_now):
        return _pair_exact(x, y, j, t, w)
    return r


@njit(cache=True)
def _pair_exact(x: np.ndarray, y: np.ndarray, j: int, t: int, w: int) -> float:
    """Two-pass Pearson correlation of rows t-w+1..t of column j; NaN for zero variance."""
    mx = 0.0
    my = 0.0
    for k in range(t - w + 1, t + 1):
        mx += x[k, j]
        my += y[k, j]
    mx /= w
    my /= w
    sxy = 0.0
    sxx = 0.0
    syy = 0.0
    for k in range(t - w + 1, t + 1):
        dx, dy = x[k, j] - mx, y[k, j] - my
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
    if sxx <= 1e-14 * mx * mx or syy <= 1e-14 * my * my or sxx <= 0.0 or syy <= 0.0:
        return _NAN
    return float(min(1.0, max(-1.0, sxy / math.sqrt(sxx * syy))))


@njit(cache=True, error_model="numpy")
def _pair_block(
    x: np.ndarray, y: np.ndarray, out: np.ndarray, j0: int, j1: int, w: int, code: int
) -> None:
    """Rolling CORR/COV of columns j0..j1-1 by running sums of dx = x - refx, dy = y - refy.

    Built like ``_moments_block``: branch-free passes over 1-D row views, the sums re-anchored
    on rows w-1, w-1+p, ... (p = min(w, ``_RESYNC``), ``_pair_rows``) and one column on its
    own (``_pair_fix``) when it missed a re-anchoring, when the pair that just left the window
    or the anchor lies far from the window (``_SPIKE``), and (CORR) when a running variance is
    near zero, which is then computed by two passes.
    """
    n_rows = x.shape[0]
    nb = j1 - j0
    st = np.zeros((_PAIR_ROWS, nb))
    rx, ry, sx, sy = st[_RX], st[_RY], st[_SX], st[_SY]
    sxy, sxx, syy, nbad, stale = st[_SXY], st[_SXX], st[_SYY], st[_PBAD], st[_PSTALE]
    fix = np.zeros(nb, dtype=np.int64)  # 1: re-anchor column b, 2: also near-zero variance
    period = min(w, _RESYNC)
    spike = _SPIKE * w
    for t in range(n_rows):
        xr, yr = x[t, j0:j1], y[t, j0:j1]
        gone = 1.0 if t >= w else 0.0
        xo, yo = x[max(0, t - w), j0:j1], y[max(0, t - w), j0:j1]
        # two loops of three stored rows each (more in one loop stopped the vectorising)
        for b in range(nb):
            fv = math.isfinite(xr[b]) & math.isfinite(yr[b])
            fo = math.isfinite(xo[b]) & math.isfinite(yo[b]) & (gone > 0.0)
            dx = xr[b] - rx[b] if fv else 0.0
            ox = xo[b] - rx[b] if fo else 0.0
            dy = yr[b] - ry[b] if fv else 0.0
            oy = yo[b] - ry[b] if fo else 0.0
            sx[b] = sx[b] + dx - ox
            sy[b] = sy[b] + dy - oy
            nbad[b] += (0.0 if fv else 1.0) - (1.0 if (gone > 0.0) & ~fo else 0.0)
        for b in range(nb):
            fv = math.isfinite(xr[b]) & math.isfinite(yr[b])
            fo = math.isfinite(xo[b]) & math.isfinite(yo[b]) & (gone > 0.0)
            dx = xr[b] - rx[b] if fv else 0.0
            ox = xo[b] - rx[b] if fo else 0.0
            dy = yr[b] - ry[b] if fv else 0.0
            oy = yo[b] - ry[b] if fo else 0.0
            sxy[b] = sxy[b] + dx * dy - ox * oy
            sxx[b] = sxx[b] + dx * dx - ox * ox
            syy[b] = syy[b] + dy * dy - oy * oy
        orow = out[t, j0:j1]
        if t < w - 1:
            for b in range(nb):
                orow[b] = _NAN
            continue
        fresh = (t - w + 1) % period == 0
        if fresh:
            _pair_rows(x, y, t, j0, w, st)
        gone = 0.0 if fresh else gone
        nfix = np.int64(0)
        for b in range(nb):
            bad = nbad[b] > 0.0
            mx, my = sx[b] / w, sy[b] / w
            cxy = sxy[b] - sx[b] * my
            cxx = sxx[b] - sx[b] * mx
            cyy = syy[b] - sy[b] * my
            if code == COV:
                r = cxy / (w - 1)
                low = False
            else:
                tiny = (cxx <= 1e-12 * (sxx[b] / w)) | (cyy <= 1e-12 * (syy[b] / w))
                tiny = tiny | (cxx <= 0.0) | (cyy <= 0.0)
                r = _NAN if tiny else min(1.0, max(-1.0, cxy / math.sqrt(cxx * cyy)))
                low = (cxx <= _NEAR_ZERO * (sxx[b] / w + rx[b] * rx[b])) | (
                    cyy <= _NEAR_ZERO * (syy[b] / w + ry[b] * ry[b])
                )
            orow[b] = _NAN if bad else r
            ox = (xo[b] - rx[b]) * gone
            oy = (yo[b] - ry[b]) * gone
            lx = ox * ox if math.isfinite(ox) else 0.0
            ly = oy * oy if math.isfinite(oy) else 0.0
            vx, vy = cxx / w, cyy / w
            far = (lx > spike * vx) | (ly > spike * vy)
            far = far | (mx * mx > spike * vx) | (my * my > spike * vy)
            need = ((stale[b] > 0.0) | low | far) & ~bad
            f = np.int64(need) + np.int64(low & need)
            fix[b] = f
            nfix += f
            stale[b] = 1.0 if bad else stale[b]
        if nfix > 0:
            for b in range(nb):
                if fix[b] > 0:
                    orow[b] = _pair_fix(x, y, t, j0 + b, b, w, code, st, fix[b] > 1)


@njit(cache=True, nogil=True)
def ts_pair_blocks(x: np.ndarray, y: np.ndarray, out: np.ndarray, w: int, code: int, b0: int,
                   b1: int) -> None:  # fmt: skip
    """Rolling CORR (Pearson) or COV (ddof=1) of two (T, N) arrays for the column blocks
    b0..b1-1 into ``out`` (``factors.expr.kernels.ts_pair`` runs the block ranges).

    Equivalent to: ``dfx.rolling(w).corr(dfy)`` / ``.cov(dfy)``; NaN until full, where either
    input is non-finite in the window, and (CORR) where either variance is 0 (relative to the
    values' spread around the window's oldest value, 1e-12).
    """
    stop = min(x.shape[1], b1 * BLOCK)
    for j0 in range(b0 * BLOCK, stop, WIDE):
        _pair_block(x, y, out, j0, min(stop, j0 + WIDE), w, code)


@njit(cache=True, nogil=True, error_model="numpy")
def ts_ewm_blocks(x: np.ndarray, out: np.ndarray, span: int, b0: int, b1: int) -> None:
    """Exponentially weighted mean, alpha = 2 / (span + 1), recursive form, for the column
    blocks b0..b1-1 into ``out`` (``factors.expr.kernels.ts_ewm`` runs the block ranges).

    Equivalent to: ``df.ewm(span=span, adjust=False, ignore_na=True, min_periods=span).mean()``
    masked to NaN where the input is NaN.

    One branch-free pass per row over 1-D row views, all the block's columns at once; the
    state (mean, count of finite values) alternates between two rows of ``st`` (ping-pong):
    updated in place, ``y = new if ok else y`` became a masked store, slow on this CPU.
    """
    n_rows, n_cols = x.shape
    alpha = 2.0 / (span + 1.0)
    stop = min(n_cols, b1 * BLOCK)
    for j0 in range(b0 * BLOCK, stop, WIDE):
        j1 = min(stop, j0 + WIDE)
        nb = j1 - j0
        st = np.zeros((4, nb))  # rows 0, 1: the mean; 2, 3: how many finite values it saw
        src = 0
        for t in range(n_rows):
            xr = x[t, j0:j1]
            orow = out[t, j0:j1]
            y0, y1 = st[src], st[1 - src]
            n0, n1 = st[2 + src], st[3 - src]
            for b in range(nb):
                v = xr[b]
                ok = math.isfinite(v)
                nxt = v if n0[b] == 0.0 else alpha * v + (1.0 - alpha) * y0[b]
                y1[b] = nxt if ok else y0[b]
                n1[b] = n0[b] + (1.0 if ok else 0.0)
                orow[b] = y1[b] if ok & (n1[b] >= span) else _NAN
            src = 1 - src
