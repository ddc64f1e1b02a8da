"""``alphaforge store ls`` / ``alphaforge store info``: what the parquet store holds.

Registered by ``engine/cli.py`` with ``register(app)``. The store directory comes from
``--store``, else ``ALPHAFORGE_STORE``, else ``./store``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alphaforge.cli.render import fail
from alphaforge.data.errors import DataError
from alphaforge.data.manifest import PartitionInfo
from alphaforge.data.store import Store

DEFAULT_STORE = "store"

store_app = typer.Typer(
    name="store",
    help="Inspect the parquet store (partitions, rows, spans, sources).",
    no_args_is_help=True,
)

StoreOpt = Annotated[
    Path, typer.Option("--store", envvar="ALPHAFORGE_STORE", help="Store root directory.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _iso(t_us: int | None) -> str | None:
    if t_us is None:
        return None
    return datetime.fromtimestamp(t_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def summarize(parts: Sequence[PartitionInfo]) -> list[dict[str, Any]]:
    """One row per (exchange, market, dataset): symbols, partitions, rows, span, bytes, status."""
    groups: dict[tuple[str, str, str], list[PartitionInfo]] = {}
    for p in parts:
        groups.setdefault((p.exchange, p.market, p.dataset), []).append(p)
    out = []
    for (ex, mk, ds), ps in sorted(groups.items()):
        lo = [p.min_time_us for p in ps if p.min_time_us is not None]
        hi = [p.max_time_us for p in ps if p.max_time_us is not None]
        out.append(
            {
                "exchange": ex,
                "market": mk,
                "dataset": ds,
                "symbols": len({p.symbol for p in ps}),
                "partitions": len(ps),
                "rows": sum(p.rows for p in ps),
                "bytes": sum(p.file_bytes for p in ps),
                "first": _iso(min(lo)) if lo else None,
                "last": _iso(max(hi)) if hi else None,
                "validation": dict(sorted(Counter(p.validation_status for p in ps).items())),
                "missing": _missing(ps),
            }
        )
    return out


def _missing(ps: list[PartitionInfo]) -> int | None:
    """Bars or ids missing inside the partitions (None: no completeness rule or not recorded)."""
    known = [p.completeness for p in ps if p.completeness is not None]
    return sum(int(c["missing"]) for c in known) if known else None


def _fail(exc: DataError, as_json: bool = False) -> typer.Exit:
    return fail(exc, as_json)


@store_app.command("ls")
def ls_cmd(store: StoreOpt = Path(DEFAULT_STORE), as_json: JsonOpt = False) -> None:
    """List the datasets in the store with their symbols, partitions, rows and time span."""
    try:
        rows = summarize(Store(store).partitions())
    except DataError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        typer.echo(json.dumps({"store": str(store), "datasets": rows}, indent=1))
        return
    if not rows:
        typer.echo(f"{store}: empty store (no partitions)")
        return
    table = Table(title=f"store {store}")
    for col in (
        "exchange",
        "market",
        "dataset",
        "symbols",
        "partitions",
        "rows",
        "MB",
        "first",
        "last",
        "missing",
        "validation",
    ):
        table.add_column(
            col,
            justify="right"
            if col in ("symbols", "partitions", "rows", "MB", "missing")
            else "left",
        )
    for r in rows:
        table.add_row(
            r["exchange"],
            r["market"],
            r["dataset"],
            str(r["symbols"]),
            str(r["partitions"]),
            f"{r['rows']:,}",
            f"{r['bytes'] / 1e6:.2f}",
            r["first"] or "-",
            r["last"] or "-",
            "-" if r["missing"] is None else f"{r['missing']:,}",
            ", ".join(f"{k}:{v}" for k, v in r["validation"].items()),
        )
    Console(width=200).print(table)


@store_app.command("info")
def info_cmd(
    dataset: Annotated[str, typer.Argument(help="e.g. klines_1m, agg_trades, funding")],
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Repeatable.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Filter by exchange.")] = None,
    market: Annotated[str | None, typer.Option(help="Filter by market.")] = None,
    store: StoreOpt = Path(DEFAULT_STORE),
    as_json: JsonOpt = False,
) -> None:
    """Show every partition of DATASET: rows, time span, sources and validation status."""
    st = Store(store)
    try:
        parts = [
            p
            for p in st.partitions(dataset, exchange=exchange, market=market)
            if not symbol or p.symbol in symbol
        ]
    except DataError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        docs = [
            dict(p.to_dict(), first=_iso(p.min_time_us), last=_iso(p.max_time_us)) for p in parts
        ]
        typer.echo(
            json.dumps({"store": str(store), "dataset": dataset, "partitions": docs}, indent=1)
        )
        return
    if not parts:
        typer.echo(
            f"{store}: no partitions of {dataset}" + (f" for {', '.join(symbol)}" if symbol else "")
        )
        return
    table = Table(title=f"{dataset} in {store}")
    for col in (
        "exchange",
        "market",
        "symbol",
        "month",
        "rows",
        "first",
        "last",
        "sources",
        "validation",
    ):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for p in parts:
        srcs = "; ".join(
            s.source + (f" sha256:{s.sha256[:12]}" if s.sha256 else "") for s in p.sources[-2:]
        )
        if len(p.sources) > 2:
            srcs = f"(+{len(p.sources) - 2}) " + srcs
        table.add_row(
            p.exchange,
            p.market,
            p.symbol,
            p.month,
            f"{p.rows:,}",
            _iso(p.min_time_us) or "-",
            _iso(p.max_time_us) or "-",
            srcs or "-",
            p.validation_status + (" (rebuilt)" if p.rebuilt else ""),
        )
    Console(width=220).print(table)


def register(app: typer.Typer) -> None:
    """Add the ``store`` sub-command group to the main app."""
    app.add_typer(store_app, name="store")
