"""Rendering for the command line: rich tables as plain text and pretty JSON."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alphaforge.engine.formatting import fmt, json_safe, to_json

__all__ = ["fail", "fmt", "json_safe", "table_text", "to_json"]


def table_text(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
               width: int = 120) -> str:  # fmt: skip
    """A rich table rendered to plain text (no colour codes), for terminals and tests.

    Text is escaped: ``[x=1]`` in a factor label is shown, not read as rich markup."""
    table = Table(title=escape(title))
    for h in headers:
        table.add_column(escape(str(h)), overflow="fold")
    for r in rows:
        table.add_row(*(escape(fmt(v)) for v in r))
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()


def fail(exc: BaseException | str, as_json: bool = False, code: int = 2) -> typer.Exit:
    """Report an error and return the ``typer.Exit`` to raise: ``error: ...`` on stderr, and
    with ``--json`` also ``{"ok": false, "error": ..., "error_type": ...}`` on stdout, so a
    script reading stdout always gets JSON."""
    message = str(exc)
    typer.echo(f"error: {message}", err=True)
    if as_json:
        kind = type(exc).__name__ if isinstance(exc, BaseException) else "Error"
        typer.echo(to_json({"ok": False, "error": message, "error_type": kind}))
    return typer.Exit(code=code)
