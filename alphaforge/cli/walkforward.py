"""``alphaforge walkforward``: re-fit a selection rule on rolling or expanding windows, test each
next window out of sample, and show the stitched out-of-sample curve beside the in-sample one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from alphaforge.cli.render import fail, table_text, to_json
from alphaforge.cli.sweep import parse_grid
from alphaforge.engine.defaults import HELP
from alphaforge.engine.errors import OptionError
from alphaforge.engine.formatting import fmt

Runner = Callable[..., Any]


def render_walkforward(res: Any, as_json: bool, report: str | None) -> str:
    """The windows table and the in/out-of-sample summary, or JSON."""
    doc = res.to_dict()
    if report:
        doc["report"] = report
    if as_json:
        return to_json(doc)
    warn = "".join(f"WARNING: {w}\n" for w in res.warnings)
    cols = ["window", "test from", "selected", "train sharpe", "test sharpe", "test RankIC"]
    rows = [[w["window"], _day(w["test_start_us"]), w["selected"] if w["sign"] > 0 else
             f"-{w['selected']}", w["train_sharpe"], w["test_sharpe"], w["test_rank_ic"]]
            for w in res.windows]  # fmt: skip
    head = (f"walk-forward ({res.rule}, {res.settings['mode']}, purge {res.settings['purge']}, "
            f"embargo {res.settings['embargo']}): {res.n_candidates} candidates")  # fmt: skip
    text = warn + table_text(head, cols, rows, width=140)
    keys = ("sharpe", "total_return", "max_drawdown", "bars")
    side = [[k, res.is_metrics[k], res.oos_metrics[k]] for k in keys]
    text += table_text(f"in sample = {res.is_selected} picked on all rows",
                       ["metric", "in sample", "out of sample"], side)  # fmt: skip
    text += (f"PBO on these splits: {fmt(res.pbo)}; selection stability: "
             f"{fmt(res.selection_stability)}\n")  # fmt: skip
    return text + (f"report: {report}\n" if report else "")


def _day(ts_us: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _say(message: str) -> None:
    typer.echo(f"walkforward: {message}", err=True)


def register(app: typer.Typer, load_panel: Runner, walkforward: Runner,
             errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Add ``walkforward`` to ``app``; ``walkforward`` is ``alphaforge.walkforward``'s API."""
    caught: tuple[type[Exception], ...] = (OptionError, *errors)

    @app.command("walkforward", epilog=HELP + " A --grid overrides any of them per candidate.")
    def walkforward_cmd(
        factors: Annotated[
            str | None, typer.Option(help="Comma-separated candidates (default: the library).")
        ] = None,
        rule: Annotated[
            str,
            typer.Option(
                help="rank_ic (best train RankIC |t|) or sharpe "
                "(best train Sharpe over factors x grid)."
            ),
        ] = "rank_ic",
        grid: Annotated[list[str] | None, typer.Option(help="name=v1,v2 (repeatable).")] = None,
        train: Annotated[int | None, typer.Option(help="Train rows (default T/3).")] = None,
        test: Annotated[int | None, typer.Option(help="Test rows (default: 8 windows).")] = None,
        step: Annotated[int | None, typer.Option(help="Rows between windows (= test).")] = None,
        mode: Annotated[str, typer.Option(help="expanding or rolling.")] = "expanding",
        purge: Annotated[
            int | None, typer.Option(help="Rows between train and test (default lag + horizon).")
        ] = None,
        embargo: Annotated[
            int, typer.Option(help="Rows after a test window no later train window uses.")
        ] = 0,
        horizon: Annotated[int, typer.Option(help="Forward-return bars (rank_ic).")] = 1,
        store: Annotated[str | None, typer.Option(envvar="ALPHAFORGE_STORE")] = None,
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="Start (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Bar interval.")] = "1m",
        market: Annotated[str, typer.Option(help="usdm or spot.")] = "usdm",
        bars: Annotated[int, typer.Option(help="Bars of the synthetic market.")] = 4000,
        seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
        out: Annotated[str | None, typer.Option(help="Write the HTML report here.")] = None,
        ledger: Annotated[
            str | None,
            typer.Option(envvar="ALPHAFORGE_LEDGER", help="Research ledger (trial counts)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Walk-forward: pick by a rule on each train window, test the next window out of
        sample (purge, embargo), stitched out-of-sample curve beside the in-sample one."""
        try:
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            synth = {"seed": seed, "n_bars": bars} if store is None else None
            panel = load_panel(store, syms, start, end, interval=interval, market=market,
                               synthetic_kwargs=synth)  # fmt: skip
            names = [f.strip() for f in factors.split(",") if f.strip()] if factors else None
            res = walkforward(panel, names, rule=rule, grid=parse_grid(grid or []) or None,
                              train=train, test=test, step=step, mode=mode, purge=purge,
                              embargo=embargo, horizon=horizon, ledger=ledger,
                              progress=_say)  # fmt: skip
        except caught as exc:
            raise fail(exc, as_json) from None
        report = str(res.report(out).html) if out else None
        typer.echo(render_walkforward(res, as_json, report))
