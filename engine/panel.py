"""Panel: time x asset columnar arrays, the one data structure every compute module takes.

A Panel holds
- ``ts_us``: (T,) int64 UTC microseconds, strictly increasing: the *availability* time of each
  row (a kline is indexed by its close time, open_time + interval; see design.md);
- ``symbols``: (N,) tuple of str;
- ``fields``: name -> (T, N) float64, NaN = missing;
- ``book`` (optional): order-book levels in force at each row, (T, N, L) per side;
- ``interval_us``: the bar length (for annualization), or None for irregular panels;
- ``meta``: free-form provenance, e.g. ``{"synthetic": True, "seed": 7}``.

It is built from a long Arrow table (ts, symbol, fields...) by one pivot (``from_arrow``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.errors import PanelError, ShapeError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

US_PER_YEAR = 365 * 86_400 * 1_000_000
"""Microseconds in a 365-day year: annualization basis (crypto trades every day)."""


@dataclass(frozen=True, slots=True)
class BookLevels:
    """Order-book levels in force at each Panel row.

    Attributes:
        bid_px: (T, N, L) float64, level 0 best (highest) bid, NaN where the level is absent.
        bid_qty: (T, N, L) float64, base-asset quantity at each bid level.
        ask_px: (T, N, L) float64, level 0 best (lowest) ask.
        ask_qty: (T, N, L) float64.
    """

    bid_px: F64
    bid_qty: F64
    ask_px: F64
    ask_qty: F64

    def __post_init__(self) -> None:
        shape = self.bid_px.shape
        for name in ("bid_qty", "ask_px", "ask_qty"):
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ShapeError(f"book.{name} has shape {arr.shape}, bid_px has {shape}")
        if len(shape) != 3:
            raise ShapeError(f"book arrays must be (T, N, L); got {shape}")

    @property
    def levels(self) -> int:
        """Number of levels L per side."""
        return int(self.bid_px.shape[2])

    def take(self, rows: Any, cols: Any) -> BookLevels:
        """Sub-book for the given row and column indexers."""
        return BookLevels(*(np.ascontiguousarray(a[rows][:, cols]) for a in self._arrays()))

    def truncate(self, levels: int) -> BookLevels:
        """The same book using only the first ``levels`` levels per side."""
        return BookLevels(*(np.ascontiguousarray(a[:, :, :levels]) for a in self._arrays()))

    def _arrays(self) -> tuple[F64, F64, F64, F64]:
        return (self.bid_px, self.bid_qty, self.ask_px, self.ask_qty)


@dataclass(frozen=True, slots=True)
class Panel:
    """Time x asset arrays (see module docstring for the layout and conventions)."""

    ts_us: I64
    symbols: tuple[str, ...]
    fields: Mapping[str, F64]
    book: BookLevels | None = None
    interval_us: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ts = np.asarray(self.ts_us)
        if ts.ndim != 1:
            raise ShapeError(f"ts_us must be 1-D; got shape {ts.shape}")
        if ts.dtype != np.int64:
            raise PanelError(f"ts_us must be int64 microseconds; got dtype {ts.dtype}")
        _check_increasing(ts)
        object.__setattr__(self, "ts_us", ts)
        syms = tuple(str(s) for s in self.symbols)
        if len(set(syms)) != len(syms):
            dup = sorted({s for s in syms if syms.count(s) > 1})
            raise PanelError(f"duplicate symbols: {dup}")
        object.__setattr__(self, "symbols", syms)
        shape = (ts.shape[0], len(syms))
        clean: dict[str, F64] = {}
        for name, arr in self.fields.items():
            a = np.ascontiguousarray(arr, dtype=np.float64)
            if a.shape != shape:
                raise ShapeError(f"field {name!r} has shape {a.shape}; expected (T, N) = {shape}")
            clean[name] = a
        object.__setattr__(self, "fields", clean)
        if self.book is not None and self.book.bid_px.shape[:2] != shape:
            raise ShapeError(f"book has (T, N) = {self.book.bid_px.shape[:2]}; expected {shape}")
        if self.interval_us is not None and self.interval_us <= 0:
            raise PanelError(f"interval_us must be positive; got {self.interval_us}")
        if self.interval_us is not None and ts.size > 1:
            _check_grid(ts, int(self.interval_us))

    # ------------------------------------------------------------------ shape and access
    @property
    def T(self) -> int:
        """Number of timestamps."""
        return int(self.ts_us.shape[0])

    @property
    def N(self) -> int:
        """Number of symbols."""
        return len(self.symbols)

    def __getitem__(self, name: str) -> F64:
        """The (T, N) float64 array of field ``name``."""
        try:
            return self.fields[name]
        except KeyError:
            raise PanelError(f"unknown field {name!r}; panel has {sorted(self.fields)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    @property
    def periods_per_year(self) -> float:
        """Bars per 365-day year, from ``interval_us``.

        Raises:
            PanelError: when the panel has no fixed interval.
        """
        if self.interval_us is None:
            raise PanelError("panel has no interval_us; pass periods_per_year explicitly")
        return US_PER_YEAR / self.interval_us

    def structure(self) -> tuple[Any, ...]:
        """(T, N, symbols, first/last time, interval, sorted field names, book levels): what a
        selection, a time slice or a new field changes; cheap (no values read)."""
        ends = (int(self.ts_us[0]), int(self.ts_us[-1])) if self.T else (None, None)
        levels = None if self.book is None else int(self.book.bid_px.shape[2])
        return (self.T, self.N, self.symbols, ends, self.interval_us, tuple(sorted(self.fields)),
                levels)  # fmt: skip

    def fingerprint(self) -> str:
        """A hash of every time, symbol, field value and book level (hex, 32 digits): equal
        fingerprints mean the same data (used to check a panel rebuilt on a worker)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(self.structure()).encode())
        h.update(self.ts_us.tobytes())
        for name in sorted(self.fields):
            h.update(self.fields[name].tobytes())
        if self.book is not None:
            for a in (self.book.bid_px, self.book.bid_qty, self.book.ask_px, self.book.ask_qty):
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ derivation
    def with_fields(self, **new: F64) -> Panel:
        """A Panel with extra (or replaced) fields, everything else shared."""
        merged = dict(self.fields)
        merged.update(new)
        return Panel(self.ts_us, self.symbols, merged, self.book, self.interval_us, self.meta)

    def with_book(self, book: BookLevels | None) -> Panel:
        """A Panel with the given book levels."""
        return Panel(self.ts_us, self.symbols, self.fields, book, self.interval_us, self.meta)

    def slice_time(self, start_us: int | None = None, end_us: int | None = None) -> Panel:
        """Rows with start_us <= ts < end_us (either bound optional)."""
        lo = 0 if start_us is None else int(np.searchsorted(self.ts_us, start_us, "left"))
        hi = self.T if end_us is None else int(np.searchsorted(self.ts_us, end_us, "left"))
        return self.take_rows(slice(lo, hi))

    def take_rows(self, rows: slice) -> Panel:
        """Rows selected by a slice (views where possible)."""
        book = None if self.book is None else self.book.take(rows, slice(None))
        return Panel(
            self.ts_us[rows],
            self.symbols,
            {k: v[rows] for k, v in self.fields.items()},
            book,
            self.interval_us,
            self.meta,
        )

    def select(self, symbols: Sequence[str]) -> Panel:
        """Columns for ``symbols`` in the given order.

        Raises:
            PanelError: a symbol not in the panel.
        """
        index = {s: i for i, s in enumerate(self.symbols)}
        missing = [s for s in symbols if s not in index]
        if missing:
            raise PanelError(f"unknown symbol(s) {missing}; panel has {list(self.symbols)}")
        cols = np.array([index[s] for s in symbols], dtype=np.int64)
        book = None if self.book is None else self.book.take(slice(None), cols)
        return Panel(
            self.ts_us,
            tuple(symbols),
            {k: np.ascontiguousarray(v[:, cols]) for k, v in self.fields.items()},
            book,
            self.interval_us,
            self.meta,
        )

    def on_grid(self, interval_us: int) -> Panel:
        """This panel on the true time grid of ``interval_us``: one row per interval from the
        first to the last row, missing bars as NaN rows (no book rows are invented: the book,
        if any, gets NaN levels there too).

        Raises:
            PanelError: a row time that is not on the grid.
        """
        grid, rows = _time_rows(self.ts_us, interval_us)
        if grid.size == self.T:
            return Panel(self.ts_us, self.symbols, self.fields, self.book, interval_us, self.meta)

        def spread(a: F64) -> F64:
            out = np.full((grid.size, *a.shape[1:]), np.nan)
            out[rows] = a
            return out

        book = None
        if self.book is not None:
            book = BookLevels(*(spread(a) for a in self.book._arrays()))
        fields = {k: spread(v) for k, v in self.fields.items()}
        return Panel(grid, self.symbols, fields, book, interval_us, self.meta)

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_arrow(
        cls,
        table: pa.Table,
        *,
        ts_col: str = "ts",
        symbol_col: str = "symbol",
        fields: Iterable[str] | None = None,
        interval_us: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Panel:
        """Pivot a long table (one row per (ts, symbol)) into a Panel, in one pass.

        Args:
            table: pyarrow Table with an int64 or timestamp[us] column ``ts_col``, a string
                column ``symbol_col`` and numeric field columns.
            fields: columns to keep; default every numeric column other than ts/symbol.
            interval_us: bar length in microseconds, or None.

        Raises:
            PanelError: missing columns, or two rows for the same (ts, symbol).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        for col in (ts_col, symbol_col):
            if col not in table.column_names:
                raise PanelError(f"table has no column {col!r}; columns: {table.column_names}")
        if fields is None:
            fields = [
                f.name
                for f in table.schema
                if f.name not in (ts_col, symbol_col)
                and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
            ]
        fields = list(fields)
        absent = [f for f in fields if f not in table.column_names]
        if absent:
            raise PanelError(f"unknown field(s) {absent}; columns: {table.column_names}")
        ts_arr = table.column(ts_col)
        if pa.types.is_timestamp(ts_arr.type):
            ts_arr = pc.cast(ts_arr, pa.timestamp("us", tz="UTC")).cast(pa.int64())
        ts_raw = np.asarray(ts_arr.to_numpy(), dtype=np.int64)
        ts_u, ts_idx = _time_rows(ts_raw, interval_us)
        sym_u, sym_idx = symbol_codes(table.column(symbol_col), symbol_col)
        flat = ts_idx.astype(np.int64) * len(sym_u) + sym_idx
        counts = np.bincount(flat, minlength=len(ts_u) * len(sym_u))
        if flat.size and counts.max() > 1:
            bad = int(np.argmax(counts))
            raise PanelError(
                f"duplicate rows for ts={int(ts_u[bad // len(sym_u)])} "
                f"symbol={str(sym_u[bad % len(sym_u)])!r} ({counts[bad]} rows)"
            )
        out: dict[str, F64] = {}
        for name in fields:
            col = table.column(name).to_numpy(zero_copy_only=False)
            values = np.asarray(col, dtype=np.float64)
            arr = np.full(len(ts_u) * len(sym_u), np.nan)
            arr[flat] = values
            out[name] = arr.reshape(len(ts_u), len(sym_u))
        return cls(
            ts_u.astype(np.int64),
            tuple(str(s) for s in sym_u),
            out,
            interval_us=interval_us,
            meta=dict(meta or {}),
        )

    def to_pandas(self, name: str | None = None) -> pd.DataFrame:
        """Field ``name`` as a wide DataFrame (UTC DatetimeIndex ``ts`` x one column per symbol);
        with no name, every field in long form: MultiIndex (ts, symbol), one column per field
        (the layout alphalens takes)."""
        import pandas as pd

        index = pd.DatetimeIndex(pd.to_datetime(self.ts_us, unit="us", utc=True), name="ts")
        if name is not None:
            return pd.DataFrame(self[name], index=index, columns=list(self.symbols))
        long_index = pd.MultiIndex.from_product([index, list(self.symbols)],
                                                names=["ts", "symbol"])  # fmt: skip
        return pd.DataFrame({f: a.ravel() for f, a in self.fields.items()}, index=long_index)

    @classmethod
    def from_pandas(
        cls,
        frames: Any,
        *,
        interval_us: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Panel:
        """Build from pandas or polars data, in any of three layouts:

        - wide: a mapping field -> DataFrame (UTC DatetimeIndex x one column per symbol);
        - long pandas: one row per (time, symbol), time and symbol as columns or as a
          MultiIndex (``ts``/``time``/``timestamp``/``date``/``open_time``, and
          ``symbol``/``asset``), numeric columns as fields;
        - long polars: the same columns in a ``polars.DataFrame``.

        ``interval_us`` (bar length, µs) is inferred as the most common time step when None.

        Raises:
            PanelError: frames with different indexes or columns, no time or symbol column,
                two rows for one (time, symbol), or a non-datetime index.
        """
        import pandas as pd

        if hasattr(frames, "to_arrow") and not isinstance(frames, pd.DataFrame):
            return _from_long_arrow(cls, frames.to_arrow(), interval_us, meta)
        if isinstance(frames, pd.DataFrame):
            flat = frames.reset_index() if _has_named_index(frames) else frames
            import pyarrow as pa

            return _from_long_arrow(cls, pa.Table.from_pandas(flat, preserve_index=False),
                                    interval_us, meta)  # fmt: skip
        if not frames:
            raise PanelError("from_pandas needs at least one field frame")
        names = list(frames)
        first = frames[names[0]]
        for name in names[1:]:
            f = frames[name]
            if not f.index.equals(first.index) or list(f.columns) != list(first.columns):
                raise PanelError(
                    f"frame {name!r} has a different index or columns than {names[0]!r}"
                )
        if not isinstance(first.index, pd.DatetimeIndex):
            raise PanelError(f"frame {names[0]!r} index must be a DatetimeIndex")
        idx = first.index
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        ts = idx.as_unit("us").asi8.astype(np.int64)
        panel = cls(
            ts,
            tuple(str(c) for c in first.columns),
            {n: frames[n].to_numpy(dtype=np.float64) for n in names},
            meta=dict(meta or {}),
        )
        step = interval_us if interval_us is not None else infer_interval_us(ts)
        return panel if step is None else panel.on_grid(step)


_TIME_NAMES = ("ts", "time", "timestamp", "date", "datetime", "open_time")
_SYMBOL_NAMES = ("symbol", "asset", "ticker")


def _has_named_index(df: Any) -> bool:
    return any(n is not None for n in df.index.names)


def _from_long_arrow(cls: type[Panel], table: pa.Table, interval_us: int | None,
                     meta: Mapping[str, Any] | None) -> Panel:  # fmt: skip
    """A long Arrow table (any of the usual time/symbol column names) -> Panel."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = table.column_names
    ts_col = next((c for c in _TIME_NAMES if c in cols), None)
    sym_col = next((c for c in _SYMBOL_NAMES if c in cols), None)
    if ts_col is None or sym_col is None:
        raise PanelError(
            f"a long frame needs a time column (one of {_TIME_NAMES}) and a symbol column "
            f"(one of {_SYMBOL_NAMES}); columns: {cols}"
        )
    ts = table.column(ts_col)
    if pa.types.is_timestamp(ts.type) and ts.type.tz is None:
        ts = pc.assume_timezone(ts, "UTC")
    elif not pa.types.is_timestamp(ts.type) and not pa.types.is_integer(ts.type):
        raise PanelError(f"time column {ts_col!r} must be datetimes or int µs; got {ts.type}")
    table = table.set_column(cols.index(ts_col), ts_col, ts)
    panel = cls.from_arrow(table, ts_col=ts_col, symbol_col=sym_col, meta=meta)
    step = interval_us if interval_us is not None else infer_interval_us(panel.ts_us)
    return panel if step is None else panel.on_grid(step)


def infer_interval_us(ts_us: I64) -> int | None:
    """The most common positive step of a time index (µs), or None with fewer than 2 rows."""
    if ts_us.size < 2:
        return None
    steps, counts = np.unique(np.diff(ts_us), return_counts=True)
    return int(steps[np.argmax(counts)])


def symbol_codes(col: pa.ChunkedArray, name: str) -> tuple[npt.NDArray[np.str_], I64]:
    """(sorted distinct symbols, index of each row's symbol in them), by dictionary encoding:
    the same result as ``np.unique(symbols, return_inverse=True)`` without sorting every row.

    Raises:
        PanelError: a null symbol (the row would belong to no column).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        row = int(np.flatnonzero(np.asarray(col.is_null().to_numpy(zero_copy_only=False)))[0])
        raise PanelError(f"column {name!r} is null in row {row}: every row needs a symbol")
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = pc.cast(col, pa.string())
    enc = pc.dictionary_encode(col.combine_chunks())  # one dictionary for every row
    names = np.asarray(enc.dictionary.to_pylist(), dtype=str)
    order = np.argsort(names, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return names[order], rank[codes]


def _time_rows(ts_raw: I64, interval_us: int | None) -> tuple[I64, I64]:
    """(row times, row of each input time). With a bar interval the rows are the true time grid
    from the first to the last time (a missing bar is a row of NaN, never a joined gap);
    without one, the distinct times present.

    Raises:
        PanelError: a time that is not on the interval grid of the first one.
    """
    if interval_us is None or ts_raw.size == 0:
        ts_u, idx = np.unique(ts_raw, return_inverse=True)
        return ts_u.astype(np.int64), idx.astype(np.int64)
    t0 = int(ts_raw.min())
    off = ts_raw - t0
    bad = np.flatnonzero(off % interval_us)
    if bad.size:
        raise PanelError(
            f"time {int(ts_raw[bad[0]])} is not on the {interval_us} us grid that starts at {t0}"
        )
    idx = off // interval_us
    grid = t0 + interval_us * np.arange(int(idx.max()) + 1, dtype=np.int64)
    return grid, idx.astype(np.int64)


def _check_grid(ts: I64, interval_us: int) -> None:
    """A Panel with a bar interval has one row per interval: no gap may be joined."""
    d = np.diff(ts)
    bad = np.flatnonzero(d != interval_us)
    if bad.size:
        i = int(bad[0])
        raise PanelError(
            f"rows {i} and {i + 1} are {int(d[i])} us apart but the bar interval is "
            f"{interval_us} us: a Panel with an interval holds every bar of its span (use "
            "Panel.on_grid to insert the missing bars as NaN rows)"
        )


def _check_increasing(ts: I64) -> None:
    if ts.size < 2:
        return
    d = np.diff(ts)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate" if d[bad[0]] == 0 else "unsorted"
        raise PanelError(
            f"ts_us must be strictly increasing: {kind} timestamp at row {i} "
            f"({int(ts[i - 1])} then {int(ts[i])})"
        )
