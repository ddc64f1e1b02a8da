"""Slippage model inputs: trailing sigma / ADV without look-ahead, impact-k fitting, batch walks.

The models themselves live in engine/slippage_nb.py (``fill_order``, inlined in the backtest
fill loop) and are selected with ``engine.backtest.Slippage``. Their (T, N) context arrays
(``spread_bps``, ``sigma``, ``adv``) and the book are indexed by EXECUTION row s; a decision at
row d = s - lag may only use data up to row d. ``trailing_sigma`` / ``trailing_adv`` compute
statistics over windows ending at each row and ``to_execution_rows`` shifts them by ``lag``
so that row s holds the value known at the decision row.

Square-root impact: per-unit cost as a fraction of the arrival price is
``half_spread_frac + k * sigma * sqrt(q / ADV)``; ``fit_impact_k`` estimates k by least squares
through the origin on observed impact costs (e.g. book-walk fills).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine import slippage_nb
from alphaforge.engine.errors import InputError, OptionError, ShapeError
from alphaforge.engine.panel import BookLevels
from alphaforge.engine.types import TRADE_DTYPE, Exhaustion

F64 = npt.NDArray[np.float64]


def _two_d(name: str, a: Any) -> F64:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be (T,) or (T, N); got shape {arr.shape}")
    return arr


def trailing_sigma(close: Any, window: int, min_periods: int | None = None) -> F64:
    """Standard deviation (ddof=1) of simple returns over the ``window`` returns ending at row t.

    Args:
        close: (T, N) prices (NaN = missing). window: returns per window (>= 2).
        min_periods: fewest valid returns for a value (default: window).

    Returns:
        (T, N) float64 per-bar volatility (fraction); row t uses close[t - window .. t] only.

    Equivalent to: ``df.pct_change(fill_method=None).rolling(window, min_periods).std()``.
    """
    if window < 2:
        raise OptionError(f"window must be >= 2; got {window}")
    px = _two_d("close", close)
    import pandas as pd  # here: most commands never need it (0.5 s to import)

    rets = pd.DataFrame(px).pct_change(fill_method=None)
    mp = window if min_periods is None else min_periods
    return np.ascontiguousarray(rets.rolling(window, min_periods=mp).std().to_numpy())


def trailing_adv(volume: Any, window: int, min_periods: int | None = None) -> F64:
    """Mean traded volume per bar (base units) over the ``window`` bars ending at row t.

    Equivalent to: ``df.rolling(window, min_periods).mean()`` (NaN volumes skipped).
    """
    if window < 1:
        raise OptionError(f"window must be >= 1; got {window}")
    vol = _two_d("volume", volume)
    mp = window if min_periods is None else min_periods
    import pandas as pd

    return np.ascontiguousarray(pd.DataFrame(vol).rolling(window, min_periods=mp).mean().to_numpy())


def to_execution_rows(values: Any, lag: int = 1) -> F64:
    """Shift a (T, N) decision-time array down by ``lag`` rows (row s holds row s - lag; the
    first ``lag`` rows are NaN), the indexing ``Slippage`` context arrays need."""
    arr = _two_d("values", values)
    if lag < 0:
        raise OptionError(f"lag must be >= 0; got {lag}")
    out = np.full_like(arr, np.nan)
    out[lag:] = arr[: arr.shape[0] - lag] if lag else arr
    return out


def fit_impact_k(trades_or_qty: Any, adv: Any, sigma: Any, cost: Any | None = None) -> float:
    """Least-squares k of ``impact = k * sigma * sqrt(q / ADV)`` (through the origin).

    Two call forms:
      - ``fit_impact_k(trades, adv, sigma)``: ``trades`` a TRADE_DTYPE record array (from
        ``run_backtest(..., record_trades=True)``, e.g. a book-walk run); ``adv`` and
        ``sigma`` are the (T, N) execution-row arrays; the observed per-unit impact fraction
        is ``impact / (|qty| * ref_px)`` of each fill.
      - ``fit_impact_k(qty, adv, sigma, cost)``: 1-D arrays of order sizes (base units),
        ADV (base units), sigma (fraction) and observed impact cost (fraction of arrival).

    Returns:
        k minimising sum((cost - k * x)^2) with x = sigma * sqrt(q / adv); rows with any
        NaN, q <= 0 or adv <= 0 are skipped.

    Raises:
        InputError: fewer than one usable row, or all x zero.
    """
    if isinstance(trades_or_qty, np.ndarray) and trades_or_qty.dtype == TRADE_DTYPE:
        tr = trades_or_qty
        tr = tr[tr["qty"] != 0]
        adv_a, sig_a = _two_d("adv", adv), _two_d("sigma", sigma)
        q = np.abs(tr["qty"])
        a = adv_a[tr["row"], tr["col"]]
        s = sig_a[tr["row"], tr["col"]]
        with np.errstate(invalid="ignore", divide="ignore"):
            y = tr["impact"] / (q * tr["ref_px"])
    else:
        if cost is None:
            raise InputError("fit_impact_k(qty, adv, sigma, cost): cost is missing")
        q, a, s, y = (np.asarray(v, dtype=np.float64).ravel() for v in (trades_or_qty, adv, sigma,
                                                                        cost))  # fmt: skip
        if not (q.size == a.size == s.size == y.size):
            raise ShapeError(
                f"qty, adv, sigma, cost sizes differ: {q.size, a.size, s.size, y.size}"
            )
    with np.errstate(invalid="ignore", divide="ignore"):
        x = s * np.sqrt(q / a)
    ok = np.isfinite(x) & np.isfinite(y) & (q > 0) & (a > 0)
    den = float(np.sum(x[ok] ** 2))
    if not ok.any() or den == 0.0:
        raise InputError(f"fit_impact_k: no usable rows ({int(ok.sum())} of {q.size} finite)")
    return float(np.sum(x[ok] * y[ok]) / den)


def walk_books(
    side: Any,
    qty: Any,
    level_px: Any,
    level_qty: Any,
    max_levels: int = 0,
    exhaustion: Exhaustion = Exhaustion.CANCEL_REST,
    penalty_bps: float = 0.0,
) -> tuple[F64, F64]:
    """Walk M market orders against M books (one row each); a thin wrapper of slippage_nb.

    Args:
        side: (M,) +1 buy (walks the asks given) / -1 sell (walks the bids given).
        qty: (M,) sizes, base units, > 0. level_px, level_qty: (M, L) the side consumed,
            best first, NaN-padded. max_levels: 0 = all. exhaustion, penalty_bps: see walk_book.

    Returns:
        (avg_px (M,), filled (M,)).
    """
    sd = np.ascontiguousarray(side, dtype=np.float64).ravel()
    q = np.ascontiguousarray(qty, dtype=np.float64).ravel()
    px = np.ascontiguousarray(level_px, dtype=np.float64)
    lq = np.ascontiguousarray(level_qty, dtype=np.float64)
    if px.ndim != 2 or px.shape != lq.shape or px.shape[0] != q.size or sd.size != q.size:
        raise ShapeError(f"walk_books: side {sd.shape}, qty {q.shape}, books {px.shape}/{lq.shape}")
    if not np.all(np.isfinite(q) & (q > 0)) or not np.all(np.abs(sd) == 1):
        raise InputError("walk_books: qty must be finite > 0 and side +-1")
    if max_levels < 0 or penalty_bps < 0:
        raise OptionError(f"max_levels and penalty_bps must be >= 0: {max_levels}, {penalty_bps}")
    out: tuple[F64, F64] = slippage_nb.walk_many(
        sd, q, px, lq, int(max_levels), int(exhaustion), penalty_bps
    )
    return out


def execution_book(book: BookLevels, lag: int) -> BookLevels:
    """The book in force when row s's fill happens: the snapshot of decision row s - lag.

    Args:
        book: (T, N, L) book sampled at each row's time. lag: decision-to-fill rows (>= 1).

    Returns:
        (T, N, L) levels indexed by execution row (NaN for the first ``lag`` rows).
    """

    def shift(a: F64) -> F64:
        out = np.full_like(a, np.nan)
        if lag == 0:
            out[:] = a
        elif a.shape[0] > lag:
            out[lag:] = a[:-lag]
        return out

    return BookLevels(*(shift(a) for a in (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty)))
