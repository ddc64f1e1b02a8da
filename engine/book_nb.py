"""Numba kernels: L2 order-book rebuild from snapshots + depth diffs, sampled at given times.

Book layout (work buffers owned by the caller): each side is a sorted array of price keys with
the BEST level at the END, so that the frequent updates near the top shift few elements:
bids use key = price (ascending), asks use key = -price (ascending). ``n`` counts the slots in
use. Levels are found by binary search; an update sets the absolute quantity (removing an
absent level is a no-op, as Binance documents). Removal leaves a tombstone (qty 0) that a later
insert next to it reuses, and tombstones at the best end are popped (see ``set_level``).

Stream model (one symbol, arrival order): messages are row ranges ``msg_start[m] ..
msg_start[m + 1]`` of (is_bid, price, qty) rows, each a snapshot (kind 1) or a diff (kind 0)
with Binance update ids U (first), u (last), pu (previous; -1 when absent).

Sequence rules (``seq_mode``):
  SEQ_NONE (Tardis, no ids): a snapshot resets the book; diffs apply once a snapshot was seen.
  SEQ_SPOT: drop diffs with u <= L (L = snapshot lastUpdateId); the first applied diff must
    have U <= L + 1 <= u; then every diff must have U == prev_u + 1.
  SEQ_FUTURES: drop diffs with u < L; the first applied diff must have U <= L <= u; then
    every diff must have pu == prev_u.
Diffs that arrive before a snapshot are buffered (left pending) and replayed, in order, when the
snapshot arrives. A diff that breaks the rule is a sequence break: the book becomes invalid
(samples NaN) until the next snapshot; with ``stop_on_break`` the kernel returns at once.
A snapshot arriving while synced with L <= prev_u is stale and ignored; a newer one resets.
"""

from __future__ import annotations

import math

from numba import njit

SEQ_NONE = 0
SEQ_SPOT = 1
SEQ_FUTURES = 2

# per-message status codes
ST_PENDING = 0  # not applied: arrived while the book was not synced and no snapshot followed
ST_APPLIED = 1
ST_DROPPED = 2  # older than the snapshot in force (u below lastUpdateId)
ST_BREAK = 3  # sequence break detected at this message
ST_SNAPSHOT = 4  # snapshot applied (book reset)
ST_STALE_SNAPSHOT = 5  # snapshot older than the synced book, ignored
ST_BREAK_FIRST = 6  # the first diff after a snapshot does not straddle lastUpdateId

# info slots
I_APPLIED = 0
I_BREAKS = 1
I_FIRST_BREAK = 2
I_CROSSED = 3
I_FIRST_CROSSED = 4
I_ROWS = 5
I_MAX_BID = 6
I_MAX_ASK = 7
N_INFO = 8


