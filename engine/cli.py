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
    """Console-script entry point."""
    app()


# ---------------------------------------------------------------- command registration area
# Each command module adds itself here with two lines: an import and a register(app) call.
from data.cli_store import register as register_store  # noqa: E402 - registration area

register_store(app)
