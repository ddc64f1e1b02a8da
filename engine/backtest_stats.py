"""Backtest summaries without curves, for large parameter sweeps.

    stats = run_backtest_stats(weights_tnk, close=close, fee_bps=4)   # (K,) arrays
    best = np.argmax(stats.mean_return / stats.std_return)

Same inputs, validation, timing and fills as ``engine.backtest.run_backtest`` (it runs the same
kernels); the only difference is that no (T, K) equity / return array is written. A sweep of
K = 1,000 paths over T = 100,000 rows would otherwise write 1.6 GB of curves it then reduces to
a few numbers; here each path keeps running sums instead (see ``BacktestStats``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine import backtest_nb
from alphaforge.engine.backtest import Slippage, simulate

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BacktestStats:
    """Per-path summary statistics: (K,) arrays for a batch, floats for a single run.

    Attributes:
        final_equity: equity after the last row, quote currency (== equity[-1]).
        total_return: final_equity / init_cash - 1.
        mean_return: mean of the T per-row simple returns (== returns.mean()).
        std_return: their sample standard deviation, ddof = 1 (NaN when T < 2); computed
            from running sums of r and r**2 (per-row returns are small, so the cancellation
            of sum(r**2) - sum(r)**2 / T costs ~1e-12 relative at most for |mean| < std).
        max_drawdown: max over rows of 1 - equity / running peak, the peak starting at
            init_cash (>= 0).
        fees, slippage, funding, turnover, exposure, n_fills: as in BacktestResult.
        bankrupt: whether the path's equity reached <= 0 (it is then frozen, as in
            BacktestResult).
        n_rows: T.
        init_cash: starting equity.
    """

    final_equity: Any
    total_return: Any
    mean_return: Any
    std_return: Any
    max_drawdown: Any
    fees: Any
    slippage: Any
    funding: Any
    turnover: Any
    exposure: Any
    n_fills: Any
    bankrupt: Any
    n_rows: int
    init_cash: float = 1.0


def run_backtest_stats(
    weights: Any,
    *,
    close: Any,
    open: Any | None = None,
    lag: int = 1,
    fee_bps: float | F64 = 0.0,
    slippage_bps: float | F64 = 0.0,
    slippage: Slippage | None = None,
    funding: Any | None = None,
    lot_size: float | F64 | None = None,
    max_gross: float | F64 = math.inf,
    min_trade_frac: float = 0.0,
    init_cash: float = 1.0,
    symbols: tuple[str, ...] | None = None,
) -> BacktestStats:
    """``run_backtest`` reduced to per-path statistics, without writing curves.

    Args:
        weights: (T, N) or (T, N, K) target weights (or (T,)), NaN = no order; pass a
            (K, T, N) C-contiguous array as ``np.moveaxis(w, 0, -1)`` to avoid a copy.
        Others: as ``engine.backtest.run_backtest``.

    Returns:
        BacktestStats.

    Raises:
        ShapeError, InputError, OptionError: bad inputs, named with row/column.
    """
    out = simulate(
        weights, close=close, open=open, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
        slippage=slippage, funding=funding, lot_size=lot_size, max_gross=max_gross,
        min_trade_frac=min_trade_frac, init_cash=init_cash, record_trades=False,
        symbols=symbols, curves=False,
    )  # fmt: skip
    st = out.stats
    t = out.t_len
    rsum = st[:, backtest_nb.S_RET_SUM]
    var = (st[:, backtest_nb.S_RET_SQ] - rsum * rsum / t) / (t - 1) if t > 1 else np.nan * rsum
    final = st[:, backtest_nb.S_FINAL]
    sq = out.squeeze_fn()
    return BacktestStats(
        final_equity=sq(final),
        total_return=sq(final / init_cash - 1.0),
        mean_return=sq(rsum / t),
        std_return=sq(np.sqrt(np.maximum(var, 0.0))),
        max_drawdown=sq(st[:, backtest_nb.S_MAX_DD]),
        fees=sq(st[:, backtest_nb.S_FEES]),
        slippage=sq(st[:, backtest_nb.S_SLIPPAGE]),
        funding=sq(st[:, backtest_nb.S_FUNDING]),
        turnover=sq(st[:, backtest_nb.S_TURNOVER]),
        exposure=sq(st[:, backtest_nb.S_EXPOSED] / t),
        n_fills=sq(st[:, backtest_nb.S_FILLS].astype(np.int64)),
        bankrupt=sq(st[:, backtest_nb.S_STATUS] == backtest_nb.BANKRUPT),
        n_rows=t,
        init_cash=float(init_cash),
    )
