"""alphaforge: vectorized crypto factor research.

The library installs as one namespace: ``alphaforge.data`` (sources, validation, the store),
``alphaforge.factors`` (factor library, expression language, scoring, proposals) and
``alphaforge.engine`` (the numba backtest core, slippage, sweeps, gap analysis, reports).
"""

from __future__ import annotations

__version__ = "0.1.0"
