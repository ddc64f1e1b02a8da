"""Forward returns from the execution prices the engine would use.

Execution convention (the same as ``engine.backtest.run_backtest``): a decision made with the
data known at Panel row t trades ``lag`` rows later.

- lag >= 1 and the panel has ``open``: the fill reference is ``open[t + lag]``, the open of
  the bar that starts right after row t + lag - 1 closes (rows are indexed by bar *close*
  time, so ``open[t + 1]`` is the first price after the decision at t).
- lag >= 1 and no ``open`` field: ``close[t + lag - 1]`` (the close of row t is the last
  price seen; with lag 1 that is a trade at the decision bar's close, the best stand-in for
  the next open).
- lag == 0: ``close[t]`` (trade at the price the decision saw; optimistic, for research).

``exec_px[t]`` is that price for a decision at row t. The forward return of horizon h is the
return of a position entered for decision t and exited for decision t + h::

    fwd_h[t] = exec_px[t + h] / exec_px[t] - 1

NaN tail: ``exec_px`` is NaN on its last ``lag`` rows (with open) or ``lag - 1`` rows
(close only), so ``fwd_h`` is NaN on the last ``h + lag`` (with open) or ``h + lag - 1``
(close, lag >= 1) or ``h`` (lag 0) rows. Any NaN or non-positive price gives NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import Panel
from alphaforge.engine.pool import run_ranges
from alphaforge.factors import returns_nb
from alphaforge.factors.errors import ScoreError

F64 = npt.NDArray[np.float64]


def execution_prices(panel: Panel, lag: int = 1) -> F64:
    """Reference execution price of a decision at each row.

    Args:
        panel: Panel with ``close`` (and preferably ``open``), (T, N) float64.
        lag: rows between decision and trade, >= 0.

    Returns:
        (T, N) float64 price; NaN where the trade row is beyond the panel, or the price is
        missing or non-positive.

    Raises:
        ScoreError: negative lag, or the panel has no ``close``.
    """
    lag = _check_lag(lag)
    if "close" not in panel:
        raise ScoreError(f"panel has no 'close' field; fields: {sorted(panel.fields)}")
    if lag >= 1 and "open" in panel:
        src, shift = panel["open"], lag
    else:
        src, shift = panel["close"], max(lag - 1, 0)
    out = np.empty(src.shape)
    n_ok = max(src.shape[0] - shift, 0)
    with np.errstate(invalid="ignore"):
        np.copyto(out[:n_ok], src[shift:], where=src[shift:] > 0)
        np.copyto(out[:n_ok], np.nan, where=~(src[shift:] > 0))
    out[n_ok:] = np.nan
    return out


def forward_returns_from_prices(exec_px: F64, horizon: int) -> F64:
    """``exec_px[t + h] / exec_px[t] - 1`` with a NaN tail of h rows.

    Args:
        exec_px: (T, N) positive prices (NaN = missing).
        horizon: h >= 1 rows.

    Returns:
        (T, N) float64 simple returns.
    """
    h = int(horizon)
    if h < 1:
        raise ScoreError(f"horizon must be >= 1 bar; got {horizon}")
    out = np.full(exec_px.shape, np.nan)
    if h < exec_px.shape[0]:
        out[:-h] = exec_px[h:] / exec_px[:-h] - 1.0
    return out


def forward_returns(panel: Panel, horizons: Sequence[int] = (1,), lag: int = 1) -> F64:
    """Forward returns of every horizon from the engine's execution prices.

    Args:
        panel: Panel with ``close`` (and ``open`` when trading at the next open).
        horizons: horizons in bars, each >= 1.
        lag: decision-to-trade lag in rows (see module docstring).

    Returns:
        (H, T, N) float64, C-contiguous; ``out[i]`` is the return of horizon ``horizons[i]``.

    Raises:
        ScoreError: a horizon < 1, a negative lag, or no ``close`` field.
    """
    px = execution_prices(panel, lag)
    hs = [int(h) for h in horizons]
    if not hs:
        raise ScoreError("horizons is empty; give at least one horizon in bars")
    bad = [h for h in hs if h < 1]
    if bad:
        raise ScoreError(f"horizon must be >= 1 bar; got {bad[0]}")
    h_arr = np.asarray(hs, dtype=np.int64)
    out: F64 = np.empty((len(hs), *px.shape))
    run_ranges(lambda lo, hi: returns_nb.forward_rows(px, h_arr, out, lo, hi),
               px.shape[0], out.size)  # fmt: skip
    return out


def nan_tail_rows(panel: Panel, horizon: int, lag: int = 1) -> int:
    """Number of trailing rows whose forward return of ``horizon`` is NaN by construction."""
    lag = _check_lag(lag)
    if lag == 0:
        return int(horizon)
    return int(horizon) + (lag if "open" in panel else lag - 1)


def _check_lag(lag: int) -> int:
    if int(lag) != lag or lag < 0:
        raise ScoreError(f"lag must be an integer >= 0 rows; got {lag!r}")
    return int(lag)
