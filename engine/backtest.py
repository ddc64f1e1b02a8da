"""Backtest API: validate inputs, call the numba core, turn status codes into errors.

    result = run_backtest(weights, close=close, open=open_, lag=1, fee_bps=4, slippage_bps=1)

Timing (design.md): a decision made with the data of Panel row t executes at row t + lag:
at that bar's open when ``open`` is given (else the previous close, the same instant on a
gap-free bar grid), or at the close of row t itself when lag = 0. Nothing reads a value from
after the decision time. See engine/backtest_nb.py for the per-row order of operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine import backtest_nb
from alphaforge.engine.backtest_fast_nb import simulate_one_fast, simulate_path_fast
from alphaforge.engine.backtest_path_nb import P_FEE_BPS, P_MAX_GROSS, P_SLIP_BPS, simulate_path
from alphaforge.engine.errors import InputError, OptionError, ShapeError
from alphaforge.engine.panel import BookLevels
from alphaforge.engine.slippage_nb import FIXED_BPS as SLIP_FIXED_BPS
from alphaforge.engine.slippage_nb import NONE as SLIP_NONE
from alphaforge.engine.types import TRADE_DTYPE, Exhaustion, SlippageModel

F64 = npt.NDArray[np.float64]
_NO_CTX = np.full((1, 1), np.nan)
_NO_BOOK = np.full((1, 1, 1), np.nan)


@dataclass(frozen=True, slots=True)
class Slippage:
    """Slippage model settings (one seam for every model).

    Attributes:
        model: a SlippageModel or its name ("none", "fixed_bps", "half_spread",
            "sqrt_impact", "book_walk").
        bps: FIXED_BPS cost in basis points of the execution price (scalar or (K,)).
        spread_bps: (T, N) quoted spread in bps of mid at execution (HALF_SPREAD, SQRT_IMPACT).
        impact_k: SQRT_IMPACT coefficient k (scalar or (K,)).
        sigma: (T, N) per-bar return volatility at execution (SQRT_IMPACT).
        adv: (T, N) average bar volume in base units at execution (SQRT_IMPACT).
        book: book levels in force at execution (BOOK_WALK), (T, N, L) per side.
        book_levels: levels to use, 0 = all (scalar or (K,)).
        exhaustion: what a walk does past the visible depth.
        penalty_bps: with Exhaustion.PENALTY, price penalty of the unfilled remainder.
    """

    model: SlippageModel | str = SlippageModel.FIXED_BPS
    bps: float | F64 = 0.0
    spread_bps: F64 | None = None
    impact_k: float | F64 = 0.0
    sigma: F64 | None = None
    adv: F64 | None = None
    book: BookLevels | None = None
    book_levels: int | npt.NDArray[np.int64] = 0
    exhaustion: Exhaustion = Exhaustion.CANCEL_REST
    penalty_bps: float = 0.0

    @property
    def code(self) -> SlippageModel:
        """The model as a SlippageModel member."""
        if isinstance(self.model, SlippageModel):
            return self.model
        try:
            return SlippageModel[str(self.model).upper()]
        except KeyError:
            names = [m.name.lower() for m in SlippageModel]
            raise OptionError(
                f"unknown slippage model {self.model!r}; expected one of {names}"
            ) from None


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Outputs of ``run_backtest``. Arrays are (T,) / scalars for a single run and (T, K) /
    (K,) for a batch of K parameter sets.

    Attributes:
        equity: equity after marking each row, quote currency.
        returns: per-row simple returns, equity[t] / equity[t-1] - 1 (row 0 against init_cash).
        fees, slippage, funding: totals paid, quote currency (funding < 0 means received).
        turnover: sum over fills of traded notional / equity at the time (one-way).
        exposure: fraction of rows with a non-zero position.
        n_fills: number of fills.
        gross: (T[, K]) gross exposure / equity per row (record=True only, else None).
        turnover_series: (T[, K]) traded notional / equity per row (record=True only).
        trades: structured array of TRADE_DTYPE (record=True only).
        init_cash: starting equity.
    """

    equity: F64
    returns: F64
    fees: Any
    slippage: Any
    funding: Any
    turnover: Any
    exposure: Any
    n_fills: Any
    gross: F64 | None = None
    turnover_series: F64 | None = None
    trades: np.ndarray | None = None
    init_cash: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)


