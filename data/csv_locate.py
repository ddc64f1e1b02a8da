"""Where a CSV parse error is: pyarrow names a column and a value, or a bad line's text, but
not the line. These helpers re-scan the text (only on the error path) to name the line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

_CONVERSION = re.compile(r"In CSV column #(\d+): .*?invalid value '(.*)'", re.S)
_BAD_LINE = re.compile(r"CSV parse error: .*?: (.*)$", re.S)


def locate_csv_error(lines: Iterable[bytes], message: str, columns: Sequence[str]) -> str:
    """`` at line N (column 'c', value 'v')`` or `` at line N`` for a pyarrow CSV error message,
    or "" when the line cannot be found. Line numbers are 1-based lines of the CSV text (a
    header, if any, is line 1).

    Args:
        lines: the CSV text's lines (bytes, with or without line endings), from the start.
        message: pyarrow's error text.
        columns: the column names pyarrow was given, in file order.
    """
    conv = _CONVERSION.search(message)
    if conv:
        col, value = int(conv.group(1)), conv.group(2).encode()
        for n, line in enumerate(lines, 1):
            fields = line.rstrip(b"\r\n").split(b",")
            if col < len(fields) and fields[col].strip(b'"') == value:
                name = columns[col] if col < len(columns) else f"#{col}"
                return f" at line {n} (column {name!r}, value {value.decode(errors='replace')!r})"
        return ""
    bad = _BAD_LINE.search(message)
    if bad:
        text = bad.group(1).strip().encode()
        for n, line in enumerate(lines, 1):
            if line.rstrip(b"\r\n") == text:
                return f" at line {n}"
    return ""


def iter_lines(stream: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary stream that may offer only ``read`` (pyarrow's native files)."""
    rest = b""
    while data := stream.read(chunk):
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest
