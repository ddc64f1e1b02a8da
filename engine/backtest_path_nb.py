"""Numba kernel of one backtest path with every feature (see engine/backtest_nb.py).

``simulate_path`` handles every slippage model (through ``slippage_nb.fill_order``, inlined),
funding accrual and per-fill records; ``backtest_nb.simulate_path_fast`` is its specialised
twin for the common case. Both share the constants and ``finish_path`` defined here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from alphaforge.engine import slippage_nb

OK = 0
NAN_PRICE_WITH_POSITION = 1
NONPOSITIVE_PRICE = 2
BANKRUPT = 3
NAN_PRICE_WITH_TARGET = 4
INF_WEIGHT = 5

# columns of the per-path parameter array kparams (K, 5)
P_FEE_BPS = 0
P_SLIP_BPS = 1
P_IMPACT_K = 2
P_MAX_GROSS = 3
P_BOOK_LEVELS = 4
# columns of the per-path statistics array stats (K, N_STATS)
S_FEES = 0  # fees paid, quote
S_SLIPPAGE = 1  # slippage paid, quote
S_FUNDING = 2  # funding paid, quote (< 0 = received)
S_TURNOVER = 3  # sum of traded notional / equity
S_EXPOSED = 4  # rows with a non-zero position
S_FILLS = 5  # number of fills
S_STATUS = 6  # status code
S_ROW = 7  # row of the error (decision row for INF_WEIGHT), -1 if none
S_COL = 8  # asset of the error, -1 if none
S_HALF = 9  # half-spread part of the slippage, quote
S_RET_SUM = 10  # sum of the per-row returns of the simulated rows
S_RET_SQ = 11  # sum of their squares
S_MAX_DD = 12  # maximum drawdown 1 - equity / running peak (peak starts at init_cash)
S_ROWS = 13  # rows simulated (the rest repeat the last equity)
S_FINAL = 14  # equity of the last row
N_STATS = 15


@njit(cache=True, error_model="numpy", boundscheck=False)
def finish_path(  # type: ignore[no-untyped-def]
    wk, lag, s_stop, rows_done, status, bad_row, bad_col, final, curves, eq_out, ret_out, stats
):
    """Close a path that stopped at row ``s_stop`` with ``rows_done`` rows marked: repeat the
    last equity over the remaining rows, check the weights never read for inf, and store the
    status, row, column, row count and final equity (the last marked one, init_cash if
    none) in ``stats``.

    After an error or a bankruptcy before marking row s, equity stays at row s - 1's value
    (init_cash before row 0) from row s on; after a bankruptcy marked at row s it stays at
    equity[s]. Returns of repeated rows are ``e / e - 1`` (0, or NaN at exactly zero equity).
    """
    t_len, n = wk.shape
    if curves:
        for s2 in range(rows_done, t_len):
            last = eq_out[s2 - 1] if s2 > 0 else final
            eq_out[s2] = last
            ret_out[s2] = last / last - 1.0
    if status == OK or status == BANKRUPT:  # noqa: SIM109 - numba: no tuple `in`
        for d in range(max(s_stop - lag + 1, 0), t_len):
            for i in range(n):
                if math.isinf(wk[d, i]):
                    status = INF_WEIGHT
                    bad_row = d
                    bad_col = i
                    break
            if status == INF_WEIGHT:
                break
    stats[S_STATUS] = status
    stats[S_ROW] = bad_row
    stats[S_COL] = bad_col
    stats[S_ROWS] = rows_done
    stats[S_FINAL] = final


@njit(cache=True, error_model="numpy", boundscheck=False)
def simulate_path(  # type: ignore[no-untyped-def]
    wk,
    exec_px,
    exec_shift,
    mark_px,
    funding,
    lag,
    kp,
    slip_model,
    exhaustion,
    penalty_bps,
    lot_size,
    min_trade_frac,
    init_cash,
    ctx,
    bid_px,
    bid_qty,
    ask_px,
    ask_qty,
    record,
    curves,
    eq_out,
    ret_out,
    gross_out,
    turn_out,
    rec,
    stats,
):
    """Simulate one parameter set's target weights over T rows (see engine/backtest_nb.py).

    Args:
        wk: (T, N) target weights of this path (NaN = no order).
        exec_px: (T, N) execution prices, read at row s - exec_shift. mark_px: (T, N) closes.
        funding: (T, N) funding rates, or (1, 1) for none.
        lag: decision-to-execution lag in rows. kp: (5,) fee_bps, slip_bps, impact_k,
            max_gross, book_levels of this path. ctx: (3, T, N) spread_bps, sigma, adv or
            (3, 1, 1) for none. bid_px..ask_qty: (T, N, L) book or (1, 1, 1) for none.
        curves: write eq_out / ret_out ((T,) equity and per-row returns) when True.
        gross_out, turn_out: (T,) per-row series (record only).
        rec: (6, T, N) per-fill records (record only): qty, arrival, fill_px, fee,
            half-spread cost, unfilled qty. stats: (N_STATS,) output, see the S_* columns.
    """
    t_len, n = wk.shape
    pos = np.zeros(n)
    cash = init_cash
    fee_rate = kp[P_FEE_BPS] * 1e-4
    simple = slip_model == slippage_nb.NONE or slip_model == slippage_nb.FIXED_BPS
    slip_rate = kp[P_SLIP_BPS] * 1e-4 if slip_model == slippage_nb.FIXED_BPS else 0.0
    cap = kp[P_MAX_GROSS]
    capped = cap < math.inf
    up = 1.0 + slip_rate
    dn = 1.0 - slip_rate
    # cash paid for dq units at px: dq * fpx + fee = dq * px * c_signed + |dq| * px * c_abs
    # (fpx = px * (1 + side * slip)), loop invariants with no select on the dq -> cash chain
    c_signed = 1.0 + fee_rate * slip_rate
    c_abs = slip_rate + fee_rate
    levels = int(kp[P_BOOK_LEVELS])
    has_funding = funding.shape[0] > 1
    has_ctx = ctx.shape[1] > 1
    has_book = bid_px.shape[0] > 1
    fees = slipped = funded = traded = half_paid = 0.0
    exposed = fills = rows_done = s = 0
    status = OK
    bad_row = bad_col = -1
    prev = peak = e = init_cash
    mdd = rsum = rsq = 0.0
    for s in range(t_len):
        d = s - lag
        turn_before = traded
        # lag 0: funding at the close before trading at it (lag >= 1: at the mark below)
        if lag == 0 and has_funding:
            for i in range(n):
                q = pos[i]
                if q != 0.0:
                    p = mark_px[s, i]
                    if not p > 0.0:
                        status = NAN_PRICE_WITH_POSITION if math.isnan(p) else NONPOSITIVE_PRICE
                        bad_col = i
                        break
                    r = funding[s, i]
                    if r != 0.0 and not math.isnan(r):
                        amt = q * p * r
                        cash -= amt
                        funded += amt
            if status != OK:
                break
        if d >= 0:
            se = s - exec_shift
            e = cash
            any_target = False
            held_untargeted = 0.0
            gross_target = 0.0
            for i in range(n):
                w = wk[d, i]
                if math.isinf(w):
                    status = INF_WEIGHT
                    bad_col = i
                    break
                q = pos[i]
                if q != 0.0:
                    px = exec_px[se, i]
                    if not px > 0.0:
                        status = NAN_PRICE_WITH_POSITION if math.isnan(px) else NONPOSITIVE_PRICE
                        bad_col = i
                        break
                    e += q * px
                    if math.isnan(w):
                        held_untargeted += abs(q * px)
                if not math.isnan(w):
                    any_target = True
                    gross_target += abs(w)
            if status != OK:
                break
            if any_target:
                if e <= 0.0:
                    status = BANKRUPT
                    break
                scale = 1.0
                # test the loop invariant first, so the division is never speculated
                if capped and gross_target * e + held_untargeted > cap * e and gross_target > 0.0:
                    scale = max(cap * e - held_untargeted, 0.0) / (gross_target * e)
                for i in range(n):
                    w = wk[d, i]
                    if math.isnan(w):
                        continue
                    px = exec_px[se, i]
                    if not px > 0.0:
                        if w == 0.0 and pos[i] == 0.0:
                            continue
                        status = NAN_PRICE_WITH_TARGET if math.isnan(px) else NONPOSITIVE_PRICE
                        bad_col = i
                        break
                    tq = e * (w * scale / px)  # the division is off the e -> cash chain
                    lot = lot_size[i]
                    if lot > 0.0:
                        tq = math.copysign(math.floor(abs(tq) / lot + 1e-9) * lot, tq)
                    dq = tq - pos[i]
                    if dq == 0.0 or abs(dq) * px < min_trade_frac * e:
                        continue
                    side = 1.0 if dq > 0.0 else -1.0
                    size = abs(dq)
                    half = 0.0
                    arrival = px
                    if simple:
                        fpx = px * (up if dq > 0.0 else dn)  # = px * (1 + side * slip_rate)
                        filled = size
                    else:
                        ci = s if has_ctx else 0
                        cj = i if has_ctx else 0
                        fpx, filled, arrival, half = slippage_nb.fill_order(
                            slip_model,
                            side,
                            size,
                            px,
                            kp[P_SLIP_BPS],
                            ctx[0, ci, cj],
                            kp[P_IMPACT_K],
                            ctx[1, ci, cj],
                            ctx[2, ci, cj],
                            bid_px,
                            bid_qty,
                            ask_px,
                            ask_qty,
                            s if has_book else 0,
                            i if has_book else 0,
                            levels,
                            exhaustion,
                            penalty_bps,
                        )
                    fee = 0.0
                    if filled > 0.0:
                        notional = filled * fpx
                        fee = notional * fee_rate
                        if simple:  # = side * notional + fee, as in backtest_fast_nb
                            cash -= dq * (c_signed * px) + size * (c_abs * px)
                        else:
                            cash -= side * notional + fee
                        pos[i] += side * filled
                        fees += fee
                        slipped += side * filled * (fpx - arrival)
                        half_paid += filled * half
                        traded += notional / e
                        fills += 1
                    if record:
                        rec[0, s, i] = side * filled
                        rec[1, s, i] = arrival
                        rec[2, s, i] = fpx
                        rec[3, s, i] = fee
                        rec[4, s, i] = filled * half
                        rec[5, s, i] = side * (size - filled)
                if status != OK:
                    break
        # funding (lag >= 1) and mark to market at the close
        charge = has_funding and lag > 0
        e = cash
        g = 0.0
        for i in range(n):
            q = pos[i]
            if q != 0.0:
                p = mark_px[s, i]
                if not p > 0.0:
                    status = NAN_PRICE_WITH_POSITION if math.isnan(p) else NONPOSITIVE_PRICE
                    bad_col = i
                    break
                if charge:
                    r = funding[s, i]
                    if r != 0.0 and not math.isnan(r):
                        amt = q * p * r
                        cash -= amt
                        e -= amt
                        funded += amt
                v = q * p
                e += v
                g += abs(v)
        if status != OK:
            break
        r = e / prev - 1.0
        if curves:
            eq_out[s] = e
            ret_out[s] = r
        rsum += r
        rsq += r * r
        if e > peak:
            peak = e
        elif e < peak * (1.0 - mdd):
            mdd = 1.0 - e / peak
        prev = e
        rows_done = s + 1
        if g > 0.0:
            exposed += 1
        if record:
            gross_out[s] = g / e if e > 0.0 else math.nan
            turn_out[s] = traded - turn_before
        if e <= 0.0:
            status = BANKRUPT
            break
    if status != OK:
        bad_row = s if status != INF_WEIGHT else s - lag
    finish_path(
        wk, lag, s, rows_done, status, bad_row, bad_col, prev, curves, eq_out, ret_out, stats
    )
    stats[S_FEES] = fees
    stats[S_SLIPPAGE] = slipped
    stats[S_FUNDING] = funded
    stats[S_TURNOVER] = traded
    stats[S_EXPOSED] = exposed
    stats[S_FILLS] = fills
    stats[S_HALF] = half_paid
    stats[S_RET_SUM] = rsum
    stats[S_RET_SQ] = rsq
    stats[S_MAX_DD] = mdd
