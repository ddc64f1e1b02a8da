"""``alphaforge propose`` and ``alphaforge leaderboard`` (panel loader injected by engine/cli)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from alphaforge.cli.render import fail
from alphaforge.engine.defaults import DEFAULTS, HELP
from alphaforge.factors.errors import FactorError
from alphaforge.factors.registry import DEFAULT_LEDGER


def _render(rows: list[dict[str, Any]], title: str) -> str:
    from alphaforge.cli.render import table_text

    if not rows:
        return f"{title}: no rows\n"
    keys = list(rows[0])
    return table_text(title, keys, [[r[k] for k in keys] for r in rows], width=180)


def register(app: typer.Typer, load_panel: Callable[..., Any],
             errors: tuple[type[Exception], ...] = ()) -> None:  # fmt: skip
    """Add ``propose`` and ``leaderboard`` to ``app``."""
    errs: tuple[type[Exception], ...] = (FactorError, *errors)

    @app.command("propose", epilog=HELP + " The gate backtests each candidate with them.")
    def propose(
        rounds: Annotated[int, typer.Option(help="Proposal rounds.")] = 3,
        per_round: Annotated[int, typer.Option(help="Candidates per round.")] = 10,
        offline: Annotated[
            bool, typer.Option("--offline", help="Seeded generator, no LLM.")
        ] = False,
        study: Annotated[str, typer.Option(help="Study name (ledger scope).")] = "default",
        ledger: Annotated[
            str | None,
            typer.Option(
                envvar="ALPHAFORGE_LEDGER", help=f"Ledger SQLite file (default {DEFAULT_LEDGER})."
            ),
        ] = None,
        base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL.")] = None,
        model: Annotated[str | None, typer.Option(help="Model name.")] = None,
        max_calls: Annotated[int | None, typer.Option(help="Budget: LLM calls.")] = None,
        max_tokens: Annotated[int | None, typer.Option(help="Budget: tokens.")] = None,
        max_cost: Annotated[float | None, typer.Option(help="Budget: money.")] = None,
        cache_dir: Annotated[
            str | None, typer.Option(help="LLM response cache.")
        ] = ".alphaforge/llm-cache",
        min_t: Annotated[float, typer.Option(help="Gate: |RankIC t-stat|.")] = 3.0,
        min_sharpe: Annotated[float, typer.Option(help="Gate: net Sharpe.")] = 0.0,
        split: Annotated[float, typer.Option(help="Train share of the rows (rest: holdout).")] = (
            0.7
        ),
        horizon: Annotated[int, typer.Option(help="RankIC horizon, bars.")] = 1,
        lag: Annotated[int, typer.Option(help="Bars between decision and fill.")] = DEFAULTS.lag,
        fee_bps: Annotated[float, typer.Option(help="Taker fee, bps.")] = DEFAULTS.fee_bps,
        slippage_bps: Annotated[float, typer.Option(help="Fixed slippage, bps.")] = (
            DEFAULTS.slippage_bps
        ),
        rebalance_every: Annotated[int, typer.Option(help="Rebalance every k bars.")] = (
            DEFAULTS.rebalance_every
        ),
        store: Annotated[str | None, typer.Option(envvar="ALPHAFORGE_STORE")] = None,
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        start: Annotated[str | None, typer.Option(help="Start (UTC ISO).")] = None,
        end: Annotated[str | None, typer.Option(help="End, exclusive (UTC ISO).")] = None,
        interval: Annotated[str, typer.Option(help="Bar interval.")] = "1m",
        market: Annotated[str, typer.Option(help="usdm or spot.")] = "usdm",
        bars: Annotated[int, typer.Option(help="Synthetic bars.")] = 4000,
        seed: Annotated[int, typer.Option(help="Seed.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Propose factors (LLM, or the offline generator), gate them, record every trial."""
        from alphaforge.api_factors import propose as api_propose
        from alphaforge.cli.render import to_json
        from alphaforge.factors.llm import Budget, LLMClient
        from alphaforge.factors.registry import ledger_path

        ledger = str(ledger_path(ledger))
        try:
            syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
            panel = load_panel(store, syms, start, end, interval=interval, market=market,
                               synthetic_kwargs=None if store else {"n_bars": bars,
                                                                    "seed": seed})  # fmt: skip
            if not offline and not LLMClient(base_url=base_url, model=model).has_key:
                typer.echo("note: no LLM key (ALPHAFORGE_LLM_API_KEY / OPENAI_API_KEY): "
                           "using the offline generator", err=True)  # fmt: skip
            res = api_propose(panel, rounds=rounds, per_round=per_round, study=study,
                              ledger=ledger, offline=offline, base_url=base_url, model=model,
                              budget=Budget(max_calls, max_tokens, max_cost), min_t=min_t,
                              min_sharpe=min_sharpe, seed=seed, cache_dir=cache_dir,
                              split=split, horizon=horizon, lag=lag, fee_bps=fee_bps,
                              slippage_bps=slippage_bps, rebalance_every=rebalance_every,
                              progress=lambda m: typer.echo(m, err=True))  # fmt: skip
        except errs as exc:
            raise fail(exc, as_json) from None
        doc = {"study": res.study, "source": res.source, "counts": res.counts,
               "rounds": res.rounds_run, "stop_reason": res.stop_reason, "cost": res.cost,
               "tokens": res.tokens, "accepted": res.accepted, "ledger": ledger}  # fmt: skip
        typer.echo(
            to_json(doc)
            if as_json
            else _render(
                [
                    {
                        "expression": a["expression"],
                        "train_t": a["train"]["t_stat"],
                        "train_sharpe": a["train"]["sharpe"],
                        "holdout_sharpe": (a["holdout"] or {}).get("sharpe"),
                    }
                    for a in res.accepted
                ],
                f"{res.source} study {res.study!r}: {res.counts}; stop: {res.stop_reason}",
            )
        )
        if res.stop_reason.startswith("llm error"):
            typer.echo(f"error: the run stopped early: {res.stop_reason}", err=True)
            raise typer.Exit(code=1)

    @app.command("leaderboard")
    def leaderboard_cmd(
        study: Annotated[str, typer.Option(help="Study name.")] = "default",
        ledger: Annotated[
            str | None,
            typer.Option(
                envvar="ALPHAFORGE_LEDGER", help=f"Ledger SQLite file (default {DEFAULT_LEDGER})."
            ),
        ] = None,
        top: Annotated[int, typer.Option(help="Rows shown.")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Every scored trial of a study, best train |t| first, with DSR and holdout."""
        from pathlib import Path

        from alphaforge.cli.render import to_json
        from alphaforge.factors.ledger import Ledger
        from alphaforge.factors.propose import leaderboard
        from alphaforge.factors.registry import ledger_path

        ledger = str(ledger_path(ledger))
        if not Path(ledger).is_file():
            raise fail(f"no ledger at {ledger}; run `alphaforge propose` first", as_json)
        rows = leaderboard(Ledger(ledger), study)[:top]
        typer.echo(to_json(rows) if as_json else _render(rows, f"leaderboard {study!r}"))
