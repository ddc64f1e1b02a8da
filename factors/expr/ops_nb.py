"""Numba elementwise and cross-sectional kernels of the expression language, (T, N) float64.

A handful of kernels, each dispatching on an integer op code (codes mirror ``ops.py``), keeps
JIT compile time low: ``unary_rows``, ``arith_cells``, ``binary_rows`` and ``where_rows``
(elementwise, (1, 1) arrays broadcast as scalars) and ``cross_section_rows`` (per row). Each is
``nogil`` and fills a range of a preallocated output; ``factors.expr.kernels`` runs the ranges
on threads. The time-series kernels live in ``ts_nb``.

NaN policy:
- elementwise: NaN in -> NaN out; a result that is not finite (x / 0, log 0, overflow) is NaN;
- cross-section: non-finite entries are left out of the row statistics and stay NaN.
Each output row depends on the same input row only (no lookahead possible).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from alphaforge.engine.rank_nb import COUNT_ROW, argsort, count_ranks

# codes: keep equal to factors/expr/ops.py (tests check)
NEG, ABS, LOG, SIGN, SQRT, NOT = 0, 1, 2, 3, 4, 5
ADD, SUB, MUL, DIV, LT, LE, GT, GE, EQ, NE, AND, OR, MIN, MAX, POW, SPOW = range(16)
CS_RANK, CS_ZSCORE, CS_DEMEAN, CS_SCALE, CS_QUANTILE = range(5)

_NAN = np.nan


# ---------------------------------------------------------------------------- elementwise
@njit(cache=True)
def _unary_value(v: float, code: int) -> float:
    if math.isnan(v):
        return _NAN
    if code == NEG:
        r = -v
    elif code == ABS:
        r = abs(v)
    elif code == LOG:
        r = math.log(v) if v > 0.0 else _NAN
    elif code == SIGN:
        r = 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)
    elif code == SQRT:
        r = math.sqrt(v) if v >= 0.0 else _NAN
    else:  # NOT
        r = 1.0 if v == 0.0 else 0.0
    return r if math.isfinite(r) else _NAN


@njit(cache=True)
def _pow(a: float, b: float) -> float:
    """a ** b; NaN for a negative base with a fractional exponent and for 0 ** negative.

    The library's exponents 2 and 0.5 take ``a * a`` and ``sqrt(a)``, as numpy computes
    ``x ** 2`` and ``x ** 0.5``: correctly rounded, numpy's and pandas' bits (a test compares
    them, exact-midpoint squares included), at a fifth of libm's ``pow`` cost; ``pow`` itself is
    off by one unit in the last place for about 0.08 % of values of extreme magnitude. Zero gives
    +0.0 for 0.5, as ``pow(-0.0, 0.5)`` did.
    """
    if a < 0.0 and b != math.floor(b):
        return _NAN
    if a == 0.0 and b < 0.0:
        return _NAN
    if b == 2.0:
        return a * a
    if b == 0.5:
        return math.sqrt(a) if a != 0.0 else 0.0
    return float(a**b)


@njit(cache=True)
def _binary_value(a: float, b: float, code: int) -> float:
    if math.isnan(a) or math.isnan(b):
        return _NAN
    if code == ADD:
        r = a + b
    elif code == SUB:
        r = a - b
    elif code == MUL:
        r = a * b
    elif code == DIV:
        r = a / b if b != 0.0 else _NAN
    elif code == LT:
        r = 1.0 if a < b else 0.0
    elif code == LE:
        r = 1.0 if a <= b else 0.0
    elif code == GT:
        r = 1.0 if a > b else 0.0
    elif code == GE:
        r = 1.0 if a >= b else 0.0
    elif code == EQ:
        r = 1.0 if a == b else 0.0
    elif code == NE:
        r = 1.0 if a != b else 0.0
    elif code == AND:
        r = 1.0 if (a != 0.0 and b != 0.0) else 0.0
    elif code == OR:
        r = 1.0 if (a != 0.0 or b != 0.0) else 0.0
    elif code == MIN:
        r = min(a, b)
    elif code == MAX:
        r = max(a, b)
    elif code == POW:
        r = _pow(a, b)
    else:  # SPOW: sign(a) * |a| ** b
        m = _pow(abs(a), b)
        r = m if a > 0.0 else (-m if a < 0.0 else 0.0 * m)
    return r if math.isfinite(r) else _NAN


@njit(cache=True, nogil=True)
def unary_rows(x: np.ndarray, out: np.ndarray, code: int, lo: int, hi: int) -> None:
    """Elementwise unary op (NEG, ABS, LOG, SIGN, SQRT, NOT) of rows lo..hi-1 into ``out``.

    Equivalent to: ``np.abs(x)`` etc., with non-finite results set to NaN.
    """
    n_cols = x.shape[1]
    for t in range(lo, hi):
        for j in range(n_cols):
            out[t, j] = _unary_value(x[t, j], code)


@njit(cache=True, nogil=True, error_model="numpy")
def arith_cells(a: np.ndarray, b: np.ndarray, out: np.ndarray, lo: int, hi: int,
                code: int) -> None:  # fmt: skip
    """ADD, SUB, MUL or DIV: out[lo:hi] = a op b on flat C-order (T * N,) views (b of length 1
    broadcasts), then non-finite -> NaN: the vectorizable fast path of ``binary_rows`` (same
    results: x / 0 and overflow give NaN)."""
    if b.size == 1:
        y = b[0]
        if code == ADD:
            for i in range(lo, hi):
                out[i] = a[i] + y
        elif code == SUB:
            for i in range(lo, hi):
                out[i] = a[i] - y
        elif code == MUL:
            for i in range(lo, hi):
                out[i] = a[i] * y
        else:
            for i in range(lo, hi):
                out[i] = a[i] / y
    elif code == ADD:
        for i in range(lo, hi):
            out[i] = a[i] + b[i]
    elif code == SUB:
        for i in range(lo, hi):
            out[i] = a[i] - b[i]
    elif code == MUL:
        for i in range(lo, hi):
            out[i] = a[i] * b[i]
    else:
        for i in range(lo, hi):
            out[i] = a[i] / b[i]
    for i in range(lo, hi):
        if not abs(out[i]) < np.inf:
            out[i] = _NAN


@njit(cache=True, nogil=True)
def binary_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray, code: int, lo: int,
                hi: int) -> None:  # fmt: skip
    """Elementwise binary op of (T, N) or (1, 1) arrays ((1, 1) broadcasts as a scalar) for
    rows lo..hi-1 of ``out`` (T, N).

    Equivalent to: ``a + b``, ``a < b`` (as 1.0/0.0), ``np.minimum(a, b)`` etc., NaN if either
    input is NaN, non-finite results set to NaN.
    """
    n_cols = out.shape[1]
    ra, ca = int(a.shape[0] > 1), int(a.shape[1] > 1)
    rb, cb = int(b.shape[0] > 1), int(b.shape[1] > 1)
    for t in range(lo, hi):
        for j in range(n_cols):
            out[t, j] = _binary_value(a[t * ra, j * ca], b[t * rb, j * cb], code)


@njit(cache=True, nogil=True)
def where_rows(c: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray, lo: int,
               hi: int) -> None:  # fmt: skip
    """``a`` where ``c != 0`` else ``b``, NaN where ``c`` is NaN, for rows lo..hi-1 of ``out``
    (T, N). (1, 1) inputs broadcast.

    Equivalent to: ``np.where(np.isnan(c), nan, np.where(c != 0, a, b))``.
    """
    n_cols = out.shape[1]
    rc, cc = int(c.shape[0] > 1), int(c.shape[1] > 1)
    ra, ca = int(a.shape[0] > 1), int(a.shape[1] > 1)
    rb, cb = int(b.shape[0] > 1), int(b.shape[1] > 1)
    for t in range(lo, hi):
        for j in range(n_cols):
            cond = c[t * rc, j * cc]
            if math.isnan(cond):
                out[t, j] = _NAN
            elif cond != 0.0:
                out[t, j] = a[t * ra, j * ca]
            else:
                out[t, j] = b[t * rb, j * cb]


# ---------------------------------------------------------------------------- cross-section
SMALL_ROW = 128
"""Rows with at most this many finite values are sorted by insertion (see ``_sort_order``);
CS_RANK counts instead up to ``engine.rank_nb.COUNT_ROW`` values."""


@njit(cache=True)
def _sort_order(vals: np.ndarray, n: int, order: np.ndarray) -> np.ndarray:
    """Indices 0..n-1 ordered by ``vals[:n]`` ascending, in ``order`` (an insertion sort for
    rows of up to ``SMALL_ROW`` values: no allocation and fewer steps than a general sort
    there), else ``engine.rank_nb.argsort``. Ranks average ties and quantile edges read sorted
    values, so the order among equal values does not matter."""
    if n > SMALL_ROW:
        return argsort(vals, n, order, np.empty(n, dtype=np.int64))
    for i in range(n):
        v = vals[i]
        k = i
        while k > 0 and vals[order[k - 1]] > v:
            order[k] = order[k - 1]
            k -= 1
        order[k] = i
    return order


@njit(cache=True)
def _cs_row(x: np.ndarray, out: np.ndarray, t: int, code: int, q: int, idx: np.ndarray,
            vals: np.ndarray, buf: np.ndarray, ranks: np.ndarray) -> None:  # fmt: skip
    """One row of ``cross_section``; ``idx``, ``vals``, ``buf``, ``ranks``: (N,) scratch
    buffers."""
    n_cols = x.shape[1]
    n = int(np.int64(0))  # int64, not a literal (docs/architecture.md, "The first run")
    total = 0.0
    for j in range(n_cols):
        out[t, j] = _NAN
        if math.isfinite(x[t, j]):
            idx[n] = j
            n += 1
            total += x[t, j]
    if n == 0:
        return
    mean = total / n
    if code == CS_DEMEAN:
        for i in range(n):
            out[t, idx[i]] = x[t, idx[i]] - mean
    elif code == CS_ZSCORE:
        if n < 2:
            return
        ss = 0.0
        for i in range(n):
            ss += (x[t, idx[i]] - mean) ** 2
        sd = math.sqrt(ss / (n - 1))
        if sd <= 1e-14 * abs(mean) or sd <= 0.0:
            return
        for i in range(n):
            out[t, idx[i]] = (x[t, idx[i]] - mean) / sd
    elif code == CS_SCALE:
        gross = 0.0
        for i in range(n):
            gross += abs(x[t, idx[i]])
        if gross > 0.0:
            for i in range(n):
                out[t, idx[i]] = x[t, idx[i]] / gross
    else:
        for i in range(n):
            vals[i] = x[t, idx[i]]
        if code == CS_RANK and n <= COUNT_ROW:
            count_ranks(vals, n, ranks)
            for i in range(n):
                out[t, idx[i]] = ranks[i] / n
            return
        order = _sort_order(vals, n, buf)
        if code == CS_RANK:
            i = 0
            while i < n:
                e = i
                while e + 1 < n and vals[order[e + 1]] == vals[order[i]]:
                    e += 1
                rank = (i + e) / 2.0 + 1.0  # average of 1-based ranks i+1..e+1
                for k in range(i, e + 1):
                    out[t, idx[order[k]]] = rank / n
                i = e + 1
        else:  # CS_QUANTILE: pd.qcut(row, q, labels=False) + 1, linear-interpolated edges
            for i in range(n):
                # first edge k in [0, q] with edge(k) >= v (edges are non-decreasing): a binary
                # search, so the cost is O(log q) per cell whatever q is
                v = vals[i]
                lo_k, hi_k = 0, q + 1
                while lo_k < hi_k:
                    mid = (lo_k + hi_k) // 2
                    if _quantile_edge(vals, order, n, q, mid) < v:
                        lo_k = mid + 1
                    else:
                        hi_k = mid
                out[t, idx[i]] = float(max(1, min(q, lo_k)))


@njit(cache=True, inline="always")
def _quantile_edge(vals: np.ndarray, order: np.ndarray, n: int, q: int, k: int) -> float:
    """Edge k of q equal-count bins of the sorted row (linear interpolation, as pd.qcut)."""
    pos = k * (n - 1) / q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(vals[order[lo]] + frac * (vals[order[hi]] - vals[order[lo]]))


@njit(cache=True, nogil=True)
def cross_section_rows(x: np.ndarray, out: np.ndarray, code: int, q: int, lo: int,
                       hi: int) -> None:  # fmt: skip
    """Per-row op over the assets of a (T, N) array for rows lo..hi-1 into ``out``: rank,
    zscore, demean, scale, quantile.

    Equivalent to: ``df.rank(axis=1, pct=True)``, ``df.sub(df.mean(1), 0).div(df.std(1), 0)``,
    ``df.sub(df.mean(1), 0)``, ``df.div(df.abs().sum(1), 0)``, ``pd.qcut(row, q) + 1``.
    Non-finite entries are excluded and stay NaN; ``q`` is used by CS_QUANTILE only.
    """
    n_cols = x.shape[1]
    idx = np.empty(n_cols, dtype=np.int64)  # scratch buffers, once per range of rows
    vals = np.empty(n_cols)
    buf = np.empty(n_cols, dtype=np.int64)
    ranks = np.empty(n_cols)
    for t in range(lo, hi):
        _cs_row(x, out, t, code, q, idx, vals, buf, ranks)