@njit(cache=True, inline="always")
def _search(keys, n, key):  # type: ignore[no-untyped-def]
    """First index in keys[:n] (ascending) whose value is >= key."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def set_level(keys, qtys, n, key, qty):  # type: ignore[no-untyped-def]
    """Set the quantity of the level ``key`` in a sorted side (0 removes).

    Removal is lazy: a removed level stays as a tombstone (qty 0) so that the frequent
    remove / re-add of the same price shifts nothing; an insert reuses a neighbouring
    tombstone when there is one, and tombstones at the end (the best side) are popped, so
    ``keys[n - 1]`` is always a live level (or n == 0). Capacity: one slot per insert.

    Args:
        keys: (C,) float64 ascending level keys (first n in use). qtys: (C,) quantities.
        n: slots in use. key: price key. qty: absolute quantity, base units (0 = remove).

    Returns:
        (n, delta_live): the new slot count and the change in live (qty > 0) levels.

    Equivalent to: dict-of-levels ``book[key] = qty`` (``del`` when qty == 0), kept sorted.
    """
    j = _search(keys, n, key)
    if j < n and keys[j] == key:
        old = qtys[j]
        qtys[j] = qty
        d = (1 if qty > 0.0 else 0) - (1 if old > 0.0 else 0)
        while n > 0 and qtys[n - 1] <= 0.0:
            n -= 1
        return n, d
    if qty <= 0.0:
        return n, 0
    if j > 0 and qtys[j - 1] <= 0.0:  # tombstone just below: keys[j-2] < key < keys[j]
        keys[j - 1] = key
        qtys[j - 1] = qty
        return n, 1
    if j < n and qtys[j] <= 0.0:  # tombstone just above: keys[j-1] < key < keys[j+1]
        keys[j] = key
        qtys[j] = qty
        return n, 1
    for k in range(n, j, -1):
        keys[k] = keys[k - 1]
        qtys[k] = qtys[k - 1]
    keys[j] = key
    qtys[j] = qty
    return n + 1, 1


@njit(cache=True)
def _emit(  # type: ignore[no-untyped-def]
    bk, bq, nb, ak, aq, na, out_bpx, out_bqty, out_apx, out_aqty, depth_bps, out_dbid, out_dask, s
):
    """Write the top levels and depth-within-x-bps of the current book into sample row s."""
    n_lev = out_bpx.shape[1]
    lev = 0
    for j in range(nb - 1, -1, -1):
        if lev >= n_lev:
            break
        if bq[j] > 0.0:  # skip tombstones
            out_bpx[s, lev] = bk[j]
            out_bqty[s, lev] = bq[j]
            lev += 1
    lev = 0
    for j in range(na - 1, -1, -1):
        if lev >= n_lev:
            break
        if aq[j] > 0.0:
            out_apx[s, lev] = -ak[j]
            out_aqty[s, lev] = aq[j]
            lev += 1
    if nb == 0 or na == 0:
        return
    mid = 0.5 * (bk[nb - 1] - ak[na - 1])
    for x in range(depth_bps.shape[0]):
        lo = mid * (1.0 - depth_bps[x] * 1e-4)
        hi = mid * (1.0 + depth_bps[x] * 1e-4)
        tot = 0.0
        for j in range(nb - 1, -1, -1):
            if bk[j] < lo:
                break
            tot += bk[j] * bq[j]
        out_dbid[s, x] = tot
        tot = 0.0
        for j in range(na - 1, -1, -1):
            if -ak[j] > hi:
                break
            tot += -ak[j] * aq[j]
        out_dask[s, x] = tot


@njit(cache=True)
def rebuild_book(  # type: ignore[no-untyped-def]
    msg_start, msg_kind, msg_first, msg_last, msg_prev, msg_time, row_bid, row_px, row_qty,
    seq_mode, stop_on_break, sample_ts, depth_bps, bk, bq, ak, aq,
    out_bpx, out_bqty, out_apx, out_aqty, out_dbid, out_dask, status, expect, best_bid,
    best_ask, info,
):  # fmt: skip
    """Replay one symbol's snapshot + diff stream and sample the book at ``sample_ts``.

    Args:
        msg_start: (M + 1,) int64 row offsets of the messages. msg_kind: (M,) 0 diff, 1 snapshot.
        msg_first, msg_last, msg_prev: (M,) int64 U, u (lastUpdateId for snapshots), pu; -1 = none.
        msg_time: (M,) int64 µs, non-decreasing: when each message's state becomes known.
        row_bid: (R,) bool side of each row. row_px, row_qty: (R,) float64 price, quantity.
        seq_mode: SEQ_NONE, SEQ_SPOT or SEQ_FUTURES. stop_on_break: return at the first break.
        sample_ts: (T,) int64 µs ascending; row t gets the state after every message with
            msg_time <= sample_ts[t].
        depth_bps: (X,) band half-widths in bps of mid for the depth outputs.
        bk, bq, ak, aq: (C,) work buffers (C >= rows of that side + snapshot levels).
        out_bpx, out_bqty, out_apx, out_aqty: (T, L) outputs, pre-filled with NaN.
        out_dbid, out_dask: (T, X) quote notional within the band per side, NaN-filled.
        status: (M,) int8 per-message status (ST_*). expect: (M,) int64, at breaks the id the
            rule expected (prev u + 1 for spot U, prev u for futures pu, lastUpdateId (+1 on
            spot) for a first diff). best_bid, best_ask: (M,) after each message (NaN while
            unsynced). info: (N_INFO,) int64 counters (I_*).
    """
    n_msg = msg_kind.shape[0]
    n_samp = sample_ts.shape[0]
    nb = 0
    na = 0
    live_b = 0
    live_a = 0
    synced = False
    seen_first = False  # first diff after the snapshot applied
    snap_id = -1
    prev_u = -1
    pending = 0  # first message not yet considered while unsynced
    s = 0
    info[I_FIRST_BREAK] = -1
    info[I_FIRST_CROSSED] = -1
    for m in range(n_msg):
        t_m = msg_time[m]
        while s < n_samp and sample_ts[s] < t_m:
            if synced:
                _emit(bk, bq, nb, ak, aq, na, out_bpx, out_bqty, out_apx, out_aqty, depth_bps,
                      out_dbid, out_dask, s)  # fmt: skip
            s += 1
        lo = m
        hi = m + 1
        if msg_kind[m] == 1:
            if synced and seq_mode != SEQ_NONE and msg_last[m] <= prev_u:
                status[m] = ST_STALE_SNAPSHOT
                best_bid[m] = bk[nb - 1] if nb > 0 else math.nan
                best_ask[m] = -ak[na - 1] if na > 0 else math.nan
                continue
            nb = 0
            na = 0
            live_b = 0
            live_a = 0
            for r in range(msg_start[m], msg_start[m + 1]):
                if row_bid[r]:
                    nb, d = set_level(bk, bq, nb, row_px[r], row_qty[r])
                    live_b += d
                else:
                    na, d = set_level(ak, aq, na, -row_px[r], row_qty[r])
                    live_a += d
            status[m] = ST_SNAPSHOT
            info[I_MAX_BID] = max(info[I_MAX_BID], live_b)
            info[I_MAX_ASK] = max(info[I_MAX_ASK], live_a)
            synced = True
            seen_first = False
            snap_id = msg_last[m]
            prev_u = snap_id
            # replay the diffs buffered before the snapshot (Binance ids tell which apply)
            lo = pending
            hi = m
            if seq_mode == SEQ_NONE or lo >= hi:
                lo = m + 1
                hi = m + 1
            pending = m + 1
        elif not synced:
            status[m] = ST_PENDING
            best_bid[m] = math.nan
            best_ask[m] = math.nan
            continue
        for k in range(lo, hi):
            if msg_kind[k] == 1:
                continue
            u = msg_last[k]
            ok = True
            target = prev_u
            if seq_mode != SEQ_NONE:
                first_rule = seq_mode == SEQ_SPOT and u <= snap_id
                if seq_mode == SEQ_FUTURES and u < snap_id:
                    first_rule = True
                if not seen_first and first_rule:
                    status[k] = ST_DROPPED
                    continue
                if not seen_first:
                    target = snap_id + 1 if seq_mode == SEQ_SPOT else snap_id
                    ok = msg_first[k] <= target and target <= u
                elif seq_mode == SEQ_SPOT:
                    target = prev_u + 1
                    ok = msg_first[k] == target
                else:
                    ok = msg_prev[k] == prev_u
            if not ok:
                status[k] = ST_BREAK if seen_first else ST_BREAK_FIRST
                expect[k] = target
                info[I_BREAKS] += 1
                if info[I_FIRST_BREAK] < 0:
                    info[I_FIRST_BREAK] = k
                synced = False
                nb = 0
                na = 0
                live_b = 0
                live_a = 0
                pending = k + 1
                if stop_on_break:
                    return
                break
            for r in range(msg_start[k], msg_start[k + 1]):
                if row_bid[r]:
                    nb, d = set_level(bk, bq, nb, row_px[r], row_qty[r])
                    live_b += d
                else:
                    na, d = set_level(ak, aq, na, -row_px[r], row_qty[r])
                    live_a += d
            info[I_ROWS] += msg_start[k + 1] - msg_start[k]
            info[I_APPLIED] += 1
            status[k] = ST_APPLIED
            seen_first = True
            prev_u = u
            if live_b > info[I_MAX_BID]:
                info[I_MAX_BID] = live_b
            if live_a > info[I_MAX_ASK]:
                info[I_MAX_ASK] = live_a
        if synced:
            bb = bk[nb - 1] if nb > 0 else math.nan
            ba = -ak[na - 1] if na > 0 else math.nan
            best_bid[m] = bb
            best_ask[m] = ba
            if bb >= ba:
                info[I_CROSSED] += 1
                if info[I_FIRST_CROSSED] < 0:
                    info[I_FIRST_CROSSED] = m
        else:
            best_bid[m] = math.nan
            best_ask[m] = math.nan
    while s < n_samp:
        if synced:
            _emit(bk, bq, nb, ak, aq, na, out_bpx, out_bqty, out_apx, out_aqty, depth_bps,
                  out_dbid, out_dask, s)  # fmt: skip
        s += 1
