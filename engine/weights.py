"""Signals -> target weights: rank long-short, quantile, sign, z-score, raw.

    w = weights_from_signals(signal, scheme="rank", gross=1.0)

NaN signals mean no position (weight 0). Weights are fractions of equity; each row's absolute
weights sum to ``gross`` (when at least one valid signal exists).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine import weights_nb
from alphaforge.engine.errors import OptionError, ShapeError
from alphaforge.engine.pool import run_ranges
from alphaforge.engine.types import WeightScheme

F64 = npt.NDArray[np.float64]

_ROWS = {
    weights_nb.RANK: weights_nb.rank_rows,
    weights_nb.QUANTILE: weights_nb.quantile_rows,
    weights_nb.SIGN: weights_nb.sign_rows,
    weights_nb.ZSCORE: weights_nb.zscore_rows,
    weights_nb.RAW: weights_nb.raw_rows,
}
"""Scheme code -> range driver (``weights_nb``): only the schemes used get compiled."""


def weights_from_signals(
    signal: Any,
    scheme: WeightScheme | str = "rank",
    *,
    gross: float = 1.0,
    quantile: float = 0.2,
    neutral: bool = True,
) -> F64:
    """Turn a (T, N) signal into (T, N) target weights.

    Args:
        signal: (T, N) float64 (or (T,) for one asset); NaN = no position.
        scheme: "rank" (demeaned cross-sectional ranks: dollar neutral), "quantile" (equal
            weight long the top ``quantile``, short the bottom), "sign" (sign / count),
            "zscore" (cross-sectional z-score), "raw" (the signal itself).
        gross: sum of |weights| per row (leverage), > 0.
        quantile: bucket fraction for "quantile", in (0, 0.5].
        neutral: "quantile" only: short the bottom bucket (True) or long-only top (False).

    Returns:
        (T, N) float64 weights (same shape as the input signal).

    Raises:
        OptionError: unknown scheme, gross <= 0, quantile outside (0, 0.5].
        ShapeError: signal not 1-D or 2-D.
    """
    if isinstance(scheme, str):
        try:
            scheme = WeightScheme[scheme.upper()]
        except KeyError:
            names = [s.name.lower() for s in WeightScheme]
            raise OptionError(
                f"unknown weight scheme {scheme!r}; expected one of {names}"
            ) from None
    if not (math.isfinite(gross) and gross > 0):
        raise OptionError(f"gross must be a positive number; got {gross}")
    if not 0 < quantile <= 0.5:
        raise OptionError(f"quantile must be in (0, 0.5]; got {quantile}")
    sig = np.asarray(signal, dtype=np.float64)
    one_d = sig.ndim == 1
    if one_d:
        sig = sig.reshape(-1, 1)
    if sig.ndim != 2:
        raise ShapeError(f"signal must be (T,) or (T, N); got shape {sig.shape}")
    sig = np.where(np.isinf(sig), np.nan, sig)
    sig = np.ascontiguousarray(sig)
    out = np.empty(sig.shape)
    rows, g, q, neu = _ROWS[int(scheme.value)], float(gross), float(quantile), bool(neutral)
    run_ranges(lambda lo, hi: rows(sig, g, q, neu, out, lo, hi), sig.shape[0], sig.size)
    result: F64 = out[:, 0] if one_d else out
    return result
