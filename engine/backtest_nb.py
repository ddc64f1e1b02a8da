"""Numba kernels of the backtest core: target weights -> orders -> fills -> equity.

Layout: weights arrive as (K, T, N) C-contiguous (parameter set, time, asset), so each path's
weights are one contiguous block; paths are independent and run in parallel (prange over K),
each walking time with its state in local scalars (``simulate_path``). Assets of one path share
one equity, so they are simulated together, not in parallel. Per-path outputs are written as
(K, T) rows; the API returns them transposed to (T, K) without copying.

Row ``s`` of a run, for parameter set k (times are Panel availability times):
  1. lag >= 1: execute the targets decided at row d = s - lag at ``exec_px[s]`` (the open of
     bar s, i.e. right after the decision row's close);
  2. funding: every held position pays ``pos * mark_px[s] * funding[s]`` (longs pay when > 0);
  3. mark to market at ``mark_px[s]`` (the close) -> equity[s];
  4. lag == 0: execute the targets decided at row s at ``exec_px[s]`` (= the close).
A NaN target means "no order for this asset at this row" (the position is kept).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine import slippage_nb

OK = 0
NAN_PRICE_WITH_POSITION = 1
NONPOSITIVE_PRICE = 2
BANKRUPT = 3
NAN_PRICE_WITH_TARGET = 4


# columns of the per-path parameter array kparams (K, 5)
P_FEE_BPS = 0
P_SLIP_BPS = 1
P_IMPACT_K = 2
P_MAX_GROSS = 3
P_BOOK_LEVELS = 4
# columns of the per-path statistics array stats (K, 10)
S_FEES = 0
S_SLIPPAGE = 1
S_FUNDING = 2
S_TURNOVER = 3
S_EXPOSED = 4
S_FILLS = 5
S_STATUS = 6
S_ROW = 7
S_COL = 8
S_HALF = 9


@njit(cache=True, error_model="numpy")
def simulate_path(  # type: ignore[no-untyped-def]
    wk,
    exec_px,
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
    eq_out,
    gross_out,
    turn_out,
    rec,
    stats,
):
    """Simulate one parameter set's target weights over T rows (see module docstring).

    Args:
        wk: (T, N) target weights of this path (NaN = no order).
        exec_px, mark_px: (T, N) execution reference and mark (close) prices.
        funding: (T, N) funding rates, or (1, 1) for none.
        lag: decision-to-execution lag in rows. kp: (5,) fee_bps, slip_bps, impact_k,
            max_gross, book_levels of this path. ctx: (3, T, N) spread_bps, sigma, adv or
            (3, 1, 1) for none. bid_px..ask_qty: (T, N, L) book or (1, 1, 1) for none.
        eq_out: (T,) equity output. gross_out, turn_out: (T,) per-row series (record only).
        rec: (6, T, N) per-fill records (record only): qty, arrival, fill_px, fee,
            half-spread cost, unfilled qty. stats: (10,) output, see the S_* columns.
    """
    t_len, n = wk.shape
    pos = np.zeros(n)
    cash = init_cash
    fee_rate = kp[P_FEE_BPS] * 1e-4
    slip_rate = kp[P_SLIP_BPS] * 1e-4
    cap = kp[P_MAX_GROSS]
    levels = int(kp[P_BOOK_LEVELS])
    has_funding = funding.shape[0] > 1
    has_ctx = ctx.shape[1] > 1
    has_book = bid_px.shape[0] > 1
    fees = 0.0
    slipped = 0.0
    funded = 0.0
    traded = 0.0
    half_paid = 0.0
    exposed = 0
    fills = 0
    status = OK
    bad_row = -1
    bad_col = -1
    e = cash
    for s in range(t_len):
        d = s - lag
        turn_before = traded
        g = 0.0
        # phase 0: mark (lag 0 only, with funding); 1: trade row d's targets; 2: mark
        for phase in range(3):
            if phase == 1:
                if d < 0:
                    continue
                e = cash
                any_target = False
                held_untargeted = 0.0
                gross_target = 0.0
                for i in range(n):
                    w = wk[d, i]
                    q = pos[i]
                    if q != 0.0:
                        px = exec_px[s, i]
                        if not px > 0.0:
                            status = (
                                NAN_PRICE_WITH_POSITION if math.isnan(px) else NONPOSITIVE_PRICE
                            )
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
                if not any_target:
                    continue
                if e <= 0.0:
                    status = BANKRUPT
                    break
                scale = 1.0
                if gross_target * e + held_untargeted > cap * e and gross_target > 0.0:
                    scale = max(cap * e - held_untargeted, 0.0) / (gross_target * e)
                for i in range(n):
                    w = wk[d, i]
                    if math.isnan(w):
                        continue
                    px = exec_px[s, i]
                    if not px > 0.0:
                        if w == 0.0 and pos[i] == 0.0:
                            continue
                        status = NAN_PRICE_WITH_TARGET if math.isnan(px) else NONPOSITIVE_PRICE
                        bad_col = i
                        break
                    tq = w * scale * e / px
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
                    if slip_model == slippage_nb.NONE:
                        fpx = px
                        filled = size
                    elif slip_model == slippage_nb.FIXED_BPS:
                        fpx = px * (1.0 + side * slip_rate)
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
                continue
            if phase == 0 and lag != 0:
                continue
            # funding (once per row) + mark to market at mark_px[s]
            charge = has_funding and (phase == 0 or lag > 0)
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
        if status != OK:
            bad_row = s
            for s2 in range(s, t_len):
                eq_out[s2] = eq_out[s - 1] if s > 0 else init_cash
            break
        eq_out[s] = e
        if g > 0.0:
            exposed += 1
        if record:
            gross_out[s] = g / e if e > 0.0 else math.nan
            turn_out[s] = traded - turn_before
        if e <= 0.0:
            status = BANKRUPT
            bad_row = s
            for s2 in range(s + 1, t_len):
                eq_out[s2] = e
            break
    stats[S_FEES] = fees
    stats[S_SLIPPAGE] = slipped
    stats[S_FUNDING] = funded
    stats[S_TURNOVER] = traded
    stats[S_EXPOSED] = exposed
    stats[S_FILLS] = fills
    stats[S_STATUS] = status
    stats[S_ROW] = bad_row
    stats[S_COL] = bad_col
    stats[S_HALF] = half_paid


@njit(cache=True, parallel=True)
def simulate_weights(  # type: ignore[no-untyped-def]
    weights,
    exec_px,
    mark_px,
    funding,
    lag,
    kparams,
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
):
    """Simulate K target-weight paths in parallel (one ``simulate_path`` per parameter set).

    Args:
        weights: (K, T, N) float64 C-contiguous target fractions of equity (NaN = no order).
        kparams: (K, 5) per-path fee_bps, slip_bps, impact_k, max_gross, book_levels.
        Others: as ``simulate_path``.

    Returns:
        equity (K, T); stats (K, 10) (see S_* columns); gross (K, T) and turnover (K, T)
        series and records (K, 6, T, N) when ``record`` (else zero-size).
    """
    k_len, t_len, n = weights.shape
    equity = np.empty((k_len, t_len))
    stats = np.zeros((k_len, 10))
    rt = t_len if record else 0
    gross = np.zeros((k_len, rt))
    turn = np.zeros((k_len, rt))
    rec = np.zeros((k_len, 6, rt, n))
    if record:
        rec[:, 1:3] = np.nan
    for k in prange(k_len):
        simulate_path(
            weights[k],
            exec_px,
            mark_px,
            funding,
            lag,
            kparams[k],
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
            equity[k],
            gross[k],
            turn[k],
            rec[k],
            stats[k],
        )
    return equity, stats, gross, turn, rec
