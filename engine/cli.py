"""The `alphaforge` command line: the composition root that wires data, factors and engine.

Every command prints a rich table by default and machine-readable JSON with ``--json``.
Sub-command groups live in small modules (``engine/cli_*.py`` for engine-only commands);
commands that need data/ or factors/ are wired here or in ``engine/pipeline.py``.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="alphaforge",
    help="Crypto factor research: pull, validate, score, backtest, explain the live gap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Console-script entry point: flags > ALPHAFORGE_* env > alphaforge.toml > defaults."""
    from alphaforge.engine.config import load_config
    from alphaforge.engine.errors import OptionError

    try:
        defaults = load_config()
    except OptionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    app(default_map=defaults, auto_envvar_prefix="ALPHAFORGE")


# ---------------------------------------------------------------- command registration area
# Each command module adds itself here with two lines: an import and a register(app) call.
from alphaforge.data.cli_store import register as register_store  # noqa: E402 - registration area

register_store(app)


# alphaforge factors list / alphaforge score (factors.cli_score; the panel loader lives here)
from typing import Any  # noqa: E402 - registration area

from alphaforge.data.errors import DataError  # noqa: E402 - registration area
from alphaforge.engine.errors import EngineError as _EngineError  # noqa: E402 - registration area
from alphaforge.engine.panel import Panel  # noqa: E402 - registration area
from alphaforge.factors.cli_score import register as register_score  # noqa: E402 - registration area


def _score_panel(  # composition-root loader for `alphaforge score`
    store: str | None,
    symbols: list[str] | None,
    start: str | None,
    end: str | None,
    interval: str = "1m",
    market: str = "usdm",
    synthetic_kwargs: dict[str, Any] | None = None,
) -> Panel:
    """engine.pipeline.load_panel (the store, or the seeded synthetic market)."""
    from alphaforge.engine.pipeline import load_panel

    return load_panel(store, symbols, start, end, interval=interval, market=market,
                      synthetic_kwargs=synthetic_kwargs)  # fmt: skip


register_score(app, _score_panel, (DataError, _EngineError))

from alphaforge.data.cli_validate import register as register_validate  # noqa: E402 - registration area

register_validate(app)

# alphaforge backtest (engine.cli_backtest; panel loader and factor runner wired here)
from alphaforge.engine.cli_backtest import register as register_backtest  # noqa: E402 - registration area
from alphaforge.factors.errors import FactorError as _FactorError  # noqa: E402 - registration area


def _run_factor_backtest(panel: Panel, factor: str, **kw: Any) -> Any:
    from alphaforge.engine.pipeline import run_factor_backtest

    return run_factor_backtest(panel, factor, **kw)


register_backtest(app, _score_panel, _run_factor_backtest, (DataError, _EngineError, _FactorError))

# alphaforge demo / report / gap (engine.cli_report; the demo runner is wired here)
from alphaforge.engine.cli_report import register as register_report  # noqa: E402 - registration area


def _run_demo(out: str, **kw: Any) -> Any:
    from alphaforge.engine.pipeline import run_demo

    return run_demo(out, **kw)


register_report(app, _run_demo, _score_panel, _run_factor_backtest,
                (DataError, _EngineError, _FactorError))  # fmt: skip

# alphaforge slippage-study (engine.cli_slippage; the recording reader wired here)
from alphaforge.engine.cli_slippage import register as register_slippage  # noqa: E402 - registration area


def _load_recording(paths: list[Any]) -> Any:
    from alphaforge.data.recordings import read_hftbacktest

    rec = read_hftbacktest(paths)
    return rec.depth_updates, rec.trades


register_slippage(app, _load_recording, (DataError, _EngineError))

from alphaforge.data.cli_pull import register as _register_pull  # noqa: E402 - registration area

_register_pull(app)

from alphaforge.data.cli_sql import register as register_sql  # noqa: E402 - registration area

register_sql(app)

# alphaforge sweep (engine.cli_sweep; the sweep runner is wired here)
from alphaforge.engine.cli_sweep import register as register_sweep  # noqa: E402 - registration area


def _run_sweep_study(*args: Any, **kw: Any) -> Any:
    from alphaforge.engine.pipeline import run_sweep_study

    return run_sweep_study(*args, **kw)


register_sweep(app, _score_panel, _run_sweep_study, (DataError, _EngineError, _FactorError))

# alphaforge propose / leaderboard (factors.cli_propose; panel loader wired here)
from alphaforge.factors.cli_propose import register as register_propose  # noqa: E402 - registration area

register_propose(app, _score_panel, (DataError, _EngineError))
