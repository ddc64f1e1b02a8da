"""Rendering for the command line: rich tables as plain text and pretty JSON."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alphaforge.engine.formatting import fmt, json_safe, to_json

__all__ = ["fmt", "json_safe", "table_text", "to_json"]


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
