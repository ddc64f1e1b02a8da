"""Numba kernels of the data validator (`data.validate*`): plain loops over contiguous arrays.

Row-flag kernels return one ``uint16`` bit mask per row; the bit meanings are the ``*_BIT``
constants below, and the Python API (``data/validate_*.py``) turns them into named checks.
Times are int64 epoch microseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
def kline_row_flags(open_us, close_us, o, h, lo, c, v, qv, tbv, interval_us, rel_tol):  # type: ignore[no-untyped-def]
    """Per-row kline consistency flags (bits ``K_*``) in one pass.

    Args:
        open_us, close_us: (n,) int64 open/close times in µs.
        o, h, lo, c, v, qv, tbv: (n,) float64 open, high, low, close, base volume, quote
            volume, taker-buy base volume (NaN skips the checks that use the value).
        interval_us: bar length in µs; close must be ``open + interval - 1000`` (1 ms, files in
            milliseconds) or ``open + interval - 1`` (1 µs: spot archive files from 2025 on).
        rel_tol: relative tolerance of the quote-volume range check.

    Returns:
        (n,) uint16 flags.
    """
    n = open_us.shape[0]
    flags = np.zeros(n, np.uint16)
    for i in range(n):
        f = 0
        end = open_us[i] + interval_us
        if close_us[i] != end - 1000 and close_us[i] != end - 1:
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
