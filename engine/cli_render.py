"""Small rendering helpers shared by the engine's commands: JSON-safe values, rich tables."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats into JSON-able values.

    NaN and +-inf become None (JSON has no NaN); arrays become lists.
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(value: Any) -> str:
    """Pretty JSON of ``value`` after ``json_safe``."""
    return json.dumps(json_safe(value), indent=2, sort_keys=False)


def fmt(value: Any) -> str:
    """A compact human form of a metric value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4f}"
    return str(value)


def table_text(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
               width: int = 120) -> str:  # fmt: skip
    """A rich table rendered to plain text (no colour codes), for terminals and tests."""
    table = Table(title=title)
    for h in headers:
        table.add_column(str(h), overflow="fold")
    for r in rows:
        table.add_row(*(fmt(v) for v in r))
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()
