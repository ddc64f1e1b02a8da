"""Numba kernels of the backtest core: target weights -> orders -> fills -> equity.

Layout: weights arrive as (K, T, N) C-contiguous (parameter set, time, asset), so each path's
weights are one contiguous block; paths are independent and run in parallel (prange over K),
each walking time with its state in local scalars. Assets of one path share one equity, so
they are simulated together, not in parallel. Per-path outputs are written as (K, T) rows; the
API returns them transposed to (T, K) without copying.

Row ``s`` of a run, for parameter set k (times are Panel availability times):
  1. lag >= 1: execute the targets decided at row d = s - lag at the execution price of row s
     (the open of bar s, i.e. right after the decision row's close);
  2. funding: every held position pays ``pos * mark_px[s] * funding[s]`` (longs pay when > 0);
  3. mark to market at ``mark_px[s]`` (the close) -> equity[s];
  4. lag == 0: execute the targets decided at row s at the execution price (= the close).
A NaN target means "no order for this asset at this row" (the position is kept).

Execution prices are ``exec_px[s - exec_shift]``: the open (shift 0), or the previous close
(``exec_px`` = the close array, shift 1) when no open is given, without copying the array.

Three per-path kernels implement these rules with the same arithmetic, operation for
operation, so they give bit-identical results where more than one applies:
  - ``backtest_path_nb.simulate_path``: every slippage model, funding, per-fill records;
  - ``backtest_fast_nb.simulate_path_fast``: slippage NONE / FIXED_BPS, no funding, no
    records. Its loop holds no model dispatch, funding or record branches and no calls;
  - ``backtest_fast_nb.simulate_one_fast``: the same for one asset, position in a register.
``run_path`` picks one per path (branch hoisting by dispatch: the choice is made once, not
per row). ``simulate_weights`` runs the paths in parallel; one path (K = 1) is run by
``engine.backtest._run_one_path``, which makes the same choice in Python so that only the
kernel that runs is compiled. With ``curves`` False no kernel writes the (K, T) equity / return
rows, only the per-path statistics (S_* columns), which is what parameter sweeps need.
"""

from __future__ import annotations

import math

from numba import njit, prange

from alphaforge.engine import backtest_fast_nb, backtest_path_nb
from alphaforge.engine.backtest_path_nb import (
    BANKRUPT,
    INF_WEIGHT,
    N_STATS,
    NAN_PRICE_WITH_POSITION,
    NAN_PRICE_WITH_TARGET,
    NONPOSITIVE_PRICE,
    OK,
    P_FEE_BPS,
    P_MAX_GROSS,
    P_SLIP_BPS,
    S_COL,
    S_EXPOSED,
    S_FEES,
    S_FILLS,
    S_FINAL,
    S_FUNDING,
    S_HALF,
    S_MAX_DD,
    S_RET_SQ,
    S_RET_SUM,
    S_ROW,
    S_ROWS,
    S_SLIPPAGE,
    S_STATUS,
    S_TURNOVER,
)
from alphaforge.engine.slippage_nb import FIXED_BPS, NONE

__all__ = [
    "BANKRUPT",
    "INF_WEIGHT",
    "NAN_PRICE_WITH_POSITION",
    "NAN_PRICE_WITH_TARGET",
    "NONPOSITIVE_PRICE",
    "N_STATS",
    "OK",
    "S_COL",
    "S_EXPOSED",
    "S_FEES",
    "S_FILLS",
    "S_FINAL",
    "S_FUNDING",
    "S_HALF",
    "S_MAX_DD",
    "S_RET_SQ",
    "S_RET_SUM",
    "S_ROW",
    "S_ROWS",
    "S_SLIPPAGE",
    "S_STATUS",
    "S_TURNOVER",
    "find_invalid_price",
    "run_path",
    "simulate_weights",
]