def _per_k(name: str, value: Any, k: int, dtype: type = np.float64) -> np.ndarray:
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        arr = np.full(k, arr.item(), dtype=dtype)
    if arr.shape != (k,):
        raise ShapeError(f"{name} must be a scalar or shape (K,) = ({k},); got {arr.shape}")
    if dtype is np.float64 and not np.all(np.isfinite(arr) | (arr == np.inf)):
        raise OptionError(f"{name} must be finite; got {arr}")
    return np.ascontiguousarray(arr)


def _weights(weights: Any) -> tuple[F64, bool]:
    """Weights as a (K, T, N) C-contiguous array (zero-copy when the caller built them as
    (K, T, N) and passed ``np.moveaxis(w, 0, -1)``), and whether the input had no K axis."""
    w = np.asarray(weights, dtype=np.float64)
    squeeze = w.ndim <= 2
    if w.ndim == 1:
        w = w.reshape(-1, 1, 1)
    elif w.ndim == 2:
        w = w[:, :, None]
    elif w.ndim != 3:
        raise ShapeError(f"weights must be (T,), (T, N) or (T, N, K); got shape {w.shape}")
    # inf weights are reported by the kernel (status INF_WEIGHT), which reads every weight
    return np.ascontiguousarray(np.moveaxis(w, -1, 0)), squeeze


def _exec_prices(close: F64, open_: F64 | None, lag: int) -> tuple[F64, int]:
    """Execution price array and row shift: row s executes at ``px[s - shift]``."""
    if lag == 0:
        return close, 0
    if open_ is not None:
        return open_, 0
    return close, 1  # the previous close, without copying


def run_backtest(
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
    record_trades: bool = False,
    symbols: tuple[str, ...] | None = None,
) -> BacktestResult:
    """Simulate target weights with fees, slippage, funding, leverage cap and lot rounding.

    Args:
        weights: (T, N) target fraction of equity per asset, or (T, N, K) for K parameter
            sets (or (T,) for one asset). NaN = no order for that asset at that row.
        close: (T, N) close prices (mark-to-market; execution price when lag = 0).
        open: (T, N) open prices; with lag >= 1, row t's decision fills at open[t + lag].
        lag: rows between decision and execution (>= 0).
        fee_bps: taker fee in basis points of traded notional (scalar or (K,)).
        slippage_bps: shorthand for ``Slippage(model="fixed_bps", bps=...)``.
        slippage: a full slippage model (overrides slippage_bps).
        funding: (T, N) funding rate applied to held positions at each row (NaN/0 = none).
        lot_size: base-unit lot size, scalar or (N,); target positions are rounded toward 0.
        max_gross: gross leverage cap sum |w| (scalar or (K,)); targets are scaled down.
        min_trade_frac: skip orders smaller than this fraction of equity.
        init_cash: starting equity in quote currency (> 0).
        record_trades: also return per-fill records and per-row gross/turnover series.
        symbols: asset names, used only in error messages.

    Returns:
        BacktestResult.

    Raises:
        ShapeError, InputError, OptionError: bad inputs, named with row/column.
    """
    out = simulate(
        weights, close=close, open=open, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
        slippage=slippage, funding=funding, lot_size=lot_size, max_gross=max_gross,
        min_trade_frac=min_trade_frac, init_cash=init_cash, record_trades=record_trades,
        symbols=symbols, curves=True,
    )  # fmt: skip
    stats = out.stats
    trades = _trades(out.rec, int(lag)) if record_trades else None
    sq = out.squeeze_fn()
    return BacktestResult(
        equity=sq(out.equity.T),
        returns=sq(out.returns.T),
        fees=sq(stats[:, backtest_nb.S_FEES]),
        slippage=sq(stats[:, backtest_nb.S_SLIPPAGE]),
        funding=sq(stats[:, backtest_nb.S_FUNDING]),
        turnover=sq(stats[:, backtest_nb.S_TURNOVER]),
        exposure=sq(stats[:, backtest_nb.S_EXPOSED] / out.t_len),
        n_fills=sq(stats[:, backtest_nb.S_FILLS].astype(np.int64)),
        gross=sq(out.gross.T) if record_trades else None,
        turnover_series=sq(out.turn.T) if record_trades else None,
        trades=trades,
        init_cash=float(init_cash),
        meta={"lag": int(lag), "slippage": out.model.name.lower()},
    )


