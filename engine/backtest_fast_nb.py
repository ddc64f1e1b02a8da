"""Numba kernels: the specialised per-path backtest loops (see engine/backtest_nb.py).

``simulate_path_fast`` (any N) and ``simulate_one_fast`` (N = 1, position in a register)
implement the rules of ``backtest_path_nb.simulate_path`` for slippage NONE / FIXED_BPS without
funding or records, with the same arithmetic operation for operation (bit-identical results).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from alphaforge.engine import backtest_path_nb
from alphaforge.engine.backtest_path_nb import (
    BANKRUPT,
    INF_WEIGHT,
    NAN_PRICE_WITH_POSITION,
    NAN_PRICE_WITH_TARGET,
    NONPOSITIVE_PRICE,
    OK,
    S_EXPOSED,
    S_FEES,
    S_FILLS,
    S_FUNDING,
    S_HALF,
    S_MAX_DD,
    S_RET_SQ,
    S_RET_SUM,
    S_SLIPPAGE,
    S_TURNOVER,
)


@njit(cache=True, error_model="numpy", boundscheck=False)
def simulate_path_fast(  # type: ignore[no-untyped-def]
    wk,
    exec_px,
    exec_shift,
    mark_px,
    lag,
    fee_rate,
    slip_rate,
    cap,
    lot_size,
    min_trade_frac,
    init_cash,
    curves,
    eq_out,
    ret_out,
    stats,
):
    """One path with slippage NONE (slip_rate 0) or FIXED_BPS, no funding, no records.

    Args:
        wk: (T, N) target weights of this path (NaN = no order).
        exec_px: (T, N) execution prices, read at row s - exec_shift. mark_px: (T, N) closes.
        lag: decision-to-execution lag in rows. fee_rate, slip_rate: fractions (bps * 1e-4).
        cap: gross leverage cap. lot_size: (N,) base units (0 = none).
        min_trade_frac: skip orders below this fraction of equity. init_cash: start equity.
        curves: write eq_out / ret_out ((T,) each) when True.
        stats: (N_STATS,) output, see the S_* columns of backtest_path_nb.

    Equivalent to: ``simulate_path`` with the same inputs (bit for bit).
    """
    t_len, n = wk.shape
    pos = np.zeros(n)
    capped = cap < math.inf
    up = 1.0 + slip_rate
    dn = 1.0 - slip_rate
    # cash paid for dq units at px: dq * fpx + fee = dq * px * c_signed + |dq| * px * c_abs
    # (fpx = px * (1 + side * slip)), loop invariants with no select on the dq -> cash chain
    c_signed = 1.0 + fee_rate * slip_rate
    c_abs = slip_rate + fee_rate
    cash = init_cash
    fees = 0.0
    slipped = 0.0
    traded = 0.0
    exposed = 0
    fills = 0
    status = OK
    bad_row = -1
    bad_col = -1
    e = cash
    prev = init_cash
    peak = init_cash
    mdd = 0.0
    rsum = 0.0
    rsq = 0.0
    s = 0
    rows_done = 0
    for s in range(t_len):
        d = s - lag
        if d >= 0:
            # value the book at the execution prices and sum the targets of row d
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
                    fpx = px * (up if dq > 0.0 else dn)  # = px * (1 + side * slip_rate)
                    notional = size * fpx
                    fee = notional * fee_rate
                    # = dq * fpx + fee (see c_signed), off the e -> dq -> cash chain's long path
                    cash -= dq * (c_signed * px) + size * (c_abs * px)
                    pos[i] += dq
                    fees += fee
                    slipped += side * size * (fpx - px)
                    traded += notional / e
                    fills += 1
                if status != OK:
                    break
        # mark to market at the close
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
        if e <= 0.0:
            status = BANKRUPT
            break
    if status != OK:
        bad_row = s if status != INF_WEIGHT else s - lag
    backtest_path_nb.finish_path(
        wk, lag, s, rows_done, status, bad_row, bad_col, prev, curves, eq_out, ret_out, stats
    )
    stats[S_FEES] = fees
    stats[S_SLIPPAGE] = slipped
    stats[S_FUNDING] = 0.0
    stats[S_TURNOVER] = traded
    stats[S_EXPOSED] = exposed
    stats[S_FILLS] = fills
    stats[S_HALF] = 0.0
    stats[S_RET_SUM] = rsum
    stats[S_RET_SQ] = rsq
    stats[S_MAX_DD] = mdd


@njit(cache=True, error_model="numpy", boundscheck=False)
def simulate_one_fast(  # type: ignore[no-untyped-def]
    wk,
    exec_px,
    exec_shift,
    mark_px,
    lag,
    fee_rate,
    slip_rate,
    cap,
    lot_size,
    min_trade_frac,
    init_cash,
    curves,
    eq_out,
    ret_out,
    stats,
):
    """``simulate_path_fast`` for one asset (N = 1), with the position in a register.

    Same arguments and outputs; every operation of ``simulate_path_fast`` at n = 1 in the
    same order (sums over one asset and ``+ 0.0`` terms dropped), so the results are
    bit-identical. This is the case of single-asset parameter sweeps.
    """
    t_len = wk.shape[0]
    w1 = wk.reshape(t_len)  # (T, 1) C-contiguous -> (T,) views: plain strides
    x1 = exec_px.reshape(exec_px.shape[0])
    m1 = mark_px.reshape(mark_px.shape[0])
    capped = cap < math.inf
    up = 1.0 + slip_rate
    dn = 1.0 - slip_rate
    # cash paid for dq units at px: dq * fpx + fee = dq * px * c_signed + |dq| * px * c_abs
    # (fpx = px * (1 + side * slip)), loop invariants with no select on the dq -> cash chain
    c_signed = 1.0 + fee_rate * slip_rate
    c_abs = slip_rate + fee_rate
    lot = lot_size[0]
    pos = 0.0
    cash = init_cash
    fees = slipped = traded = 0.0
    exposed = fills = rows_done = s = 0
    status = OK
    bad_row = bad_col = -1
    e = prev = peak = init_cash
    mdd = rsum = rsq = 0.0
    floor = peak  # peak * (1 - mdd): below it is a new maximum drawdown
    for s in range(t_len):
        d = s - lag
        if d >= 0:
            w = w1[d]
            if math.isinf(w):
                status = INF_WEIGHT
                bad_col = 0
                break
            se = s - exec_shift
            px = x1[se]
            if pos != 0.0 and not px > 0.0:
                status = NAN_PRICE_WITH_POSITION if math.isnan(px) else NONPOSITIVE_PRICE
                bad_col = 0
                break
            if not math.isnan(w):
                e = cash + pos * px if pos != 0.0 else cash
                if e <= 0.0:
                    status = BANKRUPT
                    break
                scale = 1.0
                if capped and abs(w) * e > cap * e and abs(w) > 0.0:
                    scale = max(cap * e, 0.0) / (abs(w) * e)
                if not px > 0.0:
                    if not (w == 0.0 and pos == 0.0):
                        status = NAN_PRICE_WITH_TARGET if math.isnan(px) else NONPOSITIVE_PRICE
                        bad_col = 0
                        break
                else:
                    tq = e * (w * scale / px)
                    if lot > 0.0:
                        tq = math.copysign(math.floor(abs(tq) / lot + 1e-9) * lot, tq)
                    dq = tq - pos
                    if dq != 0.0 and not abs(dq) * px < min_trade_frac * e:
                        size = abs(dq)
                        fpx = px * (up if dq > 0.0 else dn)
                        notional = size * fpx
                        fee = notional * fee_rate
                        cash -= dq * (c_signed * px) + size * (c_abs * px)
                        pos += dq
                        fees += fee
                        slipped += dq * (fpx - px)
                        traded += notional / e
                        fills += 1
        # mark to market at the close
        e = cash
        g = 0.0
        if pos != 0.0:
            p = m1[s]
            if not p > 0.0:
                status = NAN_PRICE_WITH_POSITION if math.isnan(p) else NONPOSITIVE_PRICE
                bad_col = 0
                break
            v = pos * p
            e += v
            g = abs(v)
        r = e / prev - 1.0
        if curves:
            eq_out[s] = e
            ret_out[s] = r
        rsum += r
        rsq += r * r
        if e > peak:
            peak = e
            floor = peak * (1.0 - mdd)
        elif e < floor:
            mdd = 1.0 - e / peak
            floor = peak * (1.0 - mdd)
        prev = e
        rows_done = s + 1
        if g > 0.0:
            exposed += 1
        if e <= 0.0:
            status = BANKRUPT
            break
    if status != OK:
        bad_row = s if status != INF_WEIGHT else s - lag
    backtest_path_nb.finish_path(
        wk, lag, s, rows_done, status, bad_row, bad_col, prev, curves, eq_out, ret_out, stats
    )
    stats[S_FEES] = fees
    stats[S_SLIPPAGE] = slipped
    stats[S_FUNDING] = 0.0
    stats[S_TURNOVER] = traded
    stats[S_EXPOSED] = exposed
    stats[S_FILLS] = fills
    stats[S_HALF] = 0.0
    stats[S_RET_SUM] = rsum
    stats[S_RET_SQ] = rsq
    stats[S_MAX_DD] = mdd
