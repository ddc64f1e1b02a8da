"""Numba kernels: fill prices under each slippage model (the engine's slippage seam).

Every model answers the same question for one order: given its side, size and the reference
(arrival) price, what average price does it fill at, how much of it fills, and how is the cost
split into half-spread and impact. ``fill_order`` dispatches on ``SlippageModel`` codes; the
book walk lives in ``walk_book``. All prices in quote currency, sizes in base units.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NONE = 0
FIXED_BPS = 1
HALF_SPREAD = 2
SQRT_IMPACT = 3
BOOK_WALK = 4

CANCEL_REST = 0
PENALTY = 1


@njit(cache=True)
def walk_book(side, qty, level_px, level_qty, max_levels, exhaustion, penalty_bps):  # type: ignore[no-untyped-def]
    """Volume-weighted fill of a market order against one side of a book.

    Args:
        side: +1 buy (consumes asks), -1 sell (consumes bids).
        qty: order size, base units, > 0.
        level_px: (L,) float64 prices of the side consumed, best first; NaN ends the book.
        level_qty: (L,) float64 quantities at those levels.
        max_levels: use only the first ``max_levels`` levels (0 = all).
        exhaustion: CANCEL_REST (0) or PENALTY (1) when the order exceeds the depth used.
        penalty_bps: with PENALTY, the remainder fills at the last level's price worsened by this.

    Returns:
        (avg_px, filled_qty): average fill price (NaN when nothing filled) and base units filled.

    Equivalent to:
        cum = cumsum(q); take levels until cum >= qty; avg = sum(px*q_taken) / sum(q_taken).
    """
    n = level_px.shape[0]
    return walk_book_at(
        side,
        qty,
        level_px.reshape(1, 1, n),
        level_qty.reshape(1, 1, n),
        0,
        0,
        max_levels,
        exhaustion,
        penalty_bps,
    )


@njit(cache=True, inline="always")
def walk_book_at(side, qty, px3, qty3, t, i, max_levels, exhaustion, penalty_bps):  # type: ignore[no-untyped-def]
    """``walk_book`` on the levels px3[t, i, :], qty3[t, i, :] of (T, N, L) book arrays."""
    n = px3.shape[2]
    if max_levels > 0 and max_levels < n:
        n = max_levels
    remaining = qty
    cost = 0.0
    filled = 0.0  # partial fills: summed, not qty - remaining (which cancels)
    last_px = math.nan
    for j in range(n):
        px = px3[t, i, j]
        q = qty3[t, i, j]
        if math.isnan(px) or math.isnan(q):
            break
        if q <= 0.0:
            continue
        last_px = px
        take = q if q < remaining else remaining
        cost += take * px
        filled += take
        remaining -= take
        if remaining <= 0.0:
            break
    if remaining <= 0.0:
        filled = qty  # complete: exactly the order size
    elif exhaustion == PENALTY and not math.isnan(last_px):
        cost += remaining * last_px * (1.0 + side * penalty_bps * 1e-4)
        filled = qty
    if filled <= 0.0:
        return math.nan, 0.0
    if cost == filled * last_px:  # one price level (exact: no rounding of cost / filled)
        return last_px, filled
    return cost / filled, filled


@njit(cache=True, inline="always")
def fill_order(  # type: ignore[no-untyped-def]
    model,
    side,
    qty,
    ref_px,
    slip_bps,
    spread_bps,
    impact_k,
    sigma,
    adv,
    bid_px,
    bid_qty,
    ask_px,
    ask_qty,
    bt,
    bi,
    max_levels,
    exhaustion,
    penalty_bps,
):
    """Fill one market order under ``model``.

    Args:
        model: SlippageModel code.
        side: +1 buy, -1 sell.
        qty: order size, base units, > 0.
        ref_px: reference execution price (next open, or close at lag 0), quote per base.
        slip_bps: FIXED_BPS cost in basis points of ref_px.
        spread_bps: quoted spread in bps of mid (HALF_SPREAD, SQRT_IMPACT); NaN -> 0.
        impact_k: SQRT_IMPACT coefficient k in k * sigma * sqrt(qty / adv).
        sigma: per-bar return volatility (fraction) for SQRT_IMPACT.
        adv: average bar volume in base units for SQRT_IMPACT.
        bid_px, bid_qty, ask_px, ask_qty: (T, N, L) book sides in force at execution (BOOK_WALK).
        bt, bi: row and asset index of the book levels to walk.
        max_levels, exhaustion, penalty_bps: book-walk settings (see walk_book).

    Returns:
        (fill_px, filled_qty, arrival_px, half_spread_per_unit): the average fill price, the
        base units filled (< qty only when a book walk cancels the rest), the arrival price the
        cost is measured from (ref_px, or the book mid for BOOK_WALK), and the half-spread
        part of the per-unit cost (the rest of |fill_px - arrival_px| is impact).
    """
    if model == FIXED_BPS:
        return ref_px * (1.0 + side * slip_bps * 1e-4), qty, ref_px, 0.0
    if model == HALF_SPREAD or model == SQRT_IMPACT:  # noqa: SIM109 - numba: no tuple `in`
        half = 0.0 if math.isnan(spread_bps) else 0.5 * spread_bps * 1e-4 * ref_px
        impact = 0.0
        if model == SQRT_IMPACT and adv > 0.0 and not math.isnan(sigma):
            impact = impact_k * sigma * math.sqrt(qty / adv) * ref_px
        return ref_px + side * (half + impact), qty, ref_px, half
    if model == BOOK_WALK:
        b0 = bid_px[bt, bi, 0]
        a0 = ask_px[bt, bi, 0]
        if math.isnan(b0) or math.isnan(a0):
            return math.nan, 0.0, ref_px, 0.0
        mid = 0.5 * (b0 + a0)
        # one call site: the walk is inlined once, not once per side (compile time)
        buy = side > 0
        level_px = ask_px if buy else bid_px
        level_qty = ask_qty if buy else bid_qty
        px, filled = walk_book_at(
            side, qty, level_px, level_qty, bt, bi, max_levels, exhaustion, penalty_bps
        )
        return px, filled, mid, (a0 - mid) if buy else (mid - b0)
    return ref_px, qty, ref_px, 0.0


@njit(cache=True)
def walk_many(side, qty, level_px, level_qty, max_levels, exhaustion, penalty_bps):  # type: ignore[no-untyped-def]
    """``walk_book`` for M orders against M books.

    Args:
        side: (M,) float64 +1/-1. qty: (M,) base units. level_px, level_qty: (M, L) the side
            each order consumes, best first. max_levels, exhaustion, penalty_bps: see walk_book.

    Returns:
        (avg_px (M,), filled (M,)).

    Equivalent to: ``[walk_book(side[m], qty[m], level_px[m], level_qty[m], ...) for m]``.
    """
    m_len, n = level_px.shape
    avg = np.empty(m_len)
    filled = np.empty(m_len)
    px3 = level_px.reshape(m_len, 1, n)
    q3 = level_qty.reshape(m_len, 1, n)
    for m in range(m_len):
        avg[m], filled[m] = walk_book_at(
            side[m], qty[m], px3, q3, m, 0, max_levels, exhaustion, penalty_bps
        )
    return avg, filled