@dataclass(frozen=True, slots=True)
class KernelOutput:
    """Raw kernel outputs of ``simulate``: (K, T) rows (or (K, 0) without curves), stats
    (K, N_STATS) by the S_* columns of engine.backtest_path_nb, record arrays, and shape info."""

    equity: F64
    returns: F64
    stats: F64
    gross: F64
    turn: F64
    rec: F64
    t_len: int
    squeeze: bool
    model: SlippageModel

    def squeeze_fn(self) -> Any:
        """A function dropping the K axis of single-run outputs ((T, 1) -> (T,), (1,) -> float)."""

        def sq(a: np.ndarray) -> Any:
            if not self.squeeze:
                return a
            return a[..., 0] if a.ndim == 2 else a[0].item()

        return sq


def simulate(
    weights: Any,
    *,
    close: Any,
    open: Any | None,
    lag: int,
    fee_bps: float | F64,
    slippage_bps: float | F64,
    slippage: Slippage | None,
    funding: Any | None,
    lot_size: float | F64 | None,
    max_gross: float | F64,
    min_trade_frac: float,
    init_cash: float,
    record_trades: bool,
    symbols: tuple[str, ...] | None,
    curves: bool,
) -> KernelOutput:
    """Validate the inputs of ``run_backtest`` (same arguments) and run the kernel.

    ``curves`` False skips the (K, T) equity and return rows (parameter sweeps, see
    engine.backtest_stats); the per-path statistics are computed either way. K = 1 runs on
    the calling thread, K > 1 in parallel over parameter sets.

    Raises:
        ShapeError, InputError, OptionError: bad inputs, named with row/column.
    """
    w, squeeze = _weights(weights)
    k_len, t_len, n = w.shape
    if not isinstance(lag, int | np.integer) or lag < 0:
        raise OptionError(f"lag must be an integer >= 0; got {lag!r}")
    if t_len == 0:
        raise ShapeError("weights have zero rows")
    if not (math.isfinite(init_cash) and init_cash > 0):
        raise OptionError(f"init_cash must be a positive number; got {init_cash}")
    close_a = _prices_allow_nan("close", close, (t_len, n))
    open_a = None if open is None else _prices_allow_nan("open", open, (t_len, n))
    exec_px, exec_shift = _exec_prices(close_a, open_a, int(lag))
    slip = slippage if slippage is not None else Slippage(SlippageModel.FIXED_BPS, bps=slippage_bps)
    code = slip.code
    ctx = _context(slip, code, t_len, n)
    fund = _NO_CTX if funding is None else _finite_or_nan("funding", funding, (t_len, n))
    lots = np.zeros(n) if lot_size is None else _per_k("lot_size", lot_size, n)
    if np.any(lots < 0):
        raise OptionError(f"lot_size must be >= 0; got {lots}")
    fee = _per_k("fee_bps", fee_bps, k_len)
    if np.any(fee < 0):
        raise OptionError(f"fee_bps must be >= 0; got {fee}")
    kparams = np.column_stack(
        [
            fee,
            _per_k("slippage bps", slip.bps, k_len),
            _per_k("impact_k", slip.impact_k, k_len),
            _per_k("max_gross", max_gross, k_len),
            _per_k("book_levels", slip.book_levels, k_len, np.int64).astype(np.float64),
        ]
    )
    if np.any(kparams[:, 3] <= 0):
        raise OptionError(f"max_gross must be > 0; got {kparams[:, 3]}")
    out = allocate_outputs(k_len, t_len, n, bool(record_trades), bool(curves))
    args = (w, exec_px, exec_shift, close_a, fund, int(lag), np.ascontiguousarray(kparams),
            int(code.value), int(slip.exhaustion.value), float(slip.penalty_bps), lots,
            float(min_trade_frac), float(init_cash), *ctx, bool(record_trades), bool(curves),
            out)  # fmt: skip
    if k_len > 1:
        backtest_nb.simulate_weights(*args)
    else:
        _run_one_path(*args)
    _raise_status(out[2], symbols)
    return KernelOutput(*out, t_len, squeeze, code)


