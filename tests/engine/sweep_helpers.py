"""Module-level helpers for the Dask sweep tests (workers import them by name)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from alphaforge.engine.panel import Panel

KILL_MARKER = "ALPHAFORGE_TEST_KILL_MARKER"


def mom_signal(factor: str, panel: Panel) -> np.ndarray:
    """A tiny factor family without the expression language: k-bar momentum, k = int(factor)."""
    k = int(factor)
    close = panel["close"]
    out = np.full_like(close, np.nan)
    out[k:] = close[k:] / close[:-k] - 1.0
    return out


def killing_signal(factor: str, panel: Panel) -> np.ndarray:
    """mom_signal, except that the first call in the cluster kills its worker process."""
    marker = os.environ.get(KILL_MARKER)
    if marker and Path(marker).exists():
        try:
            Path(marker).unlink()
        except FileNotFoundError:
            pass
        else:
            os._exit(1)
    return mom_signal(factor, panel)
