"""Which decisions may hold a position: one rule for every command that backtests.

A decision at row t fills at row t + lag. It may hold a position only if the symbol is listed
(the Panel's ``tradable`` field, built from the universe of listings, when present) and trading
(has a positive price) at the fill row and at the row after it, so that a position can still be
closed before a symbol stops trading (delisting schedules are announced days ahead). The rule
is applied identically by ``alphaforge backtest``/``report`` and by sweeps, so a store with a
missing bar or a delisted symbol gives the same answer from both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import Panel

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def executable_mask(panel: Panel, lag: int) -> B:
    """(T, N) bool: may the decision of row t hold a position (see the module docstring)?
    Rows without a future fill row are False."""
    px = panel.fields.get("open") if lag >= 1 else panel["close"]
    px = panel["close"] if px is None else px
    with np.errstate(invalid="ignore"):
        live = np.isfinite(px) & (panel["close"] > 0)
    if "tradable" in panel:
        live &= panel["tradable"] > 0
    ok = np.zeros((panel.T, panel.N), dtype=bool)
    if lag + 1 < panel.T:
        ok[: panel.T - lag - 1] = live[lag:-1] & live[lag + 1 :]
    return ok


def universe_values(values: F64, panel: Panel) -> F64:
    """Factor values with NaN where the symbol is outside the universe at the decision row
    (``tradable`` == 0), so no cross-section ranks a symbol that is not listed."""
    if "tradable" not in panel:
        return values
    out = np.array(values, dtype=np.float64, copy=True)
    out[panel["tradable"] <= 0] = np.nan
    return out


def mask_weights(weights: F64, executable: B) -> F64:
    """Target weights (T, N) or (K, T, N) limited to executable decisions, in place.

    Where a decision may not hold a position: 0 (close it) if the row before was executable,
    else NaN (no order: nothing is held and nothing can trade).
    """
    held_in = np.zeros_like(executable)
    held_in[1:] = ~executable[:-1]
    blocked = ~executable
    # copyto with a broadcast mask: a boolean index would gather the cells' positions first
    np.copyto(weights, 0.0, where=blocked & ~held_in)
    np.copyto(weights, np.nan, where=blocked & held_in)
    return weights