def _run_one_path(w: F64, exec_px: F64, exec_shift: int, mark_px: F64, funding: F64, lag: int,
                  kparams: F64, slip_model: int, exhaustion: int, penalty_bps: float,
                  lot_size: F64, min_trade_frac: float, init_cash: float, ctx: F64,
                  bid_px: F64, bid_qty: F64, ask_px: F64, ask_qty: F64, record: bool,
                  curves: bool, out: tuple[F64, ...]) -> None:  # fmt: skip
    """K = 1 on the calling thread: ``backtest_nb.run_path``'s choice of per-path kernel, made
    here so that only the kernel that runs gets compiled (a numba caller compiles every kernel
    it can call: the fast loop alone compiles in ~2 s, all three variants in ~11 s).

    Same kernels, same arguments as ``run_path`` for k = 0, so the results are identical.
    """
    equity, rets, stats, gross, turn, rec = out
    fast = slip_model in (SLIP_NONE, SLIP_FIXED_BPS) and funding.shape[0] == 1
    if fast and not record:
        slip_rate = kparams[0, P_SLIP_BPS] * 1e-4 if slip_model == SLIP_FIXED_BPS else 0.0
        kernel = simulate_one_fast if w.shape[2] == 1 else simulate_path_fast
        kernel(w[0], exec_px, exec_shift, mark_px, lag, kparams[0, P_FEE_BPS] * 1e-4, slip_rate,
               kparams[0, P_MAX_GROSS], lot_size, min_trade_frac, init_cash, curves, equity[0],
               rets[0], stats[0])  # fmt: skip
        return
    simulate_path(w[0], exec_px, exec_shift, mark_px, funding, lag, kparams[0], slip_model,
                  exhaustion, penalty_bps, lot_size, min_trade_frac, init_cash, ctx, bid_px,
                  bid_qty, ask_px, ask_qty, record, curves, equity[0], rets[0], gross[0],
                  turn[0], rec[0], stats[0])  # fmt: skip


def allocate_outputs(
    k_len: int, t_len: int, n: int, record: bool, curves: bool
) -> tuple[F64, F64, F64, F64, F64, F64]:
    """Kernel outputs (see ``backtest_nb.simulate_weights``), allocated by numpy."""
    ct = t_len if curves else 0
    rt = t_len if record else 0
    rec = np.zeros((k_len, 6, rt, n))
    rec[:, 1:3] = np.nan
    return (
        np.empty((k_len, ct)),
        np.empty((k_len, ct)),
        np.zeros((k_len, backtest_nb.N_STATS)),
        np.zeros((k_len, rt)),
        np.zeros((k_len, rt)),
        rec,
    )


def _prices_allow_nan(name: str, px: Any, shape: tuple[int, int]) -> F64:
    """Prices may be NaN (asset not trading); they may not be <= 0 or inf."""
    arr = np.ascontiguousarray(px, dtype=np.float64)
    if arr.ndim == 1 and shape[1] == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape != shape:
        raise ShapeError(f"{name} has shape {arr.shape}; weights imply (T, N) = {shape}")
    bad = int(backtest_nb.find_invalid_price(arr))
    if bad >= 0:
        r, c = divmod(bad, shape[1])
        raise InputError(f"{name} has an invalid price {arr[r, c]} at row {r}, column {c}")
    return arr


def _finite_or_nan(name: str, a: Any, shape: tuple[int, int]) -> F64:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim == 1 and shape[1] == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape != shape:
        raise ShapeError(f"{name} has shape {arr.shape}; expected (T, N) = {shape}")
    if np.isinf(arr).any():
        raise InputError(f"{name} contains inf")
    return arr


