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


# alphaforge factors list / alphaforge score (factors.cli_score; the panel loader lives here)
from typing import Any  # noqa: E402 - registration area

from data.errors import DataError  # noqa: E402 - registration area
from engine.errors import EngineError as _EngineError  # noqa: E402 - registration area
from engine.panel import Panel  # noqa: E402 - registration area
from factors.cli_score import register as register_score  # noqa: E402 - registration area


def _score_panel(  # composition-root loader for `alphaforge score`
    store: str | None,
    symbols: list[str] | None,
    start: str | None,
    end: str | None,
    interval: str = "1m",
    market: str = "usdm",
    synthetic_kwargs: dict[str, Any] | None = None,
) -> Panel:
    """engine.pipeline.load_panel when it exists, else a seeded synthetic market (no store)."""
    try:
        from engine.pipeline import load_panel
    except ImportError:  # pipeline not written yet: synthetic only
        import pyarrow as pa

        from data.synthetic import generate_market
        from engine.errors import EngineError

        if store is not None:
            raise EngineError("reading a store needs engine.pipeline; use --synthetic") from None
        kw = synthetic_kwargs or {}
        m = generate_market(interval=interval, market=market, book_levels=0, **kw)  # type: ignore[arg-type]
        k, step = m.klines, int(m.meta["parameters"]["interval_us"])
        cols = ("open", "high", "low", "close", "volume", "quote_volume", "trades",
                "taker_buy_volume")  # fmt: skip
        ts = pa.compute.add(k["open_time"].cast(pa.int64()), step)
        table = pa.table({"ts": ts, "symbol": k["symbol"], **{c: k[c] for c in cols}})
        panel = Panel.from_arrow(table, interval_us=step, meta=m.meta)
        return panel.select(symbols) if symbols else panel
    return load_panel(  # type: ignore[no-any-return]
        store,
        symbols,
        start,
        end,
        interval=interval,
        market=market,
        synthetic_kwargs=synthetic_kwargs,
    )


register_score(app, _score_panel, (DataError, _EngineError))

from data.cli_validate import register as register_validate  # noqa: E402 - registration area

register_validate(app)