@njit(cache=True)
def run_path(  # type: ignore[no-untyped-def]
    k,
    weights,
    exec_px,
    exec_shift,
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
    curves,
    out,
):
    """Simulate path k with the fastest kernel that applies (``out``: see simulate_weights)."""
    equity, rets, stats, gross, turn, rec = out
    n = weights.shape[2]
    fast = (slip_model == NONE or slip_model == FIXED_BPS) and funding.shape[0] == 1  # noqa: SIM109 - numba
    if fast and not record:
        slip_rate = kparams[k, P_SLIP_BPS] * 1e-4 if slip_model == FIXED_BPS else 0.0
        if n == 1:
            backtest_fast_nb.simulate_one_fast(
                weights[k], exec_px, exec_shift, mark_px, lag, kparams[k, P_FEE_BPS] * 1e-4,
                slip_rate, kparams[k, P_MAX_GROSS], lot_size, min_trade_frac, init_cash,
                curves, equity[k], rets[k], stats[k],
            )  # fmt: skip
        else:
            backtest_fast_nb.simulate_path_fast(
                weights[k], exec_px, exec_shift, mark_px, lag, kparams[k, P_FEE_BPS] * 1e-4,
                slip_rate, kparams[k, P_MAX_GROSS], lot_size, min_trade_frac, init_cash,
                curves, equity[k], rets[k], stats[k],
            )  # fmt: skip
        return
    backtest_path_nb.simulate_path(
        weights[k], exec_px, exec_shift, mark_px, funding, lag, kparams[k], slip_model,
        exhaustion, penalty_bps, lot_size, min_trade_frac, init_cash, ctx, bid_px, bid_qty,
        ask_px, ask_qty, record, curves, equity[k], rets[k], gross[k], turn[k], rec[k], stats[k],
    )  # fmt: skip


@njit(cache=True, parallel=True)
def simulate_weights(  # type: ignore[no-untyped-def]
    weights,
    exec_px,
    exec_shift,
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
    curves,
    out,
):
    """Simulate K target-weight paths in parallel (one per-path kernel per parameter set).

    Args:
        weights: (K, T, N) float64 C-contiguous target fractions of equity (NaN = no order).
        exec_px: (T, N) execution prices read at row s - exec_shift (shift 0 or 1).
        mark_px: (T, N) closes. funding: (T, N) rates or (1, 1) for none.
        kparams: (K, 5) per-path fee_bps, slip_bps, impact_k, max_gross, book_levels.
        curves: write the (K, T) equity and return rows.
        out: the outputs, filled in place (allocated by the caller, so large ones get the
            allocator's huge pages and can be reused across chunks of a sweep): equity and
            returns (K, T) (or (K, 0) without curves), stats (K, N_STATS) zeros (see S_*
            columns), gross and turnover (K, T) zeros and records (K, 6, T, N) zeros with
            NaN arrival/fill prices when ``record`` (else zero-size).
        Others: as ``backtest_path_nb.simulate_path``.
    """
    for k in prange(weights.shape[0]):
        run_path(
            k, weights, exec_px, exec_shift, mark_px, funding, lag, kparams, slip_model,
            exhaustion, penalty_bps, lot_size, min_trade_frac, init_cash, ctx, bid_px,
            bid_qty, ask_px, ask_qty, record, curves, out,
        )  # fmt: skip


@njit(cache=True, error_model="numpy", boundscheck=False)
def find_invalid_price(px):  # type: ignore[no-untyped-def]
    """Flat index of the first price that is <= 0 or infinite (NaN is allowed), else -1.

    Args:
        px: (T, N) float64 prices, C-contiguous.

    A branch-free counting pass first (it vectorises, so valid input costs one streaming
    read), then a scalar search only when something is wrong.

    Equivalent to: ``np.flatnonzero((px <= 0) | np.isinf(px))[:1]`` (or -1).
    """
    flat = px.ravel()
    bad = 0
    for j in range(flat.size):
        x = flat[j]
        bad += (x <= 0.0) | (x == math.inf)
    if bad == 0:
        return -1
    for j in range(flat.size):
        x = flat[j]
        if x <= 0.0 or x == math.inf:
            return j
    return -1
