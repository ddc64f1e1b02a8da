"""Numba kernels of the backtest core: target weights -> orders -> fills -> equity.

Layout: weights are (T, N, K) (time, asset, parameter set). The kernel walks time in the outer
loop and parameter sets in the inner loop, so each row of weights is read contiguously; the
parameter sets are split into ``n_chunks`` contiguous ranges run in parallel (prange). Assets
of one parameter set share one equity, so they are simulated together, not in parallel.

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


@njit(cache=True)
def _rebalance(  # type: ignore[no-untyped-def]  # noqa: PLR0913
    s, d, k, weights, exec_px, pos, cash, sim, book, out, rec
):
    """Execute the targets decided at row d for parameter set k at row s.

    ``sim`` packs scalar settings; ``book`` the market-context arrays; ``out`` the per-k
    accumulators; ``rec`` the optional dense per-fill records. Returns a status code and the
    asset index at fault (or -1).
    """
    (fee_bps, slip_model, slip_bps, impact_k, max_gross, book_levels, exhaustion,
     penalty_bps, lot_size, min_trade_frac, record) = sim
    spread_bps, sigma, adv, bid_px, bid_qty, ask_px, ask_qty = book
    fees, slip, traded, n_fills = out
    n = pos.shape[1]
    e = cash[k]
    any_target = False
    held_untargeted = 0.0
    gross_target = 0.0
    for i in range(n):
        w = weights[d, i, k]
        q = pos[k, i]
        if q != 0.0:
            px = exec_px[s, i]
            if not px > 0.0:
                return (NAN_PRICE_WITH_POSITION if math.isnan(px) else NONPOSITIVE_PRICE), i
            e += q * px
            if math.isnan(w):
                held_untargeted += abs(q * px)
        if not math.isnan(w):
            any_target = True
            gross_target += abs(w)
    if not any_target:
        return OK, -1
    if e <= 0.0:
        return BANKRUPT, -1
    scale = 1.0
    cap = max_gross[k]
    if gross_target * e + held_untargeted > cap * e and gross_target > 0.0:
        scale = max(cap * e - held_untargeted, 0.0) / (gross_target * e)
    has_ctx = spread_bps.shape[0] > 1
    has_book = bid_px.shape[0] > 1
    for i in range(n):
        w = weights[d, i, k]
        if math.isnan(w):
            continue
        px = exec_px[s, i]
        if not px > 0.0:
            if w == 0.0 and pos[k, i] == 0.0:
                continue
            return (NAN_PRICE_WITH_TARGET if math.isnan(px) else NONPOSITIVE_PRICE), i
        tq = w * scale * e / px
        lot = lot_size[i]
        if lot > 0.0:
            tq = math.copysign(math.floor(abs(tq) / lot + 1e-9) * lot, tq)
        dq = tq - pos[k, i]
        if dq == 0.0 or abs(dq) * px < min_trade_frac * e:
            continue
        side = 1.0 if dq > 0.0 else -1.0
        ci = s if has_ctx else 0
        cj = i if has_ctx else 0
        bi = s if has_book else 0
        bj = i if has_book else 0
        fpx, filled, arrival, half = slippage_nb.fill_order(
            slip_model, side, abs(dq), px, slip_bps[k], spread_bps[ci, cj], impact_k[k],
            sigma[ci, cj], adv[ci, cj], bid_px[bi, bj], bid_qty[bi, bj], ask_px[bi, bj],
            ask_qty[bi, bj], book_levels[k], exhaustion, penalty_bps,
        )
        notional = 0.0
        fee = 0.0
        if filled > 0.0:
            notional = filled * fpx
            fee = notional * fee_bps[k] * 1e-4
            cash[k] -= side * notional + fee
            pos[k, i] += side * filled
            cost = side * filled * (fpx - arrival)
            fees[k] += fee
            slip[k] += cost
            traded[k] += notional / e
            n_fills[k] += 1
        if record:
            rec_qty, rec_ref, rec_fill, rec_fee, rec_half, rec_unfilled = rec
            rec_qty[s, i, k] = side * filled
            rec_ref[s, i, k] = arrival
            rec_fill[s, i, k] = fpx
            rec_fee[s, i, k] = fee
            rec_half[s, i, k] = filled * half
            rec_unfilled[s, i, k] = side * (abs(dq) - filled)
    return OK, -1


@njit(cache=True, parallel=True)
def simulate_weights(  # type: ignore[no-untyped-def]  # noqa: PLR0913
    weights, exec_px, mark_px, funding, lag, fee_bps, slip_model, slip_bps, impact_k,
    max_gross, book_levels, exhaustion, penalty_bps, lot_size, min_trade_frac, init_cash,
    spread_bps, sigma, adv, bid_px, bid_qty, ask_px, ask_qty, record, n_chunks,
):
    """Simulate K target-weight paths over T rows and N assets.

    Args:
        weights: (T, N, K) float64 target fraction of equity per asset (NaN = no order).
        exec_px: (T, N) reference execution price of row s (see module docstring).
        mark_px: (T, N) mark-to-market (close) price.
        funding: (T, N) funding rate charged at row s (0 or NaN = none), or (1, 1) = none.
        lag: decision-to-execution lag in rows (>= 0).
        fee_bps, slip_bps, impact_k, max_gross: (K,) per parameter set.
        slip_model: SlippageModel code. book_levels: (K,) int64 levels used (0 = all).
        exhaustion, penalty_bps: book-walk exhaustion policy and penalty.
        lot_size: (N,) base-unit lot (0 = no rounding). min_trade_frac: skip orders whose
            notional is below this fraction of equity. init_cash: starting equity (quote).
        spread_bps, sigma, adv: (T, N) market context, or (1, 1) when unused.
        bid_px, bid_qty, ask_px, ask_qty: (T, N, L) book in force at execution, or (1, 1, 1).
        record: also fill the dense per-fill arrays and per-row series.
        n_chunks: number of parallel ranges of parameter sets.

    Returns:
        equity (T, K); per-k sums fees, slippage, funding, turnover (sum of traded notional /
        equity), bars with exposure, n_fills; status, status_row, status_col (K,); and when
        record: gross exposure (T, K), turnover (T, K) and fills (T, N, K) x 6
        (qty, arrival_px, fill_px, fee, half_spread_cost, unfilled_qty).
    """
    t_len, n, k_len = weights.shape
    equity = np.empty((t_len, k_len))
    fees = np.zeros(k_len)
    slip = np.zeros(k_len)
    fund = np.zeros(k_len)
    traded = np.zeros(k_len)
    exposed = np.zeros(k_len, dtype=np.int64)
    n_fills = np.zeros(k_len, dtype=np.int64)
    status = np.zeros(k_len, dtype=np.int64)
    status_row = np.full(k_len, -1, dtype=np.int64)
    status_col = np.full(k_len, -1, dtype=np.int64)
    rt = t_len if record else 0
    rn = n if record else 0
    rk = k_len if record else 0
    gross_s = np.zeros((rt, rk))
    turn_s = np.zeros((rt, rk))
    rec = (np.zeros((rt, rn, rk)), np.full((rt, rn, rk), np.nan), np.full((rt, rn, rk), np.nan),
           np.zeros((rt, rn, rk)), np.zeros((rt, rn, rk)), np.zeros((rt, rn, rk)))
    pos = np.zeros((k_len, n))
    cash = np.full(k_len, init_cash)
    has_funding = funding.shape[0] > 1
    sim = (fee_bps, slip_model, slip_bps, impact_k, max_gross, book_levels, exhaustion,
           penalty_bps, lot_size, min_trade_frac, record)
    ctx = (spread_bps, sigma, adv, bid_px, bid_qty, ask_px, ask_qty)
    out = (fees, slip, traded, n_fills)
    for c in prange(n_chunks):
        k0 = c * k_len // n_chunks
        k1 = (c + 1) * k_len // n_chunks
        for s in range(t_len):
            d = s - lag
            for k in range(k0, k1):
                if status[k] != OK:
                    equity[s, k] = equity[s - 1, k] if s > 0 else init_cash
                    continue
                turn_before = traded[k]
                if lag > 0 and d >= 0:
                    code, col = _rebalance(s, d, k, weights, exec_px, pos, cash, sim, ctx, out, rec)
                    if code != OK:
                        status[k] = code
                        status_row[k] = s
                        status_col[k] = col
                        equity[s, k] = equity[s - 1, k] if s > 0 else init_cash
                        continue
                e = cash[k]
                g = 0.0
                bad = -1
                for i in range(n):
                    q = pos[k, i]
                    if q != 0.0:
                        p = mark_px[s, i]
                        if not p > 0.0:
                            bad = i
                            break
                        if has_funding:
                            r = funding[s, i]
                            if r != 0.0 and not math.isnan(r):
                                amt = q * p * r
                                e -= amt
                                cash[k] -= amt
                                fund[k] += amt
                        v = q * p
                        e += v
                        g += abs(v)
                if bad >= 0:
                    p = mark_px[s, bad]
                    status[k] = NAN_PRICE_WITH_POSITION if math.isnan(p) else NONPOSITIVE_PRICE
                    status_row[k] = s
                    status_col[k] = bad
                    equity[s, k] = equity[s - 1, k] if s > 0 else init_cash
                    continue
                if lag == 0:
                    code, col = _rebalance(s, s, k, weights, exec_px, pos, cash, sim, ctx, out, rec)
                    if code != OK:
                        status[k] = code
                        status_row[k] = s
                        status_col[k] = col
                    else:
                        # trades at the mark price change equity by their costs only
                        g = 0.0
                        e = cash[k]
                        for i in range(n):
                            v = pos[k, i] * mark_px[s, i] if pos[k, i] != 0.0 else 0.0
                            e += v
                            g += abs(v)
                equity[s, k] = e
                if g > 0.0:
                    exposed[k] += 1
                if record:
                    gross_s[s, k] = g / e if e > 0.0 else math.nan
                    turn_s[s, k] = traded[k] - turn_before
                if e <= 0.0 and status[k] == OK:
                    status[k] = BANKRUPT
                    status_row[k] = s
    return (equity, fees, slip, fund, traded, exposed, n_fills, status, status_row, status_col,
            gross_s, turn_s, rec)
