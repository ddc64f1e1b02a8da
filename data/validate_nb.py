"""Numba kernels of the data validator (`data.validate*`): plain loops over contiguous arrays.

Row-flag kernels return one ``uint16`` bit mask per row; the bit meanings are the ``*_BIT``
constants below, and the Python API (``data/validate_*.py``) turns them into named checks.
Times are int64 epoch microseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAD_SCALE = 1.4826
"""Consistency constant: 1.4826 * MAD estimates sigma for Gaussian data."""

# kline row flags
K_CLOSE_TIME = 1
K_OHLC = 2
K_NONPOS_PRICE = 4
K_NEG_VOLUME = 8
K_TAKER_GT_VOLUME = 16
K_QUOTE_RANGE = 32
K_OFF_GRID = 64

# trade / aggTrade row flags (rows in file order)
T_ID_STEP_BACK = 1
T_ID_DUPLICATE = 2
T_ID_GAP = 4
T_FIRST_LAST_GAP = 8
T_TS_STEP_BACK = 16
T_NONPOS_PRICE = 32
T_NONPOS_QTY = 64
T_FIRST_GT_LAST = 128

# book snapshot flags
B_BIDS_UNSORTED = 1
B_ASKS_UNSORTED = 2
B_CROSSED = 4
B_LOCKED = 8
B_NONPOS_QTY = 16
B_FEW_LEVELS = 32
B_NONPOS_PRICE = 64


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
def kline_row_flags(open_us, close_us, o, h, lo, c, v, qv, tbv, interval_us, rel_tol):  # type: ignore[no-untyped-def]
    """Per-row kline consistency flags (bits ``K_*``) in one pass.

    Args:
        open_us, close_us: (n,) int64 open/close times in µs.
        o, h, lo, c, v, qv, tbv: (n,) float64 open, high, low, close, base volume, quote
            volume, taker-buy base volume (NaN skips the checks that use the value).
        interval_us: bar length in µs; close must be ``open + interval - 1000`` (1 ms).
        rel_tol: relative tolerance of the quote-volume range check.

    Returns:
        (n,) uint16 flags.
    """
    n = open_us.shape[0]
    flags = np.zeros(n, np.uint16)
    for i in range(n):
        f = 0
        if close_us[i] != open_us[i] + interval_us - 1000:
            f |= K_CLOSE_TIME
        if open_us[i] % interval_us != 0:
            f |= K_OFF_GRID
        if h[i] < lo[i] or o[i] < lo[i] or c[i] < lo[i] or o[i] > h[i] or c[i] > h[i]:
            f |= K_OHLC
        if o[i] <= 0.0 or h[i] <= 0.0 or lo[i] <= 0.0 or c[i] <= 0.0:
            f |= K_NONPOS_PRICE
        if v[i] < 0.0 or qv[i] < 0.0 or tbv[i] < 0.0:
            f |= K_NEG_VOLUME
        if tbv[i] > v[i] * (1.0 + rel_tol):
            f |= K_TAKER_GT_VOLUME
        lo_q = lo[i] * v[i] * (1.0 - rel_tol)
        hi_q = h[i] * v[i] * (1.0 + rel_tol)
        if qv[i] < lo_q or qv[i] > hi_q:
            f |= K_QUOTE_RANGE
        flags[i] = f
    return flags


@njit(cache=True)
def run_starts(mask, min_len):  # type: ignore[no-untyped-def]
    """Starts and lengths of runs of True in ``mask`` that are at least ``min_len`` long.

    Returns:
        starts (k,) int64, lengths (k,) int64.
    """
    n = mask.shape[0]
    k = 0
    i = 0
    while i < n:
        if mask[i]:
            j = i
            while j < n and mask[j]:
                j += 1
            if j - i >= min_len:
                k += 1
            i = j
        else:
            i += 1
    starts = np.empty(k, np.int64)
    lengths = np.empty(k, np.int64)
    k = 0
    i = 0
    while i < n:
        if mask[i]:
            j = i
            while j < n and mask[j]:
                j += 1
            if j - i >= min_len:
                starts[k] = i
                lengths[k] = j - i
                k += 1
            i = j
        else:
            i += 1
    return starts, lengths


@njit(cache=True)
def trade_row_flags(ids, first_id, last_id, ts, price, qty, has_first_last):  # type: ignore[no-untyped-def]
    """Per-row trade/aggTrade flags (bits ``T_*``) in file order, one pass.

    Args:
        ids: (n,) int64 trade or aggTrade ids.
        first_id, last_id: (n,) int64 first/last trade id of each aggTrade (ignored unless
            ``has_first_last``).
        ts: (n,) int64 trade times in µs.
        price, qty: (n,) float64.
        has_first_last: whether first/last ids are checked (aggTrades).

    Returns:
        flags (n,) uint16, missing (n,) int64: ids missing just before each row (0 if none).
    """
    n = ids.shape[0]
    flags = np.zeros(n, np.uint16)
    missing = np.zeros(n, np.int64)
    for i in range(n):
        f = 0
        if i > 0:
            d = ids[i] - ids[i - 1]
            if d == 0:
                f |= T_ID_DUPLICATE
            elif d < 0:
                f |= T_ID_STEP_BACK
            elif d > 1:
                f |= T_ID_GAP
                missing[i] = d - 1
            if ts[i] < ts[i - 1]:
                f |= T_TS_STEP_BACK
            if has_first_last and d == 1 and first_id[i] != last_id[i - 1] + 1:
                f |= T_FIRST_LAST_GAP
        if has_first_last and first_id[i] > last_id[i]:
            f |= T_FIRST_GT_LAST
        if not price[i] > 0.0:
            f |= T_NONPOS_PRICE
        if not qty[i] > 0.0:
            f |= T_NONPOS_QTY
        flags[i] = f
    return flags, missing


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

    The reference is kept sorted: per block the ``stride`` entering and leaving values are
    sorted and merged in one pass (O(window + stride log stride) per block, so about
    window/stride + 2 log2(stride) operations per row: 8 + 2*log2(window/8) at the default
    stride = window/8), then median and MAD are read off the sorted window in O(window/2).
    Scratch buffers of (window,) and (stride,) are the only allocations besides the outputs.

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
def book_row_flags(bid_off, bid_px, bid_qty, ask_off, ask_px, ask_qty, expected_levels):  # type: ignore[no-untyped-def]
    """Per-snapshot book flags (bits ``B_*``) and best quotes.

    Args:
        bid_off, ask_off: (n+1,) int64 offsets of each snapshot's levels in the flat arrays.
        bid_px, bid_qty, ask_px, ask_qty: flat float64 levels (level 0 = best).
        expected_levels: fewer levels than this on either side sets ``B_FEW_LEVELS``.

    Returns:
        flags (n,) uint16, best_bid (n,), best_ask (n,) float64 (NaN for an empty side).
    """
    n = bid_off.shape[0] - 1
    flags = np.zeros(n, np.uint16)
    best_bid = np.full(n, np.nan)
    best_ask = np.full(n, np.nan)
    for i in range(n):
        f = 0
        b0, b1 = bid_off[i], bid_off[i + 1]
        a0, a1 = ask_off[i], ask_off[i + 1]
        if b1 - b0 < expected_levels or a1 - a0 < expected_levels:
            f |= B_FEW_LEVELS
        for j in range(b0, b1):
            if j > b0 and not bid_px[j] < bid_px[j - 1]:
                f |= B_BIDS_UNSORTED
            if not bid_qty[j] > 0.0:
                f |= B_NONPOS_QTY
            if not bid_px[j] > 0.0:
                f |= B_NONPOS_PRICE
        for j in range(a0, a1):
            if j > a0 and not ask_px[j] > ask_px[j - 1]:
                f |= B_ASKS_UNSORTED
            if not ask_qty[j] > 0.0:
                f |= B_NONPOS_QTY
            if not ask_px[j] > 0.0:
                f |= B_NONPOS_PRICE
        if b1 > b0:
            best_bid[i] = bid_px[b0]
        if a1 > a0:
            best_ask[i] = ask_px[a0]
        if b1 > b0 and a1 > a0:
            if bid_px[b0] > ask_px[a0]:
                f |= B_CROSSED
            elif bid_px[b0] == ask_px[a0]:
                f |= B_LOCKED
        flags[i] = f
    return flags, best_bid, best_ask


@njit(cache=True)
def sequence_breaks(first_id, last_id, prev_id, is_snapshot, futures):  # type: ignore[no-untyped-def]
    """Depth-diff sequence breaks over events (one entry per diff message or snapshot).

    Rules (Binance): spot diffs chain when ``U == prev_u + 1``; futures diffs when
    ``pu == prev_u``. A snapshot with ``lastUpdateId = lid`` that is ahead of the chain (or
    the first event) restarts it: diffs with ``u <= lid`` are stale (skipped, not breaks) and
    the first applied diff must straddle it (spot ``U <= lid + 1 <= u``; futures
    ``U <= lid <= u``). The first diff of a table without a snapshot starts the chain.

    Args:
        first_id, last_id, prev_id: (e,) int64 U, u, pu of each event (pu ignored for spot).
        is_snapshot: (e,) bool.
        futures: True for the futures rule.

    Returns:
        (e,) bool: True where the event breaks the sequence.
    """
    e = first_id.shape[0]
    brk = np.zeros(e, np.bool_)
    have = False
    prev_u = 0
    pending = False
    lid = 0
    for i in range(e):
        if is_snapshot[i]:
            if not have or prev_u < last_id[i]:
                lid = last_id[i]
                pending = True
                have = True
                prev_u = lid
            continue
        if pending:
            if last_id[i] <= lid:
                continue
            if futures:
                ok = first_id[i] <= lid and last_id[i] >= lid
            else:
                ok = first_id[i] <= lid + 1 and last_id[i] >= lid + 1
            brk[i] = not ok
            pending = False
        elif have:
            if futures:
                brk[i] = prev_id[i] != prev_u
            else:
                brk[i] = first_id[i] != prev_u + 1
        have = True
        prev_u = last_id[i]
    return brk


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
    """
    n = x.shape[0]
    z = np.empty(n)
    med = np.empty(n)
    mad = np.empty(n)
    mp = max(min_periods, 1)
    cur = np.empty(window + 1)
    nxt = np.empty(window + 1)
    tmp = np.empty(window + 1)
    lead = _gather_sorted(x, 0, min(window, n), nxt)
    lead_md = np.nan
    lead_mad = np.nan
    if lead >= mp:
        lead_md, lead_mad = _sorted_median_mad(nxt, lead)
    c = 0
    nblk = window // stride
    for blk in range(cnt.shape[0]):
        b = blk * stride
        if blk > 0:
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
    return z, med, mad
