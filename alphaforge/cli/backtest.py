"""``alphaforge backtest``: backtest a factor's long-short portfolio and print its metrics.

This module knows only the engine and typer; the composition root (engine/cli.py) injects
the panel loader and the factor runner (which need data/ and factors/).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from alphaforge.cli.render import fail, fmt, table_text, to_json
from alphaforge.engine.defaults import DEFAULTS, HELP
from alphaforge.engine.metrics import METRIC_NAMES
from alphaforge.factors.registry import Registry

Runner = Callable[..., Any]


def render_backtest(run: Any, data_info: dict[str, Any], as_json: bool) -> str:
    """Metrics of a FactorBacktest as a table, or JSON with the settings and data summary."""
    doc = {"factor": run.factor, "expr": run.expr, "data": data_info,
           "warnings": list(run.warnings), "settings": run.settings,
           "metrics": run.metrics, "trials": run.trials}  # fmt: skip
    if as_json:
        return to_json(doc)
    head = f"backtest of {run.factor}"
    if data_info.get("synthetic"):
        head += " (SYNTHETIC market)"
    rows = [(name, run.metrics[name]) for name in METRIC_NAMES]
    if run.trials:
        rows += [("trials on this data (all studies)", run.trials["n_trials"]),
                 ("DSR at that count", run.trials["dsr"]),
                 ("Sharpe needed to beat luck", run.trials["sr_needed_annual"])]  # fmt: skip
    info = ", ".join(f"{k}={fmt(v)}" for k, v in data_info.items())
    warn = "".join(f"WARNING: {w}\n" for w in run.warnings)
    return (warn + table_text(head, ["metric", "value"], rows) + f"data: {info}\n"
            f"execution: {run.settings.get('execution', '-')}\n"
            f"lookahead: {run.settings.get('lookahead', '-')}\n")  # fmt: skip


def register(app: typer.Typer, load_panel: Runner, run_factor_backtest: Runner,
             errors: tuple[type[Exception], ...], orders_table: Runner,
             write_orders: Runner, fills_table: Runner) -> None:  # fmt: skip
    """Add ``backtest`` to ``app``."""

    @app.command("backtest", epilog=HELP)
    def backtest(
        factor: Annotated[str, typer.Argument(help="Library name or expression.")] = "mom_60",
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="Start time (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End time, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
        market: Annotated[str, typer.Option(help="usdm or spot.")] = "usdm",
        scheme: Annotated[str, typer.Option(help="rank|quantile|sign|zscore|raw.")] = (
            DEFAULTS.scheme
        ),
        gross: Annotated[float, typer.Option(help="Gross leverage sum |w|.")] = DEFAULTS.gross,
        lag: Annotated[int, typer.Option(help="Bars between decision and fill.")] = DEFAULTS.lag,
        fee_bps: Annotated[float, typer.Option(help="Taker fee, bps.")] = DEFAULTS.fee_bps,
        slippage_bps: Annotated[float, typer.Option(help="Fixed slippage, bps.")] = (
            DEFAULTS.slippage_bps
        ),
        slippage: Annotated[
            str,
            typer.Option(
                help="fixed_bps | none | book_walk (fills walk the recorded book in "
                "force at execution; book_walk:K = first K levels)."
            ),
        ] = "fixed_bps",
        rebalance_every: Annotated[int, typer.Option(help="Rebalance every k bars.")] = (
            DEFAULTS.rebalance_every
        ),
        store: Annotated[
            str | None, typer.Option(envvar="ALPHAFORGE_STORE", help="Store directory.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
        ledger: Annotated[
            str | None,
            typer.Option(envvar="ALPHAFORGE_LEDGER", help="Research ledger (trial counts)."),
        ] = None,
        bars: Annotated[int, typer.Option(help="Bars of the synthetic market.")] = 4000,
        capital: Annotated[
            float, typer.Option(help="Starting equity in quote (sizes the orders written).")
        ] = 1.0,
        orders_out: Annotated[
            str | None,
            typer.Option(help="Write the backtest's orders (CSV, or .parquet) for `gap`."),
        ] = None,
        fills_out: Annotated[
            str | None,
            typer.Option(help="Write the backtest's own fills in the live-fills layout of `gap`."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Backtest a factor (rank long-short by default) with fees, slippage and funding."""
        try:
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            synth = {"seed": seed, "n_bars": bars} if store is None else None
            panel = load_panel(store, syms, start, end, interval=interval, market=market,
                               synthetic_kwargs=synth)  # fmt: skip
            run = run_factor_backtest(panel, factor, scheme=scheme, gross=gross, lag=lag,
                                      fee_bps=fee_bps, slippage_bps=slippage_bps,
                                      rebalance_every=rebalance_every, slippage=slippage,
                                      init_cash=capital, registry=Registry(ledger))  # fmt: skip
            written = write_orders(orders_table(run, panel), orders_out) if orders_out else None
            fills_written = write_orders(fills_table(run, panel), fills_out) if fills_out else None
        except errors as exc:
            raise fail(exc, as_json) from None
        info = {
            "source": panel.meta.get("source", "?"), "synthetic": bool(panel.meta.get("synthetic")),
            "symbols": panel.N, "bars": panel.T, "interval_us": panel.interval_us,
            "book": panel.meta.get("book"),
        }  # fmt: skip
        if written is not None:
            info["orders_out"] = str(written)
        if fills_written is not None:
            info["fills_out"] = str(fills_written)
        typer.echo(render_backtest(run, info, as_json))
