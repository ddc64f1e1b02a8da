"""``alphaforge factors list`` and ``alphaforge score``: renderers and command registration.

factors/ never reads the store, so ``register(app, load_panel)`` takes the panel loader from
the composition root (``engine/cli.py``), which knows about data/. The renderers are plain
functions returning text (a rich table, or JSON with ``as_json``) so tests can call them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from alphaforge.cli.render import table_text
from alphaforge.cli.score_library import check_expressions, read_expressions, render_ranking
from alphaforge.engine.defaults import DEFAULTS, HELP, Execution
from alphaforge.factors.errors import FactorError

if TYPE_CHECKING:
    from alphaforge.engine.panel import Panel
    from alphaforge.factors.score_result import FactorScore


class PanelLoader(Protocol):
    """``engine.pipeline.load_panel``'s signature."""

    def __call__(
        self,
        store: str | None,
        symbols: list[str] | None,
        start: str | None,
        end: str | None,
        interval: str = "1m",
        market: str = "usdm",
        synthetic_kwargs: dict[str, Any] | None = None,
    ) -> Panel: ...


def _table_text(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return table_text(title, headers, rows, width=140)


def render_factor_list(as_json: bool = False, group: str | None = None) -> str:
    """The library as a table (name, group, look-back, expression, doc) or a JSON list.

    Raises:
        UnknownFactor: an unknown group.
    """
    from alphaforge.factors.library import list_factors

    facs = list_factors(group)
    if as_json:
        rows = [
            {"name": f.name, "group": f.group, "expr": f.expr, "lookback": f.lookback,
             "needs": list(f.needs), "doc": f.doc}
            for f in facs
        ]  # fmt: skip
        return json.dumps(rows, indent=2)
    rows_t = [(f.name, f.group, str(f.lookback), f.expr, f.doc) for f in facs]
    title = f"{len(facs)} library factors" + (f" in group {group}" if group else "")
    return _table_text(title, ("name", "group", "lookback", "expression", "doc"), rows_t)


def render_score(score: FactorScore, as_json: bool = False) -> str:
    """A FactorScore as a two-column table, or its JSON-safe dict as JSON text."""
    if as_json:
        return json.dumps(score.to_dict(), indent=2, allow_nan=False)
    return _table_text(f"score: {score.name}", ("metric", "value"), score.summary_rows())


def parse_horizons(text: str) -> tuple[int, ...]:
    """``"1,5,15"`` -> (1, 5, 15); raises typer.BadParameter naming the bad item."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            h = int(item)
        except ValueError:
            raise typer.BadParameter(f"horizon {item!r} is not an integer number of bars") from None
        if h < 1:
            raise typer.BadParameter(f"horizon {h} must be >= 1 bar")
        out.append(h)
    if not out:
        raise typer.BadParameter("give at least one horizon, e.g. --horizons 1,5,15")
    return tuple(out)


def _fail(exc: Exception, as_json: bool = False) -> typer.Exit:
    from alphaforge.cli.render import fail

    return fail(exc, as_json)


def register(
    app: typer.Typer, load_panel: PanelLoader, extra_errors: tuple[type, ...] = ()
) -> None:
    """Add ``factors list`` and ``score`` to ``app``; ``load_panel`` builds the Panel."""
    errors: tuple[type[Exception], ...] = (FactorError, *extra_errors)
    factors_app = typer.Typer(name="factors", help="The built-in factor library.",
                              no_args_is_help=True)  # fmt: skip

    @factors_app.command("list")
    def factors_list(
        group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """List the library factors (name, group, look-back, expression)."""
        try:
            typer.echo(render_factor_list(as_json, group))
        except errors as exc:
            raise _fail(exc) from None

    app.add_typer(factors_app)
    app.command("score", epilog=HELP)(_score_command(load_panel, errors))


def _score_command(
    load_panel: PanelLoader, errors: tuple[type[Exception], ...]
) -> Callable[..., None]:
    caught: tuple[type[Exception], ...] = (*errors, typer.BadParameter)

    def score(
        factor: Annotated[
            str | None, typer.Argument(help="Library name or expression text.")
        ] = None,
        library: Annotated[
            bool,
            typer.Option("--library", help="Rank the whole library (plus --file) in one call."),
        ] = False,
        file: Annotated[
            str | None,
            typer.Option(help="With --library: also rank these expressions (name = expr lines)."),
        ] = None,
        top: Annotated[int, typer.Option(help="With --library: rows shown (JSON: all).")] = 30,
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="First bar time (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End time, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Kline interval.")] = "1m",
        market: Annotated[str, typer.Option(help="usdm or spot.")] = "usdm",
        horizons: Annotated[str, typer.Option(help="Horizons in bars.")] = "1,5,15,60,240,1440",
        lag: Annotated[int, typer.Option(help="Bars between decision and trade.")] = DEFAULTS.lag,
        quantiles: Annotated[int, typer.Option(help="Quantile bins per bar.")] = 5,
        fee_bps: Annotated[float, typer.Option(help="Fee, bps of notional.")] = DEFAULTS.fee_bps,
        slippage_bps: Annotated[float, typer.Option(help="Slippage, bps.")] = (
            DEFAULTS.slippage_bps
        ),
        rebalance_every: Annotated[
            int, typer.Option(help="Long-short backtest: rebalance every k bars.")
        ] = DEFAULTS.rebalance_every,
        split: Annotated[str | None, typer.Option(help="Train/test cut: 0.7 or ISO time.")] = None,
        test: Annotated[bool, typer.Option("--test", help="Also score the test part.")] = False,
        trials: Annotated[
            int | None,
            typer.Option(
                help="Trials behind this factor (DSR); default: the ledger's "
                "study-wide count of distinct trials on this data."
            ),
        ] = None,
        ledger: Annotated[
            str | None,
            typer.Option(
                envvar="ALPHAFORGE_LEDGER", help="Research ledger (trials, holdout looks)."
            ),
        ] = None,
        study: Annotated[str | None, typer.Option(help="Label in the ledger.")] = None,
        reuse_holdout: Annotated[
            bool,
            typer.Option(
                "--reuse-holdout", help="Look again at a holdout this signal already saw (marked)."
            ),
        ] = False,
        redundancy: Annotated[bool, typer.Option(help="Correlate with the library.")] = True,
        synthetic: Annotated[
            bool, typer.Option("--synthetic", help="Seeded synthetic market.")
        ] = False,
        store: Annotated[
            str | None, typer.Option(envvar="ALPHAFORGE_STORE", help="Store dir.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of --synthetic.")] = 7,
        bars: Annotated[int, typer.Option(help="Bars of --synthetic.")] = 4000,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Score a factor: IC/RankIC per horizon, decay, quantiles, turnover, costs, DSR; or with
        --library rank every library factor (and --file's expressions) in one call."""
        from alphaforge.factors.rank_library import rank_library
        from alphaforge.factors.registry import Registry
        from alphaforge.factors.resolve import check_factor_text
        from alphaforge.factors.score import score_factor

        try:
            if (factor is None) == (not library):
                raise typer.BadParameter("give a FACTOR to score, or --library to rank them all")
            if file is not None and not library:
                raise typer.BadParameter("--file goes with --library")
            extra = read_expressions(file) if file else {}
            check_expressions(extra, str(file), check_factor_text)  # before any data is read
            hs = parse_horizons(horizons)
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            synth = {"seed": seed, "n_bars": bars} if synthetic or store is None else None
            if store is None and not synthetic:
                typer.echo("note: no --store given: scoring on the synthetic market", err=True)
            panel = load_panel(None if synthetic else store, syms, start, end, interval=interval,
                               market=market, synthetic_kwargs=synth)  # fmt: skip
            cut: float | str | None = split
            if split is not None:
                try:
                    cut = float(split)
                except ValueError:
                    cut = split
            if library:
                ranking = rank_library(
                    panel, extra, horizon=hs[0], split=cut, registry=Registry(ledger),
                    execution=Execution(lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
                                        rebalance_every=rebalance_every),
                    progress=lambda d, n, m: typer.echo(f"[{d}/{n}] {m}", err=True),
                )  # fmt: skip
                typer.echo(render_ranking(ranking, top, as_json))
                return
            assert factor is not None
            result = score_factor(factor, panel, horizons=hs, lag=lag, quantiles=quantiles,
                                  fee_bps=fee_bps, slippage_bps=slippage_bps,
                                  rebalance_every=rebalance_every, split=cut,
                                  test=test, n_trials=trials, redundancy=redundancy,
                                  registry=Registry(ledger), study=study,
                                  allow_holdout_reuse=reuse_holdout)  # fmt: skip
        except caught as exc:
            raise _fail(exc, as_json) from None
        typer.echo(render_score(result, as_json))

    return score
