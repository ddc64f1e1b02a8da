"""``alphaforge sql "<query>"``: DuckDB SQL over the parquet store (one view per dataset)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alphaforge.cli.render import fail
from alphaforge.data.errors import DataError
from alphaforge.data.sql import query, view_names


def register(app: typer.Typer) -> None:
    """Add ``sql`` to ``app``."""

    @app.command("sql")
    def sql(
        statement: Annotated[str, typer.Argument(help="SQL; tables: the store's datasets.")],
        store: Annotated[
            str,
            typer.Option(
                "--store", envvar="ALPHAFORGE_STORE", help="A folder or s3://bucket/prefix."
            ),
        ] = "store",
        limit: Annotated[int, typer.Option(help="Max rows printed.")] = 1000,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    ) -> None:
        """Query the store with DuckDB, e.g. "select symbol, count(*) from klines_1m group by 1"."""
        try:
            table = query(store, statement, limit=limit)
        except DataError as exc:
            try:
                names = view_names(store)
            except DataError:
                names = []
            views = ", ".join(names) or "none"
            raise fail(f"{exc}\n(tables: {views})", as_json) from None
        if as_json:
            typer.echo(json.dumps(table.to_pylist(), default=str, indent=2))
            return
        t = Table(title=f"{table.num_rows} row(s)")
        for name in table.column_names:
            t.add_column(name)
        for row in table.to_pylist():
            t.add_row(*(str(v) for v in row.values()))
        Console().print(t)
