"""``alphaforge demo``, ``alphaforge report`` and ``alphaforge gap``.

Engine-only module: the composition root (engine/cli.py) injects the functions that need
data/ or factors/ (the demo runner, the panel loader, the factor backtester).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from alphaforge.cli.render import table_text, to_json
from alphaforge.engine.errors import EngineError, InputError
from alphaforge.engine.gap import COMPONENTS, Quotes, analyze_gap
from alphaforge.engine.report import ReportInputs, build_report

Runner = Callable[..., Any]


def read_columns(path: str) -> dict[str, np.ndarray]:
    """A CSV or parquet file as column name -> numpy array; time columns -> int64 µs.

    A column named ``time``/``ts``/``timestamp`` becomes ``ts_us``: integers are read as
    ms (< 1e14) or µs, strings/timestamps are parsed as UTC.

    Raises:
        InputError: unreadable file or unparsable times (names the file and column).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        table = pq.read_table(p) if p.suffix == ".parquet" else pacsv.read_csv(p)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        key = "ts_us" if name in ("time", "ts", "timestamp", "ts_us") else name
        if key == "ts_us":
            try:
                if pa.types.is_timestamp(col.type):
                    col = pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.int64())
                elif pa.types.is_string(col.type):
                    col = pc.cast(pc.strptime(col, "%Y-%m-%dT%H:%M:%S", "us"), pa.int64())
                arr = np.asarray(col.to_numpy(), dtype=np.int64)
            except (pa.ArrowInvalid, ValueError) as exc:
                raise InputError(f"{path}: column {name!r}: cannot parse times ({exc})") from None
            if name != "ts_us" and arr.size and np.abs(arr).max() < 10**14:
                arr = arr * 1000  # epoch milliseconds
            out[key] = arr
        else:
            out[key] = np.asarray(col.to_numpy(zero_copy_only=False))
    return out


def render_gap(report: Any, as_json: bool) -> str:
    """The gap summary as a table (live, backtest, gap per component) or JSON."""
    if as_json:
        return to_json(report.to_dict())
    rows = [(k, report.live_bps[k], report.backtest_bps[k], report.gap_bps[k])
            for k in (*COMPONENTS, "total")]  # fmt: skip
    text = table_text("backtest vs live (bps of notional)", ["component", "live", "backtest",
                                                              "gap"], rows)  # fmt: skip
    best = report.calibration.get("best")
    return text + f"driver: {report.driver}; best-calibrated slippage model: {best}\n"


def register(app: typer.Typer, run_demo: Runner, load_panel: Runner, run_backtest: Runner,
             errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Add ``demo``, ``report`` and ``gap`` to ``app``."""

    @app.command("demo")
    def demo(
        out: Annotated[str, typer.Option(help="Output directory.")] = "alphaforge-out",
        seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
        symbols: Annotated[int, typer.Option(help="Synthetic symbols.")] = 12,
        bars: Annotated[int, typer.Option(help="Synthetic 1m bars.")] = 3000,
        as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    ) -> None:
        """Offline end-to-end run on the embedded synthetic market, ending in report.html."""
        t0 = time.perf_counter()

        def progress(line: str) -> None:
            typer.echo(f"[{time.perf_counter() - t0:6.1f}s] {line}", err=True)

        try:
            res = run_demo(out, n_symbols=symbols, n_bars=bars, seed=seed, progress=progress)
        except errors as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        if as_json:
            typer.echo(to_json(res.summary))
            return
        m = res.summary["metrics"]
        rows = [(k, m[k]) for k in ("total_return", "sharpe", "max_drawdown", "annual_turnover",
                                    "fees", "slippage")]  # fmt: skip
        rows += [("gap_bps (live - backtest)", res.summary["gap_bps"]["total"]),
                 ("gap driver", res.summary["gap_driver"]),
                 ("data quality", res.summary["quality"])]  # fmt: skip
        typer.echo(table_text(f"demo: {res.summary['best_factor']} (SYNTHETIC)", ["", ""], rows))
        typer.echo(f"report: {res.report_html}")

    @app.command("report")
    def report(
        factor: Annotated[str, typer.Argument(help="Library name or expression.")] = "mom_60",
        out: Annotated[str, typer.Option(help="Output directory.")] = "alphaforge-out",
        store: Annotated[str | None, typer.Option(envvar="ALPHAFORGE_STORE")] = None,
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="Start (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
        fee_bps: Annotated[float, typer.Option(help="Taker fee, bps.")] = 4.0,
        rebalance_every: Annotated[int, typer.Option(help="Rebalance every k bars.")] = 15,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Backtest a factor and write its HTML tear sheet + PNGs + report.json."""
        try:
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            panel = load_panel(store, syms, start, end, interval=interval)
            run = run_backtest(panel, factor, fee_bps=fee_bps, rebalance_every=rebalance_every)
        except errors as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        r = run.result
        notes = ["SYNTHETIC market"] if panel.meta.get("synthetic") else []
        paths = build_report(ReportInputs(
            title=f"alphaforge report: {run.factor}", ts_us=panel.ts_us, equity=r.equity,
            periods_per_year=panel.periods_per_year, metrics=run.metrics,
            turnover=r.turnover_series, notes=notes,
            costs={"fees": r.fees, "slippage": r.slippage, "funding": r.funding},
            sections=[("Settings", run.settings)]), out)  # fmt: skip
        doc = {"report": str(paths.html), "figures": {k: str(v) for k, v in paths.pngs.items()},
               "metrics": run.metrics}  # fmt: skip
        typer.echo(to_json(doc) if as_json else f"report: {paths.html}")

    handled: tuple[type[Exception], ...] = (EngineError, KeyError, *errors)

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
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Explain the backtest-vs-live gap: fees, spread, impact, delay, missed fills."""
        try:
            o, f = read_columns(orders), read_columns(fills)
            q = None
            if quotes:
                qc = read_columns(quotes)
                q = Quotes(qc["ts_us"], qc["symbol"].astype(str), qc["bid"].astype(float),
                           qc["ask"].astype(float))  # fmt: skip
            res = analyze_gap(
                o,
                f,
                quotes=q,
                window_us=int(window_s * 1e6),
                quote_asset=quote_asset,
                allow_unmatched=allow_unmatched,
                funding_live=funding_live,
                funding_backtest=funding_backtest,
            )
        except handled as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        typer.echo(render_gap(res, as_json))
