"""alphaforge engine: Panel, numba backtest core, metrics, book slippage, gap, reports, CLI."""
