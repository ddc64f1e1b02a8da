"""Numba kernels of the expression language over (T, N) float64 arrays.

A handful of kernels, each dispatching on an integer op code (codes mirror ``ops.py``), keeps
JIT compile time low: ``unary``, ``binary`` and ``where`` (elementwise, rows in parallel,
(1, 1) arrays broadcast as scalars), ``ts_shift``, ``ts_window``, ``ts_pair`` and ``ts_ewm``
(per column, columns in parallel) and ``cross_section`` (per row, rows in parallel).

NaN policy:
- elementwise: NaN in -> NaN out; a result that is not finite (x / 0, log 0, overflow) is NaN;
- time series: the output at row t is NaN until the window is full (t < w - 1) and whenever any
  value in the window is not finite (pandas ``rolling(w)`` with ``min_periods=w``);
- ``ts_ewm`` skips non-finite inputs (NaN out on those rows) and is NaN until ``span`` values;
- cross-section: non-finite entries are left out of the row statistics and stay NaN.
Every output at row t is computed from rows <= t only, scanning forward, so values at or before
t are bit-identical whatever follows (lookahead checks rely on it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# codes: keep equal to factors/expr/ops.py (tests check)
NEG, ABS, LOG, SIGN, SQRT, NOT = 0, 1, 2, 3, 4, 5
ADD, SUB, MUL, DIV, LT, LE, GT, GE, EQ, NE, AND, OR, MIN, MAX, POW, SPOW = range(16)
DELAY, DELTA, PCT = 0, 1, 2
MEAN, SUM, STD, ZSCORE, TMIN, TMAX, ARGMIN, ARGMAX, RANK, SKEW, PROD, DECAY = range(12)
CORR, COV = 0, 1
CS_RANK, CS_ZSCORE, CS_DEMEAN, CS_SCALE, CS_QUANTILE = range(5)

_NAN = np.nan
_RESYNC = 256  # rolling sums are recomputed from the window at least this often (drift control)


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
    if a < 0.0 and b != math.floor(b):
        return _NAN
    if a == 0.0 and b < 0.0:
        return _NAN
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


@njit(cache=True, parallel=True)
def unary(x: np.ndarray, code: int) -> np.ndarray:
    """Elementwise unary op (NEG, ABS, LOG, SIGN, SQRT, NOT) of a (T, N) array.

    Equivalent to: ``np.abs(x)`` etc., with non-finite results set to NaN.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    for t in prange(n_rows):
        for j in range(n_cols):
            out[t, j] = _unary_value(x[t, j], code)
    return out


@njit(cache=True, parallel=True)
def binary(a: np.ndarray, b: np.ndarray, code: int) -> np.ndarray:
    """Elementwise binary op of (T, N) or (1, 1) arrays ((1, 1) broadcasts as a scalar).

    Equivalent to: ``a + b``, ``a < b`` (as 1.0/0.0), ``np.minimum(a, b)`` etc., NaN if either
    input is NaN, non-finite results set to NaN.
    """
    n_rows = max(a.shape[0], b.shape[0])
    n_cols = max(a.shape[1], b.shape[1])
    ra, ca = int(a.shape[0] > 1), int(a.shape[1] > 1)
    rb, cb = int(b.shape[0] > 1), int(b.shape[1] > 1)
    out = np.empty((n_rows, n_cols))
    for t in prange(n_rows):
        for j in range(n_cols):
            out[t, j] = _binary_value(a[t * ra, j * ca], b[t * rb, j * cb], code)
    return out


