"""``alphaforge demo``, ``alphaforge report`` and ``alphaforge gap``.

The demo runner, the panel loader and the factor backtester are passed to ``register``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from alphaforge.api_backtest import gap as api_gap
from alphaforge.cli.render import fail, table_text, to_json
from alphaforge.engine.defaults import DEFAULTS, HELP
from alphaforge.engine.errors import EngineError
from alphaforge.engine.gap import COMPONENTS
from alphaforge.factor_report import backtest_report

Runner = Callable[..., Any]


def render_gap(report: Any, as_json: bool) -> str:
    """The gap summary as a table (live, backtest, gap per component) or JSON."""
    if as_json:
        return to_json(report.to_dict())
    rows = [(k, report.live_bps[k], report.backtest_bps[k], report.gap_bps[k])
            for k in (*COMPONENTS, "total")]  # fmt: skip
    text = table_text("backtest vs live (bps of notional)", ["component", "live", "backtest",
                                                              "gap"], rows)  # fmt: skip
    best = report.calibration.get("best")
    text += "".join(f"WARNING: {w}\n" for w in report.warnings)
    fitted = ", ".join(f"{k} {v['rmse_bps']:.2f}" for k, v in report.calibration.items()
                       if isinstance(v, dict))  # fmt: skip
    text += f"driver: {report.driver}; best-calibrated slippage model: {best}\n"
    text += f"slippage models, cross-validated RMSE of the live cost (bps): {fitted}\n"
    f = report.fills or {}
    if f:
        text += (f"orders: {f['orders']} ({f['filled']} filled, {f['partial']} partially, "
                 f"{f['unfilled']} not at all; {f['fills']} fills; "
                 f"{100 * f['fill_rate']:.1f}% of the intended notional filled)\n")  # fmt: skip
        if f["partial"] or f["unfilled"]:
            text += ("WARNING: partly filled orders: the unfilled part is charged as "
                     "opportunity cost (the move to the end of the horizon)\n")  # fmt: skip
    return text


def render_demo(s: dict[str, Any]) -> str:
    """The demo's findings against what was planted, as a table."""
    m, tr, b = s["test_metrics"], s["train"], s["bounce"]
    found = "yes" if s["found_planted"] else "NO"
    rows = [
        ("planted", s["planted"]["planted_factor"] + " (real) + bid-ask bounce (mirage)"),
        ("selected (best net Sharpe, train)", f"{s['selected']} (the planted factor: {found})"),
        ("train: RankIC / t / net Sharpe", f"{tr['rank_ic']:.4f} / {tr['t_stat']:.1f} / "
                                          f"{tr['sharpe']:.2f}"),
        ("trials on this data / DSR", f"{s['trials']['n_trials']} / {tr['dsr']:.3f}"),
        ("test (holdout, looked at once): return", f"{m['total_return']:.2%}"),
        ("test: Sharpe (annualised)", f"{m['sharpe']:.2f}"),
        ("bounce: rev_1 gross -> net Sharpe", f"{b['gross_sharpe']:.1f} -> {b['net_sharpe']:.1f}"),
        ("leaky candidate", s["leak"]["verdict"]),
        ("paper-live gap (bps, live - backtest)", f"{s['gap_bps']['total']:.2f} "
                                                  f"(driver: {s['gap_driver']})"),
        ("data quality (test split)", s["quality"]),
    ]  # fmt: skip
    return table_text("demo (SYNTHETIC market)", ["finding", "value"], rows)


def parse_fee_prices(items: list[str]) -> dict[str, float]:
    """["BNB=600", "ETH=3000"] -> {"BNB": 600.0, "ETH": 3000.0}."""
    out: dict[str, float] = {}
    for item in items:
        asset, sep, price = item.partition("=")
        try:
            value = float(price)
        except ValueError:
            value = float("nan")
        if not sep or not asset.strip() or not value > 0:
            raise typer.BadParameter(f"--fee-price {item!r}: expected ASSET=PRICE, e.g. BNB=600")
        out[asset.strip().upper()] = value
    return out


