"""Which inputs a factor reads: a Panel that records the fields, and whether the book, that a
callable Panel -> (T, N) touched.

The lookahead check perturbs only what the factor reads (``factors.lookahead``): drawing noise
for every field and the four (T, N, L) book arrays at every cut was most of the check's time
for a factor that reads one field. The record is conservative: reading a field's values in
any way (``panel[name]``, ``panel.fields[name]``, ``.get``, ``.values()``, ``.items()``, a
copy or an unpacking of the mapping) records it, and any access to ``panel.book`` (also from
the Panel's own methods, such as ``take_rows``) records the book.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import Panel

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_values

F64 = npt.NDArray[np.float64]
BOOK = "<book>"
"""The name recorded when the book is read."""


class _ReadFields(dict[str, F64]):
    """The field mapping of a ``ReadRecorder``: every way of reading values is recorded."""

    def __init__(self, data: Mapping[str, F64], reads: set[str]) -> None:
        super().__init__(data)
        self._reads = reads

    def __getitem__(self, key: str) -> F64:
        self._reads.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self._reads.add(key)
        return super().get(key, default)

    def values(self) -> dict_values[str, F64]:
        self._reads.update(self.keys())
        return super().values()

    def items(self) -> dict_items[str, F64]:
        self._reads.update(self.keys())
        return super().items()

    def copy(self) -> dict[str, F64]:
        self._reads.update(self.keys())
        return dict(super().items())

    def __iter__(self) -> Iterator[str]:
        # a Python-level __iter__ takes the mapping off CPython's dict fast paths, so a copy,
        # ``{**fields}`` or ``fields | other`` reads the values through __getitem__ (recorded)
        return super().__iter__()

    def __reduce__(self) -> Any:
        self._reads.update(self.keys())
        return (dict, (dict(super().items()),))


class ReadRecorder(Panel):
    """A Panel with the same arrays that notes what is read from it in ``reads`` (field names,
    ``BOOK`` for the book). Build it with ``record_reads``."""

    __slots__ = ("reads",)
    reads: set[str]

    def __getattribute__(self, name: str) -> Any:
        if name == "book":
            with contextlib.suppress(AttributeError):  # the Panel's checks while it is built
                object.__getattribute__(self, "reads").add(BOOK)
        return object.__getattribute__(self, name)


def record_reads(panel: Panel) -> ReadRecorder:
    """``panel`` as a ``ReadRecorder`` with an empty record (the arrays are shared, not copied)."""
    rec = ReadRecorder(panel.ts_us, panel.symbols, panel.fields, panel.book, panel.interval_us,
                       panel.meta)  # fmt: skip
    reads: set[str] = set()
    object.__setattr__(rec, "fields", _ReadFields(rec.fields, reads))
    object.__setattr__(rec, "reads", reads)  # after construction: its own book check is no read
    return rec
