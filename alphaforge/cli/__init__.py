"""The `alphaforge` command line: one typer app, one module per command group.

Every command prints a rich table by default and machine-readable JSON with ``--json``.
The command modules (``alphaforge/cli/*.py``) take the functions they run (the panel loader,
the backtest, demo and sweep runners) as arguments of ``register``, so each command module can
be tested with its own fakes.
"""

from __future__ import annotations

import os
from typing import Any

import typer
import typer.main

from alphaforge.api_backtest import walkforward as api_walkforward
from alphaforge.backtests import run_factor_backtest
from alphaforge.cli import backtest as _backtest
from alphaforge.cli import ingest as _ingest
from alphaforge.cli import propose as _propose
from alphaforge.cli import pull as _pull
from alphaforge.cli import report as _report
from alphaforge.cli import score as _score
from alphaforge.cli import slippage as _slippage
from alphaforge.cli import sql as _sql
from alphaforge.cli import store as _store
from alphaforge.cli import sweep as _sweep
from alphaforge.cli import validate as _validate
from alphaforge.cli import walkforward as _walkforward
from alphaforge.cli.config import check_config, load_config
from alphaforge.data.errors import DataError
from alphaforge.data.recordings import read_hftbacktest
from alphaforge.data.store_open import open_store
from alphaforge.demo import run_demo
from alphaforge.engine.errors import EngineError, OptionError
from alphaforge.factors.errors import FactorError
from alphaforge.orders_io import fills_table, orders_table, write_orders
from alphaforge.panels import load_panel, parse_time
from alphaforge.store_streams import symbol_streams
from alphaforge.sweeps import run_sweep_study

app = typer.Typer(
    name="alphaforge",
    help="Crypto factor research: pull, validate, score, backtest, explain the live gap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console-script entry point: flags > ALPHAFORGE_* env > alphaforge.toml > defaults."""
    try:
        defaults = load_config()
        check_config(defaults, typer.main.get_command(app),
                     os.environ.get("ALPHAFORGE_CONFIG", "alphaforge.toml"))  # fmt: skip
    except OptionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    app(default_map=defaults, auto_envvar_prefix="ALPHAFORGE")


def _load_recording(paths: list[Any]) -> Any:
    rec = read_hftbacktest(paths)
    return rec.depth_updates, rec.trades


def _load_store_streams(store: str, symbol: str, market: str, start: str | None,
                        end: str | None) -> Any:  # fmt: skip
    return symbol_streams(open_store(store), symbol, market, start_us=parse_time(start),
                          end_us=parse_time(end))  # fmt: skip


_ALL_ERRORS = (DataError, EngineError, FactorError)

_store.register(app)
_score.register(app, load_panel, (DataError, EngineError))
_validate.register(app)
_backtest.register(
    app, load_panel, run_factor_backtest, _ALL_ERRORS, orders_table, write_orders, fills_table
)
_report.register(app, run_demo, load_panel, run_factor_backtest, _ALL_ERRORS)
_slippage.register(app, _load_recording, _load_store_streams, (DataError, EngineError))
_pull.register(app)
_ingest.register(app)
_sql.register(app)
_sweep.register(app, load_panel, run_sweep_study, _ALL_ERRORS)
_propose.register(app, load_panel, (DataError, EngineError))
_walkforward.register(app, load_panel, api_walkforward, _ALL_ERRORS)
