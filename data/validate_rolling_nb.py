"""Numba kernels of robust rolling statistics for the validator: rolling median, rolling
robust z-score (two-pass, exact per row) and the strided robust z-score the checks use.

Plain ``@njit(cache=True)`` loops over contiguous float64 arrays; NaNs are skipped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAD_SCALE = 1.4826
"""Consistency constant: 1.4826 * MAD estimates sigma for Gaussian data."""


@njit(cache=True)
def _lower_bound(buf, cnt, v):  # type: ignore[no-untyped-def]
    """First index i in buf[:cnt] with buf[i] >= v (branch-free halving search)."""
    base = 0
    size = cnt
    while size > 1:
        half = size >> 1
        if buf[base + half - 1] < v:
            base += half
        size -= half
    if size == 1 and buf[base] < v:
        base += 1
    return base


@njit(cache=True)
def _window_step(buf, cnt, v_out, v_in):  # type: ignore[no-untyped-def]
    """Replace v_out (NaN: none) by v_in (NaN: none) in the sorted buf[:cnt]; returns new cnt."""
    has_out = v_out == v_out
    has_in = v_in == v_in
    if has_out and has_in:
        p_out = _lower_bound(buf, cnt, v_out)
        p_in = _lower_bound(buf, cnt, v_in)
        if p_in > p_out:
            for j in range(p_out, p_in - 1):
                buf[j] = buf[j + 1]
            buf[p_in - 1] = v_in
        else:
            for j in range(p_out, p_in, -1):
                buf[j] = buf[j - 1]
            buf[p_in] = v_in
        return cnt
    if has_out:
        p_out = _lower_bound(buf, cnt, v_out)
        for j in range(p_out, cnt - 1):
            buf[j] = buf[j + 1]
        return cnt - 1
    if has_in:
        p_in = _lower_bound(buf, cnt, v_in)
        for j in range(cnt, p_in, -1):
            buf[j] = buf[j - 1]
        buf[p_in] = v_in
        return cnt + 1
    return cnt


@njit(cache=True)
def _median(buf, cnt):  # type: ignore[no-untyped-def]
    h = cnt >> 1
    if cnt & 1:
        return buf[h]
    return 0.5 * (buf[h - 1] + buf[h])


@njit(cache=True)
def rolling_median(x, window, min_periods):  # type: ignore[no-untyped-def]
    """Trailing rolling median over the last ``window`` values, NaNs skipped.

    Keeps the window's non-NaN values sorted; each step moves one value out and one in with a
    binary search and a shift of the values between the two positions (O(log w + shift), the
    shift averaging w/3 moves of contiguous float64 for i.i.d. data). A (window,) scratch
    buffer is the only allocation besides the output.

    Args:
        x: (n,) float64.
        window: window length in rows (>= 1).
        min_periods: fewer non-NaN values than this in the window gives NaN (>= 1 enforced).

    Returns:
        (n,) float64 medians (mean of the two middle values for an even count).

    Equivalent to:
        ``pd.Series(x).rolling(window, min_periods=min_periods).median()``
    """
    n = x.shape[0]
    out = np.empty(n)
    buf = np.empty(window)
    mp = max(min_periods, 1)
    cnt = 0
    for t in range(n):
        v_out = x[t - window] if t >= window else np.nan
        cnt = _window_step(buf, cnt, v_out, x[t])
        out[t] = _median(buf, cnt) if cnt >= mp else np.nan
    return out


@njit(cache=True)
def robust_zscore(x, window, min_periods, min_scale):  # type: ignore[no-untyped-def]
    """Rolling robust z-score: deviation from the rolling median over the rolling MAD.

    Two trailing windows advance in one loop: ``med[t]`` = median of x over the window ending
    at t; ``resid[t] = |x[t] - med[t]|``; ``mad[t]`` = median of resid over the window ending
    at t; ``z[t] = (x[t] - med[t]) / max(1.4826 * mad[t], min_scale)``. When that denominator
    is 0, z is 0 for a zero deviation and +-inf otherwise. NaN x gives NaN z.

    Args:
        x: (n,) float64 series (e.g. simple returns, prices, spreads).
        window: window length in rows.
        min_periods: non-NaN values needed in each window, else NaN.
        min_scale: floor of the scale (same unit as x); 0 for none.

    Returns:
        z, med, mad: three (n,) float64 arrays.

    Equivalent to (the two-pass form; bottleneck.move_median gives the same)::

        med = s.rolling(w, min_periods=m).median()
        mad = (s - med).abs().rolling(w, min_periods=m).median()
        z = (s - med) / np.maximum(1.4826 * mad, min_scale)
    """
    n = x.shape[0]
    z = np.empty(n)
    med = np.empty(n)
    mad = np.empty(n)
    buf_x = np.empty(window)
    buf_r = np.empty(window)
    mp = max(min_periods, 1)
    cx = 0
    cr = 0
    for t in range(n):
        x_out = x[t - window] if t >= window else np.nan
        cx = _window_step(buf_x, cx, x_out, x[t])
        m = _median(buf_x, cx) if cx >= mp else np.nan
        med[t] = m
        r_in = abs(x[t] - m)
        r_out = abs(x[t - window] - med[t - window]) if t >= window else np.nan
        cr = _window_step(buf_r, cr, r_out, r_in)
        d = _median(buf_r, cr) if cr >= mp else np.nan
        mad[t] = d
        dev = x[t] - m
        scale = max(MAD_SCALE * d, min_scale)
        if dev != dev or d != d:
            z[t] = np.nan
        elif scale > 0.0:
            z[t] = dev / scale
        elif dev == 0.0:
            z[t] = 0.0
        else:
            z[t] = np.inf if dev > 0.0 else -np.inf
    return z, med, mad


@njit(cache=True)
def _kth_deviation(s, m, md, p, k):  # type: ignore[no-untyped-def]
    """k-th smallest (0-based) of |s - md| over the sorted s[:m], s[:p] < md <= s[p:].

    The deviations are two ascending runs, L(i) = md - s[p-1-i] and R(j) = s[p+j] - md;
    a binary search on how many come from L finds the k-th in O(log m).
    """
    nl = p
    nr = m - p
    lo = max(0, k + 1 - nr)
    hi = min(k + 1, nl)
    while lo < hi:
        a = (lo + hi) >> 1
        b = k + 1 - a
        if b > 0 and md - s[p - 1 - a] < s[p + b - 1] - md:
            lo = a + 1
        else:
            hi = a
    a = lo
    b = k + 1 - a
    left = md - s[p - a] if a > 0 else -np.inf
    right = s[p + b - 1] - md if b > 0 else -np.inf
    return max(left, right)


@njit(cache=True)
def _sorted_median_mad(s, m):  # type: ignore[no-untyped-def]
    """Median and MAD (median of |s - median|) of the sorted s[:m] (m >= 1), O(log m)."""
    h = m >> 1
    md = s[h] if m & 1 else 0.5 * (s[h - 1] + s[h])
    p = _lower_bound(s, m, md)
    upper = _kth_deviation(s, m, md, p, h)
    if m & 1:
        return md, upper
    return md, 0.5 * (_kth_deviation(s, m, md, p, h - 1) + upper)


@njit(cache=True)
def _gather_sorted(x, lo, hi, out):  # type: ignore[no-untyped-def]
    """Copy the non-NaN x[lo:hi] into out, sort them, return their count."""
    m = 0
    for j in range(lo, hi):
        if x[j] == x[j]:
            out[m] = x[j]
            m += 1
    out[:m].sort()
    return m


@njit(cache=True)
def _merge_window(a, ca, add, ma, rem, mr, out):  # type: ignore[no-untyped-def]
    """out = sorted (a[:ca] minus the sub-multiset rem[:mr]) plus add[:ma]; returns its size."""
    i = 0
    j = 0
    r = 0
    k = 0
    while i < ca or j < ma:
        if i < ca and (j >= ma or a[i] <= add[j]):
            v = a[i]
            i += 1
            if r < mr and rem[r] == v:
                r += 1
                continue
            out[k] = v
        else:
            out[k] = add[j]
            j += 1
        k += 1
    return k


@njit(cache=True)
def _fill_block(x, z, med, mad, b, e, md, d, min_scale):  # type: ignore[no-untyped-def]
    """Fill rows b:e with the block's median/MAD and z; min_scale < 0 means a floor of
    -min_scale * |median| (relative), >= 0 an absolute floor."""
    floor = min_scale if min_scale >= 0.0 else -min_scale * abs(md)
    scale = max(MAD_SCALE * d, floor)
    for t in range(b, e):
        med[t] = md
        mad[t] = d
        dev = x[t] - md
        if dev != dev:
            z[t] = np.nan
        elif scale > 0.0:
            z[t] = dev / scale
        elif dev == 0.0:
            z[t] = 0.0
        else:
            z[t] = np.inf if dev > 0.0 else -np.inf


@njit(cache=True)
def strided_robust_zscore(x, window, stride, min_periods, min_scale):  # type: ignore[no-untyped-def]
    """Robust z-score against the median/MAD of a trailing reference window, refreshed per block.

    Rows are cut into blocks of ``stride`` rows. For the block starting at row b the reference
    is x[b-window : b] (the ``window`` rows just BEFORE the block, NaNs skipped): its median
    ``med`` and its exact MAD ``mad = median(|x_j - med|)``. Every row t of the block gets
    ``z[t] = (x[t] - med) / max(1.4826 * mad, min_scale)``. A row never sits in its own
    reference window, so an outlier cannot mask itself. Blocks whose reference has fewer than
    ``min_periods`` values (the start of a series) use the leading window x[0 : window]
    instead; still fewer gives NaN.

    The reference is kept sorted: per block the ``stride`` entering values are sorted and
    merged with the window minus the leaving values in one pass (O(window + stride log
    stride) per block, i.e. about window/stride + log2(stride) operations per row: 4 + log2
    (window/4) at the validators' default stride = window/4); median and MAD are then read off
    the sorted window in O(log window) (`_kth_deviation`). The validators call
    `data.validate_common.strided_zscore`, which sorts all blocks at once with numpy and runs
    `strided_robust_zscore_presorted` (same results). Scratch buffers of (window,) and
    (stride,) values are the only allocations besides the outputs.

    Args:
        x: (n,) float64.
        window: reference window in rows (>= 1).
        stride: block length in rows (>= 1); stride=1 refreshes the reference every row.
        min_periods: non-NaN values needed in the reference.
        min_scale: floor of the scale, same unit as x (0: none; a zero scale gives z = 0
            for a zero deviation and +-inf otherwise); a negative value -f means a floor
            relative to the reference median, f * |med| (e.g. -1e-4 = 1 bp of the price).

    Returns:
        z, med, mad: three (n,) float64 arrays (med/mad are the reference of each row's block).

    Equivalent to (for row t in the block starting at b = t - t % stride)::

        med[t] = s.shift(1).rolling(window, min_periods=min_periods).median()[b]
        mad[t] = np.median(np.abs(x[b-window:b][~nan] - med[t]))
    """
    n = x.shape[0]
    z = np.empty(n)
    med = np.empty(n)
    mad = np.empty(n)
    mp = max(min_periods, 1)
    cur = np.empty(window)
    nxt = np.empty(window)
    rem = np.empty(min(stride, window))
    # ring of the sorted blocks still inside the window (reused as "leaving" values when
    # window % stride == 0, so each value is sorted once)
    n_ring = window // stride + 2
    ring = np.empty((n_ring, stride))
    ring_cnt = np.zeros(n_ring, np.int64)
    aligned = window % stride == 0
    lead = _gather_sorted(x, 0, min(window, n), nxt)
    lead_md = np.nan
    lead_mad = np.nan
    if lead >= mp:
        lead_md, lead_mad = _sorted_median_mad(nxt, lead)
    cnt = 0
    prev_b = 0
    for b in range(0, n, stride):
        lo = max(0, b - window)
        if b - prev_b >= window or b - stride < 0:
            cnt = _gather_sorted(x, lo, b, cur)
        else:
            slot = (prev_b // stride) % n_ring
            ma = _gather_sorted(x, prev_b, b, ring[slot])
            ring_cnt[slot] = ma
            old = prev_b - window
            if aligned and old >= 0:
                oslot = (old // stride) % n_ring
                mr = _merge_window(ring[oslot], ring_cnt[oslot], rem, 0, rem, 0, rem)
            else:
                mr = _gather_sorted(x, max(0, old), lo, rem)
            cnt = _merge_window(cur, cnt, ring[slot], ma, rem, mr, nxt)
            cur, nxt = nxt, cur
        prev_b = b
        e = min(b + stride, n)
        if cnt >= mp:
            md, d = _sorted_median_mad(cur, cnt)
            _fill_block(x, z, med, mad, b, e, md, d, min_scale)
        else:
            _fill_block(x, z, med, mad, b, e, lead_md, lead_mad, min_scale)
    return z, med, mad


@njit(cache=True)
def _merge_sorted_blocks(a, ca, add, ma, rem, mr, tmp, out):  # type: ignore[no-untyped-def]
    """out = sorted (a[:ca] minus sub-multiset rem[:mr]) + add[:ma]; branch-free merge.

    ``tmp`` needs ca + 1 slots and ``out`` ca - mr + ma; returns the output size.
    """
    k = 0
    r = 0
    for i in range(ca):
        v = a[i]
        if r < mr and rem[r] == v:
            r += 1
        else:
            tmp[k] = v
            k += 1
    tmp[k] = np.inf
    i = 0
    j = 0
    total = k + ma
    for q in range(total):
        va = tmp[i]
        vb = add[j] if j < ma else np.inf
        take_a = va <= vb
        out[q] = va if take_a else vb
        i += 1 if take_a else 0
        j += 0 if take_a else 1
    return total


@njit(cache=True)
def _merge_blocks(srt, cnt, k0, k1, stride, out, scratch, tmp):  # type: ignore[no-untyped-def]
    """out[:c] = the sorted non-NaN values of the presorted blocks k0..k1-1 of ``srt``;
    returns c. ``out``, ``scratch`` and ``tmp`` need room for every value plus one.

    The blocks are merged one after another (``_merge_sorted_blocks``), so this kernel needs
    no sort of its own: numba's ``ndarray.sort`` took most of its 5-6 s first compile."""
    c = np.int64(0)  # not a literal: see docs/architecture.md, "The first run"
    none = np.int64(0)
    src, dst = out, scratch
    for k in range(k0, k1):
        a0 = k * stride
        add = srt[a0 : a0 + cnt[k]]
        c = _merge_sorted_blocks(src, c, add, add.shape[0], srt[0:0], none, tmp, dst)
        src, dst = dst, src
    if (k1 - k0) % 2 == 1:  # the last merge wrote ``scratch``
        for i in range(c):  # a loop: a slice assignment compiles numba's shape-error message
            out[i] = scratch[i]
    return c


@njit(cache=True, nogil=True)
def strided_presorted_blocks(  # type: ignore[no-untyped-def]
    x, srt, cnt, window, stride, min_periods, min_scale, blk_lo, blk_hi, z, med, mad
):
    """Blocks blk_lo..blk_hi-1 of `strided_robust_zscore_presorted`, written into z/med/mad.

    Disjoint block ranges can run in parallel threads (``nogil=True``) on shared outputs with
    identical results: the starting window is merged from the presorted blocks before the
    range, the leading-window fallback always from the blocks of x[0 : window].

    Args:
        x, srt, cnt, window, stride, min_periods, min_scale: see
            `strided_robust_zscore_presorted`.
        blk_lo, blk_hi: block range (block k covers rows k*stride .. (k+1)*stride - 1).
        z, med, mad: (n,) float64 outputs, filled on the range's rows only.
    """
    n = x.shape[0]
    mp = max(min_periods, 1)
    cur = np.empty(window + 1)
    nxt = np.empty(window + 1)
    tmp = np.empty(window + 1)
    nblk = window // stride
    # the leading window x[0 : window] is blocks 0 .. nblk-1 (all of them when n < window)
    first = np.int64(0)
    lead = _merge_blocks(srt, cnt, first, min(nblk, cnt.shape[0]), stride, nxt, cur, tmp)
    lead_md = np.nan
    lead_mad = np.nan
    if lead >= mp:
        lead_md, lead_mad = _sorted_median_mad(nxt, lead)
    # the window before the range's first block: x[b0 - window : b0], blocks blk_lo-nblk ..
    c = _merge_blocks(srt, cnt, max(first, blk_lo - nblk), blk_lo, stride, cur, nxt, tmp)
    for blk in range(blk_lo, blk_hi):
        b = blk * stride
        if blk > blk_lo:
            a0 = (blk - 1) * stride
            add = srt[a0 : a0 + cnt[blk - 1]]
            if blk - 1 - nblk >= 0:
                r0 = (blk - 1 - nblk) * stride
                rem = srt[r0 : r0 + cnt[blk - 1 - nblk]]
            else:
                rem = srt[0:0]
            c = _merge_sorted_blocks(cur, c, add, add.shape[0], rem, rem.shape[0], tmp, nxt)
            cur, nxt = nxt, cur
        e = min(b + stride, n)
        if c >= mp:
            md, d = _sorted_median_mad(cur, c)
            _fill_block(x, z, med, mad, b, e, md, d, min_scale)
        else:
            _fill_block(x, z, med, mad, b, e, lead_md, lead_mad, min_scale)


@njit(cache=True, nogil=True)
def strided_robust_zscore_presorted(x, srt, cnt, window, stride, min_periods, min_scale):  # type: ignore[no-untyped-def]
    """`strided_robust_zscore` with every block already sorted (same results, faster).

    Args:
        x: (n,) float64.
        srt: (n,) float64: each block x[b : b + stride] sorted ascending with NaNs last (as
            ``np.sort(x.reshape(-1, stride), axis=1)`` gives), the last partial block too.
        cnt: (ceil(n / stride),) int64 non-NaN values per block.
        window: reference window; must be a multiple of ``stride``.
        stride, min_periods, min_scale: as in `strided_robust_zscore`.

    Returns:
        z, med, mad: three (n,) float64 arrays.

    Runs without the GIL (``nogil=True``), so independent series can be scored in threads.
    """
    n = x.shape[0]
    z = np.empty(n)
    med = np.empty(n)
    mad = np.empty(n)
    first = np.int64(0)  # not a literal: the threads call it with int64 block bounds
    strided_presorted_blocks(
        x, srt, cnt, window, stride, min_periods, min_scale, first, cnt.shape[0], z, med, mad
    )
    return z, med, mad