@njit(cache=True, parallel=True)
def where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` where ``c != 0`` else ``b``; NaN where ``c`` is NaN. (1, 1) inputs broadcast.

    Equivalent to: ``np.where(np.isnan(c), nan, np.where(c != 0, a, b))``.
    """
    n_rows = max(c.shape[0], a.shape[0], b.shape[0])
    n_cols = max(c.shape[1], a.shape[1], b.shape[1])
    rc, cc = int(c.shape[0] > 1), int(c.shape[1] > 1)
    ra, ca = int(a.shape[0] > 1), int(a.shape[1] > 1)
    rb, cb = int(b.shape[0] > 1), int(b.shape[1] > 1)
    out = np.empty((n_rows, n_cols))
    for t in prange(n_rows):
        for j in range(n_cols):
            cond = c[t * rc, j * cc]
            if math.isnan(cond):
                out[t, j] = _NAN
            elif cond != 0.0:
                out[t, j] = a[t * ra, j * ca]
            else:
                out[t, j] = b[t * rb, j * cb]
    return out


# ---------------------------------------------------------------------------- time series
@njit(cache=True, parallel=True)
def ts_shift(x: np.ndarray, d: int, code: int) -> np.ndarray:
    """Lagged ops per column: DELAY x[t-d], DELTA x[t]-x[t-d], PCT x[t]/x[t-d]-1.

    Equivalent to: ``df.shift(d)``, ``df.diff(d)``, ``df / df.shift(d) - 1`` (NaN where the
    lagged value is 0). NaN for t < d.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    for j in prange(n_cols):
        for t in range(n_rows):
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
    return out


@njit(cache=True)
def _roll_moments(x: np.ndarray, out: np.ndarray, j: int, w: int, code: int) -> None:
    """MEAN, SUM, STD, ZSCORE of column j by running sums of (x - ref), resynced periodically."""
    n_rows = x.shape[0]
    ref = 0.0
    s = 0.0
    ss = 0.0
    nbad = 0
    since = 0
    for t in range(n_rows):
        v = x[t, j]
        if math.isfinite(v):
            s += v - ref
            ss += (v - ref) * (v - ref)
        else:
            nbad += 1
        if t >= w:
            o = x[t - w, j]
            if math.isfinite(o):
                s -= o - ref
                ss -= (o - ref) * (o - ref)
            else:
                nbad -= 1
        since += 1
        if t < w - 1 or nbad > 0:
            out[t, j] = _NAN
            continue
        if since >= _RESYNC or since >= w:
            # recompute around the oldest value of the window: bounded drift and cancellation
            ref = x[t - w + 1, j]
            s = 0.0
            ss = 0.0
            for k in range(t - w + 1, t + 1):
                s += x[k, j] - ref
                ss += (x[k, j] - ref) * (x[k, j] - ref)
            since = 0
        mean_d = s / w
        if code == MEAN:
            out[t, j] = ref + mean_d
        elif code == SUM:
            out[t, j] = s + w * ref
        else:
            var = (ss - s * mean_d) / (w - 1)
            if var <= 1e-14 * (ss / w):
                var = 0.0
            sd = math.sqrt(var)
            if code == STD:
                out[t, j] = sd
            else:
                out[t, j] = (v - ref - mean_d) / sd if sd > 0.0 else _NAN


@njit(cache=True)
def _window_value(x: np.ndarray, j: int, lo: int, hi: int, code: int) -> float:
    """One window statistic over rows lo..hi (inclusive) of column j, all values finite."""
    w = hi - lo + 1
    if code in (TMIN, TMAX, ARGMIN, ARGMAX):
        best = lo
        for k in range(lo + 1, hi + 1):
            if ((code in (TMIN, ARGMIN)) and x[k, j] < x[best, j]) or (
                (code in (TMAX, ARGMAX)) and x[k, j] > x[best, j]
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
    # SKEW: adjusted Fisher-Pearson (pandas rolling skew)
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


@njit(cache=True, parallel=True)
def ts_window(x: np.ndarray, w: int, code: int) -> np.ndarray:
    """Rolling statistic over windows of ``w`` rows, per column.

    Equivalent to: ``df.rolling(w).mean() / .sum() / .std() / .min() / .max() / .skew()``,
    ``.rank(pct=True)``, ``.apply(np.argmax) + 1``, ``.apply(np.prod)``, a linearly weighted
    mean (weights 1..w, newest largest) and ``(x - mean) / std``. NaN until the window is full
    and wherever the window holds a non-finite value.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    for j in prange(n_cols):
        if code <= ZSCORE:
            _roll_moments(x, out, j, w, code)
            continue
        nbad = 0
        for t in range(n_rows):
            if not math.isfinite(x[t, j]):
                nbad += 1
            if t >= w and not math.isfinite(x[t - w, j]):
                nbad -= 1
            if t < w - 1 or nbad > 0:
                out[t, j] = _NAN
            else:
                out[t, j] = _window_value(x, j, t - w + 1, t, code)
    return out


@njit(cache=True, parallel=True)
def ts_pair(x: np.ndarray, y: np.ndarray, w: int, code: int) -> np.ndarray:
    """Rolling CORR (Pearson) or COV (ddof=1) of two (T, N) arrays, per column.

    Equivalent to: ``dfx.rolling(w).corr(dfy)`` / ``.cov(dfy)``; NaN until full, where either
    input is non-finite in the window, and (CORR) where either variance is 0.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    for j in prange(n_cols):
        nbad = 0
        for t in range(n_rows):
            if not (math.isfinite(x[t, j]) and math.isfinite(y[t, j])):
                nbad += 1
            if t >= w and not (math.isfinite(x[t - w, j]) and math.isfinite(y[t - w, j])):
                nbad -= 1
            if t < w - 1 or nbad > 0:
                out[t, j] = _NAN
                continue
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
            if code == COV:
                out[t, j] = sxy / (w - 1)
            elif sxx <= 1e-14 * mx * mx or syy <= 1e-14 * my * my or sxx <= 0.0 or syy <= 0.0:
                out[t, j] = _NAN
            else:
                out[t, j] = min(1.0, max(-1.0, sxy / math.sqrt(sxx * syy)))
    return out


@njit(cache=True, parallel=True)
def ts_ewm(x: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted mean, alpha = 2 / (span + 1), recursive form, per column.

    Equivalent to: ``df.ewm(span=span, adjust=False, ignore_na=True, min_periods=span).mean()``
    masked to NaN where the input is NaN.
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    alpha = 2.0 / (span + 1.0)
    for j in prange(n_cols):
        y = 0.0
        seen = 0
        for t in range(n_rows):
            v = x[t, j]
            if not math.isfinite(v):
                out[t, j] = _NAN
                continue
            y = v if seen == 0 else alpha * v + (1.0 - alpha) * y
            seen += 1
            out[t, j] = y if seen >= span else _NAN
    return out


# ---------------------------------------------------------------------------- cross-section
@njit(cache=True)
def _cs_row(x: np.ndarray, out: np.ndarray, t: int, code: int, q: int) -> None:
    n_cols = x.shape[1]
    idx = np.empty(n_cols, dtype=np.int64)
    n = 0
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
        vals = np.empty(n)
        for i in range(n):
            vals[i] = x[t, idx[i]]
        order = np.argsort(vals)
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
            edges = np.empty(q + 1)
            for k in range(q + 1):
                pos = k * (n - 1) / q
                lo = math.floor(pos)
                hi = min(lo + 1, n - 1)
                frac = pos - lo
                edges[k] = vals[order[lo]] + frac * (vals[order[hi]] - vals[order[lo]])
            for i in range(n):
                v = vals[i]
                b = 0
                while b <= q and edges[b] < v:
                    b += 1
                out[t, idx[i]] = float(max(1, min(q, b)))


@njit(cache=True, parallel=True)
def cross_section(x: np.ndarray, code: int, q: int) -> np.ndarray:
    """Per-row op over the assets of a (T, N) array: rank, zscore, demean, scale, quantile.

    Equivalent to: ``df.rank(axis=1, pct=True)``, ``df.sub(df.mean(1), 0).div(df.std(1), 0)``,
    ``df.sub(df.mean(1), 0)``, ``df.div(df.abs().sum(1), 0)``, ``pd.qcut(row, q) + 1``.
    Non-finite entries are excluded and stay NaN; ``q`` is used by CS_QUANTILE only.
    """
    n_rows = x.shape[0]
    out = np.empty(x.shape)
    for t in prange(n_rows):
        _cs_row(x, out, t, code, q)
    return out