def register(app: typer.Typer, run_demo: Runner, load_panel: Runner, run_backtest: Runner,
             errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Add ``demo``, ``report`` and ``gap`` to ``app``."""

    @app.command("demo", epilog=HELP)
    def demo(
        out: Annotated[str, typer.Option(help="Output directory.")] = "alphaforge-out",
        seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
        symbols: Annotated[int, typer.Option(help="Synthetic symbols.")] = 20,
        weeks: Annotated[int, typer.Option(help="Weeks of synthetic 5m bars.")] = 10,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Offline end-to-end run on a synthetic market with a planted factor and a planted
        mirage: ranks the library, shows the mirage collapse and a leak caught, tests the pick
        once on a holdout, measures the paper-live gap and writes report.html."""
        t0 = time.perf_counter()

        def progress(line: str) -> None:
            typer.echo(f"[{time.perf_counter() - t0:6.1f}s] {line}", err=True)

        try:
            res = run_demo(out, n_symbols=symbols, weeks=weeks, seed=seed, progress=progress)
        except errors as exc:
            raise fail(exc, as_json) from None
        if as_json:
            typer.echo(to_json(res.summary))
            return
        typer.echo(render_demo(res.summary))
        typer.echo(f"report: {res.report_html}")

    @app.command("report", epilog=HELP)
    def report(
        factor: Annotated[str, typer.Argument(help="Library name or expression.")] = "mom_60",
        out: Annotated[str, typer.Option(help="Output directory.")] = "alphaforge-out",
        store: Annotated[str | None, typer.Option(envvar="ALPHAFORGE_STORE")] = None,
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="Start (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
        fee_bps: Annotated[float, typer.Option(help="Taker fee, bps.")] = DEFAULTS.fee_bps,
        slippage_bps: Annotated[float, typer.Option(help="Fixed slippage, bps.")] = (
            DEFAULTS.slippage_bps
        ),
        rebalance_every: Annotated[int, typer.Option(help="Rebalance every k bars.")] = (
            DEFAULTS.rebalance_every
        ),
        lag: Annotated[int, typer.Option(help="Bars between decision and fill.")] = DEFAULTS.lag,
        gross: Annotated[float, typer.Option(help="Gross leverage sum |w|.")] = DEFAULTS.gross,
        slippage: Annotated[
            str, typer.Option(help="fixed_bps | none | book_walk[:K] (see backtest).")
        ] = "fixed_bps",
        scheme: Annotated[str, typer.Option(help="rank|quantile|sign|zscore|raw.")] = (
            DEFAULTS.scheme
        ),
        market: Annotated[str, typer.Option(help="usdm or spot.")] = "usdm",
        ledger: Annotated[
            str | None,
            typer.Option(envvar="ALPHAFORGE_LEDGER", help="Research ledger (trial counts)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Backtest a factor and write its HTML tear sheet + PNGs + report.json."""
        from alphaforge.factors.registry import Registry

        try:
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            panel = load_panel(store, syms, start, end, interval=interval, market=market)
            run = run_backtest(panel, factor, fee_bps=fee_bps, slippage_bps=slippage_bps,
                               rebalance_every=rebalance_every, lag=lag, gross=gross,
                               slippage=slippage, scheme=scheme,
                               registry=Registry(ledger))  # fmt: skip
        except errors as exc:
            raise fail(exc, as_json) from None
        quality = None
        if store is not None:
            from alphaforge.panels import source_dataset
            from alphaforge.report_quality import panel_quality, quality_html, store_validation

            dataset = source_dataset(store, interval, market)
            quality = quality_html(panel_quality(panel),
                                   store_validation(store, panel, dataset, market))  # fmt: skip
        paths = backtest_report(run, panel, out, quality=quality)
        doc = {"report": str(paths.html), "figures": {k: str(v) for k, v in paths.figures.items()},
               "metrics": run.metrics, "warnings": list(run.warnings),
               "settings": run.settings, "execution": run.settings.get("execution"),
               "trials": run.trials}  # fmt: skip
        typer.echo(to_json(doc) if as_json else
                   f"execution: {run.settings.get('execution')}\nreport: {paths.html}")  # fmt: skip

    handled: tuple[type[Exception], ...] = (EngineError, KeyError, typer.BadParameter, *errors)

    @app.command("gap")
    def gap(
        orders: Annotated[str, typer.Option(help="Backtest orders (CSV/parquet).")],
        fills: Annotated[str, typer.Option(help="Live fills (CSV/parquet).")],
        quotes: Annotated[str | None, typer.Option(help="ts,symbol,bid,ask file.")] = None,
        window_s: Annotated[float, typer.Option(help="Fill-to-order window, s.")] = 60.0,
        quote_asset: Annotated[str, typer.Option(help="Quote currency.")] = "USDT",
        allow_unmatched: Annotated[bool, typer.Option(help="Ignore stray fills.")] = False,
        funding_live: Annotated[float, typer.Option(help="Funding paid live (quote).")] = 0.0,
        funding_backtest: Annotated[float, typer.Option(help="Funding in the backtest.")] = 0.0,
        fee_price: Annotated[
            list[str] | None,
            typer.Option(
                help="Quote price of a fee asset, ASSET=PRICE (repeatable), e.g. BNB=600."
            ),
        ] = None,
        equity: Annotated[
            float | None, typer.Option(help="Account equity in quote (gap as a return).")
        ] = None,
        store: Annotated[
            str | None,
            typer.Option(
                envvar="ALPHAFORGE_STORE",
                help="Store with the symbols' klines/books: prices fee assets (BNB) and "
                "calibrates every slippage model.",
            ),
        ] = None,
        market: Annotated[str, typer.Option(help="Market of --store: usdm or spot.")] = "usdm",
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Explain the backtest-vs-live gap: fees, spread, impact, delay, missed fills.

        --orders: the backtest's orders (`alphaforge backtest --orders-out`). --fills: live
        fills as Binance gives them (REST myTrades/userTrades JSON or CSV, or the account's
        trade-history export) or the gap's own columns (docs/gap.md)."""
        try:
            prices = parse_fee_prices(fee_price or [])
            res = api_gap(orders, fills, quotes=quotes, window_s=window_s,
                          quote_asset=quote_asset, allow_unmatched=allow_unmatched,
                          funding_live=funding_live, funding_backtest=funding_backtest,
                          fee_prices=prices, equity=equity, store=store,
                          market=market)  # fmt: skip
        except handled as exc:
            raise fail(exc, as_json) from None
        typer.echo(render_gap(res, as_json))
