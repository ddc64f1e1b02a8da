"""alphaforge: vectorized crypto factor research, from files on disk to a report.

    import alphaforge as af

    store = af.Store("store")
    store.ingest("downloads/")                        # Binance archive files, Tardis, CDD
    panel = store.panel(["BTCUSDT", "ETHUSDT"], interval="1h")
    af.score("mom_20", panel).summary()               # IC, RankIC, decay, quantiles, DSR
    run = af.backtest("mom_20", panel, fee_bps=4)     # equity, returns, trades as pandas
    run.report("out/")                                # HTML tear sheet + PNGs + JSON

Without data at hand, ``af.synthetic_panel()`` gives the embedded seeded market (labelled
synthetic everywhere). The command line (``alphaforge ...``) is a thin layer over these same
functions. The library itself installs as one namespace: ``alphaforge.data`` (sources,
validation, the store), ``alphaforge.factors`` (library, expression language, scoring,
proposals) and ``alphaforge.engine`` (the numba backtest core, slippage, sweeps, gap, reports).
"""

from __future__ import annotations

from alphaforge.numba_cache import configure as _configure_numba_cache

_configure_numba_cache()  # before any kernel module is imported (see numba_cache)

from alphaforge.array_memory import configure as _configure_array_memory

_configure_array_memory()  # large arrays reuse the process's memory, in small pages

from typing import Any

from alphaforge.api_backtest import BacktestRun, backtest, gap, sweep, walkforward
from alphaforge.api_data import Store, ingest, pull, pull_tardis, validate
from alphaforge.api_factors import Factor, ScoreResult, factor, propose, rank_library, score
from alphaforge.demo import DemoResult, run_demo
from alphaforge.engine.panel import Panel
from alphaforge.factors.library import list_factors
from alphaforge.panels import synthetic_panel as _synthetic_panel

__version__ = "0.1.0"

__all__ = [
    "BacktestRun",
    "Factor",
    "Panel",
    "ScoreResult",
    "Store",
    "__version__",
    "backtest",
    "demo",
    "factor",
    "gap",
    "ingest",
    "library",
    "propose",
    "pull",
    "pull_tardis",
    "rank_library",
    "score",
    "sweep",
    "synthetic_panel",
    "validate",
    "walkforward",
]


def synthetic_panel(**kwargs: Any) -> Panel:
    """The embedded seeded synthetic market as a Panel (meta["synthetic"] is True).

    Keyword arguments go to ``alphaforge.data.synthetic.generate_market`` (``n_symbols``,
    ``n_bars``, ``interval``, ``seed``, ``planted_ic``, ``book_levels``, ...).
    """
    return _synthetic_panel(**kwargs).panel


def library() -> list[Factor]:
    """Every built-in library factor as an ``af.Factor`` (name, expression, look-back, fields)."""
    return [factor(f.name) for f in list_factors()]


def demo(out_dir: str = "alphaforge-out", **kwargs: Any) -> DemoResult:
    """The offline end-to-end run of ``alphaforge demo`` (report written to ``out_dir``)."""
    return run_demo(out_dir, **kwargs)