def _context(slip: Slippage, code: SlippageModel, t_len: int, n: int) -> tuple[Any, ...]:
    """(ctx (3, T, N) or (3, 1, 1), bid_px, bid_qty, ask_px, ask_qty) for the kernel."""
    spread = sigma = adv = _NO_CTX
    book: tuple[np.ndarray, ...] = (_NO_BOOK,) * 4
    if code in (SlippageModel.HALF_SPREAD, SlippageModel.SQRT_IMPACT):
        if slip.spread_bps is None:
            raise OptionError(f"slippage model {code.name.lower()} needs spread_bps (T, N)")
        spread = _finite_or_nan("spread_bps", slip.spread_bps, (t_len, n))
        if code == SlippageModel.SQRT_IMPACT:
            if slip.sigma is None or slip.adv is None:
                raise OptionError("slippage model sqrt_impact needs sigma and adv (T, N)")
            sigma = _finite_or_nan("sigma", slip.sigma, (t_len, n))
            adv = _finite_or_nan("adv", slip.adv, (t_len, n))
        # the kernel tells 'no context' by a first dimension of 1
        if t_len == 1:
            raise ShapeError("model-based slippage needs at least 2 rows")
    if code == SlippageModel.BOOK_WALK:
        if slip.book is None:
            raise OptionError("slippage model book_walk needs book levels (T, N, L)")
        if slip.book.bid_px.shape[:2] != (t_len, n):
            raise ShapeError(
                f"book has (T, N) = {slip.book.bid_px.shape[:2]}; expected {(t_len, n)}"
            )
        if t_len == 1:
            raise ShapeError("book_walk needs at least 2 rows")
        book = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in slip.book._arrays())
    if spread is _NO_CTX:
        ctx = np.full((3, 1, 1), np.nan)
    else:
        ctx = np.stack(
            [
                spread,
                sigma if sigma is not _NO_CTX else np.full_like(spread, np.nan),
                adv if adv is not _NO_CTX else np.full_like(spread, np.nan),
            ]
        )
    return (ctx, *book)


def _raise_status(stats: F64, symbols: tuple[str, ...] | None) -> None:
    status = stats[:, backtest_nb.S_STATUS].astype(np.int64)
    bad = np.flatnonzero((status != backtest_nb.OK) & (status != backtest_nb.BANKRUPT))
    if not bad.size:
        return
    k = int(bad[0])
    row = int(stats[k, backtest_nb.S_ROW])
    c = int(stats[k, backtest_nb.S_COL])
    name = symbols[c] if symbols is not None and 0 <= c < len(symbols) else f"column {c}"
    if int(status[k]) == backtest_nb.INF_WEIGHT:
        raise InputError(f"weights contain inf: asset {name}, row {row}, parameter set {k}")
    what = {
        backtest_nb.NAN_PRICE_WITH_POSITION: "price is NaN while a position is held",
        backtest_nb.NONPOSITIVE_PRICE: "price is not positive",
        backtest_nb.NAN_PRICE_WITH_TARGET: "a non-zero target weight meets a NaN execution price",
    }[int(status[k])]
    raise InputError(f"{what}: asset {name}, row {row}, parameter set {k}")


def _trades(rec: np.ndarray, lag: int) -> np.ndarray:
    """Per-fill records from the dense (K, 6, T, N) record array, ordered by (k, row, col)
    (the C order of a (K, T, N) plane, so ``np.nonzero`` yields them sorted)."""
    qty, arrival, fill, fee, half, unfilled = (rec[:, j] for j in range(6))
    where = np.nonzero((qty != 0) | (unfilled != 0))
    k_idx, s_idx, i_idx = where
    out = np.zeros(s_idx.size, dtype=TRADE_DTYPE)
    out["row"] = s_idx
    out["decision_row"] = s_idx - lag
    out["col"] = i_idx
    out["param"] = k_idx
    q = qty[where]
    fill_px = fill[where]
    ref_px = arrival[where]
    out["qty"] = q
    out["ref_px"] = ref_px
    out["fill_px"] = fill_px
    out["notional"] = np.abs(q) * np.nan_to_num(fill_px)
    out["fee"] = fee[where]
    slippage = np.where(q != 0, np.sign(q) * np.abs(q) * (fill_px - ref_px), 0.0)
    half_spread = half[where]
    out["slippage"] = slippage
    out["half_spread"] = half_spread
    out["impact"] = slippage - half_spread
    out["unfilled_qty"] = unfilled[where]
    return out
