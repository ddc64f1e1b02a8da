"""``alphaforge sweep``: factors x parameter grid, locally or on Dask, resumable, ranked by DSR.

Engine-only: engine/cli.py injects the panel loader and the sweep runner (which needs data/
for the results store and factors/ for signals and the DSR / PBO statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from alphaforge.cli.render import fail, table_text, to_json
from alphaforge.engine.defaults import HELP
from alphaforge.engine.errors import OptionError
from alphaforge.factors.resolve import SAFE

Runner = Callable[..., Any]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """["rebalance_every=1,15,60", "scheme=rank,zscore"] -> {name: [values]} (numbers parsed).

    Raises:
        OptionError: an item without '=' or with no values.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not vals:
            raise OptionError(f"--grid {item!r}: expected name=v1,v2,...")
        grid[name.strip()] = [_number_or_text(v) for v in vals]
    return grid


def _number_or_text(v: str) -> int | float | str:
    """'5' -> 5, '2.5' / '1e3' / 'nan' -> float, anything else stays text."""
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def parse_bytes(text: str) -> int:
    """'512MB', '2GB', '1000000' -> bytes."""
    t = text.strip().upper()
    for unit, mult in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
        if t.endswith(unit):
            try:
                return int(float(t[: -len(unit)]) * mult)
            except ValueError:
                break
    try:
        return int(t)
    except ValueError:
        raise OptionError(f"cannot parse a size from {text!r} (e.g. 512MB, 2GB)") from None


def register(app: typer.Typer, load_panel: Runner, run_sweep_study: Runner,
             errors: tuple[type[Exception], ...]) -> None:  # fmt: skip
    """Add ``sweep`` to ``app``."""
    caught: tuple[type[Exception], ...] = (OptionError, *errors)

    @app.command("sweep", epilog=HELP + " A --grid overrides any of them per trial.")
    def sweep(
        factors: Annotated[str, typer.Option(help="Comma-separated factors.")] = "mom_20,rev_1",
        grid: Annotated[list[str] | None, typer.Option(help="name=v1,v2 (repeatable).")] = None,
        store: Annotated[str | None, typer.Option(envvar="ALPHAFORGE_STORE")] = None,
        results: Annotated[str, typer.Option(help="Where results are stored.")] = "store",
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="Start (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
        bars: Annotated[int, typer.Option(help="Bars of the synthetic market.")] = 4000,
        scheduler: Annotated[str | None, typer.Option(help="Dask scheduler tcp://...")] = None,
        chunk: Annotated[int, typer.Option(help="Max trials per chunk.")] = 64,
        memory_budget: Annotated[str, typer.Option(help="Max batch memory, e.g. 1GB.")] = "1GB",
        top: Annotated[int, typer.Option(help="Trials shown.")] = 10,
        ledger: Annotated[
            str | None,
            typer.Option(envvar="ALPHAFORGE_LEDGER", help="Research ledger (trial counts)."),
        ] = None,
        slippage: Annotated[
            str,
            typer.Option(
                help="fixed_bps (the grid's slippage_bps) or book_walk (every "
                "fill walks the recorded book)."
            ),
        ] = "fixed_bps",
        market: Annotated[str, typer.Option(help="usdm or spot.")] = "usdm",
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Run a parameter sweep (resumable), rank trials by Deflated Sharpe at the study-wide
        trial count (the ledger's distinct trials on this data), report PBO."""
        from alphaforge.factors.registry import Registry

        try:
            g = parse_grid(grid or ["rebalance_every=1,15,60"])
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            panel = load_panel(store, syms, start, end, interval=interval, market=market,
                               synthetic_kwargs=None if store else {"n_bars": bars})  # fmt: skip

            def progress(done: int, total: int, msg: str) -> None:
                typer.echo(f"[{done}/{total}] {msg}", err=True)

            out = run_sweep_study(panel, [f.strip() for f in factors.split(",") if f.strip()], g,
                                  results, scheduler=scheduler, chunk_size=chunk,
                                  memory_budget_bytes=parse_bytes(memory_budget),
                                  progress=progress, registry=Registry(ledger),
                                  slippage=slippage)  # fmt: skip
        except caught as exc:
            raise fail(exc, as_json) from None
        keep = ("trial_id", "factor", *g.keys(), "sharpe", "total_return", "max_drawdown",
                "annual_turnover", "psr", "dsr")  # fmt: skip
        best = [{k: r.get(k) for k in keep} for r in out.ranked[:top]]
        doc = {"sweep_id": out.sweep_id, "n_trials": out.n_trials,
               "trials_on_data": out.trials_on_data, "sr_needed_annual": out.sr_needed_annual,
               "warnings": list(out.warnings), "lookahead": SAFE.detail,
               "counts": out.counts, "pbo": out.pbo, "pbo_walkforward": out.pbo_walkforward,
               "results_dir": out.results_dir, "transport": out.transport,
               "top": best}  # fmt: skip
        if as_json:
            typer.echo(to_json(doc))
            return
        rows = [[r.get(k) for k in keep] for r in best]
        for w in out.warnings:
            typer.echo(f"WARNING: {w}")
        head = (f"sweep {out.sweep_id}: {out.n_trials} trials ({out.trials_on_data} on this "
                f"data, all studies), PBO {out.pbo:.2f} (walk-forward {out.pbo_walkforward:.2f}), "
                f"Sharpe needed to beat luck "
                f"{out.sr_needed_annual:.2f}")  # fmt: skip
        typer.echo(table_text(head, list(keep), rows, width=160))
        typer.echo(f"results: {out.results_dir}")
