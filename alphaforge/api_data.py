"""Public API, data side: the store, ingest of files on disk, pull, validation.

``af.Store(path)`` wraps the partitioned parquet store with notebook-friendly methods; the
functions mirror the CLI commands of the same names (the CLI calls these very functions).
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from alphaforge.data.errors import DataError
from alphaforge.data.ingest import IngestItem, IngestReport
from alphaforge.data.ingest import ingest as _ingest
from alphaforge.data.manifest import PartitionInfo
from alphaforge.data.pull import PullProgress, PullReport, parse_time_us
from alphaforge.data.pull import pull as _pull
from alphaforge.data.storage_config import is_uri
from alphaforge.data.store import Store as _DataStore
from alphaforge.data.store_open import open_store
from alphaforge.data.tardis_fetch import DEFAULT_BASE_URL as TARDIS_BASE_URL
from alphaforge.data.tardis_fetch import download_range
from alphaforge.data.validate import validate_file
from alphaforge.data.validate_report import QualityReport
from alphaforge.engine.panel import Panel
from alphaforge.panels import load_panel

if TYPE_CHECKING:
    import pandas as pd
else:
    from alphaforge.lazy import LazyModule

    pd = LazyModule("pandas")  # imported on first use (alphaforge.lazy)

PathLike = str | os.PathLike[str]

__all__ = ["Store", "ingest", "pull", "pull_tardis", "validate"]


def _time_us(value: str | int | None) -> int | None:
    return None if value is None else parse_time_us(value)


class Store:
    """The partitioned parquet store at ``path`` (created on first write).

    Example::

        st = af.Store("store")
        st.ingest("downloads/")              # Binance archive files, Tardis CSVs, CDD exports
        st.ls()                              # one row per partition
        panel = st.panel(["BTCUSDT", "ETHUSDT"], start="2024-01-01", interval="1h")
    """

    def __init__(self, path: PathLike) -> None:
        self.uri = os.fspath(path)
        """The store as given: a folder or ``s3://bucket/prefix``."""
        self.path = Path(path) if not is_uri(self.uri) else Path(".alphaforge") / "object-store"
        """The local folder (downloads land under it); for an object store a local work folder."""
        self.data: _DataStore = open_store(self.uri)
        """The underlying ``alphaforge.data.store.Store`` (writes, manifests, raw reads): an
        ``ObjectStore`` on object storage, a ``TieredStore`` with a cold tier configured."""

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def partitions(self, dataset: str | None = None, market: str | None = None,
                   symbol: str | None = None) -> list[PartitionInfo]:  # fmt: skip
        """Manifest rows of the stored partitions matching the filters."""
        return self.data.partitions(dataset, market=market, symbol=symbol)

    def ls(self, dataset: str | None = None, market: str | None = None) -> pd.DataFrame:
        """One row per partition: exchange, market, dataset, symbol, month, rows, start, end
        (UTC timestamps), bytes and validation status."""
        rows = [
            {
                "exchange": p.exchange,
                "market": p.market,
                "dataset": p.dataset,
                "symbol": p.symbol,
                "month": p.month,
                "rows": p.rows,
                "start": _ts(p.min_time_us),
                "end": _ts(p.max_time_us),
                "bytes": p.file_bytes,
                "validation": p.validation_status,
            }
            for p in self.partitions(dataset, market)
        ]
        cols = ["exchange", "market", "dataset", "symbol", "month", "rows", "start", "end",
                "bytes", "validation"]  # fmt: skip
        return pd.DataFrame(rows, columns=cols)

    def read(
        self,
        dataset: str,
        symbols: Sequence[str] | None = None,
        start: str | int | None = None,
        end: str | int | None = None,
        *,
        market: str = "usdm",
        exchange: str = "binance",
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of ``dataset`` (e.g. ``klines_1m``) for ``symbols`` in ``[start, end)`` as an Arrow
        table in the dataset's schema (``.to_pandas()`` for a DataFrame). Times: ISO text (UTC)
        or int microseconds."""
        return self.data.read(dataset, exchange=exchange, market=market, symbols=symbols,
                              start_us=_time_us(start), end_us=_time_us(end),
                              columns=columns)  # fmt: skip

    def panel(
        self,
        symbols: Sequence[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        interval: str = "1m",
        *,
        market: str = "usdm",
        fields: Sequence[str] | None = None,
    ) -> Panel:
        """A time x symbol Panel of klines (bars indexed by close time) with the tradable mask
        and, for perpetuals, funding; ``fields`` keeps only those fields."""
        panel = load_panel(self.uri, symbols, start, end, interval=interval, market=market)
        if fields is not None:
            missing = [f for f in fields if f not in panel]
            if missing:
                raise DataError(f"panel has no field(s) {missing}; it has {sorted(panel.fields)}")
            keep = {f: panel[f] for f in (*fields, "tradable") if f in panel}
            panel = Panel(panel.ts_us, panel.symbols, keep, panel.book, panel.interval_us,
                          panel.meta)  # fmt: skip
        return panel

    def ingest(self, *paths: PathLike, market: str | None = None) -> IngestReport:
        """`alphaforge.ingest` into this store."""
        return ingest(self, *paths, market=market)

    def _repr_html_(self) -> str:
        df = self.ls()
        if df.empty:
            return f"<p>Store <code>{html.escape(self.uri)}</code>: empty</p>"
        summary = df.groupby(["market", "dataset"]).agg(
            symbols=("symbol", "nunique"), partitions=("month", "size"), rows=("rows", "sum"),
            start=("start", "min"), end=("end", "max"))  # fmt: skip
        head = f"<p>Store <code>{html.escape(self.uri)}</code></p>"
        return head + str(summary.to_html())


def _ts(t_us: int | None) -> pd.Timestamp | None:
    return None if t_us is None else pd.Timestamp(t_us, unit="us", tz="UTC")


def ingest(
    store: Store | PathLike,
    *paths: PathLike,
    market: str | None = None,
    progress: Callable[[int, int, IngestItem], None] | None = None,
) -> IngestReport:
    """Files and folders on disk -> the store (see ``alphaforge.data.ingest``).

    Every file is tried; ``report.ok`` is False and ``report.failed`` names each file that could
    not be ingested, with its reason. Passing a list of paths as one argument also works.

    Raises:
        DataError: a path that does not exist (before anything is written).
    """
    flat: list[PathLike] = []
    for p in paths:
        flat += list(p) if isinstance(p, list | tuple) else [p]
    st = store.data if isinstance(store, Store) else open_store(store)
    return _ingest(st, flat, market=market, progress=progress)


def pull(
    store: Store | PathLike,
    symbols: Sequence[str],
    start: str,
    end: str | None = None,
    *,
    dataset: str = "klines",
    interval: str | None = "1m",
    market: str = "usdm",
    source: str = "auto",
    progress: Callable[[PullProgress], None] | None = None,
    **kwargs: Any,
) -> PullReport:
    """Download Binance history into the store (bulk archive + REST), like ``alphaforge pull``.

    ``kwargs`` go to ``alphaforge.data.pull.pull`` (e.g. ``base_url``, ``archive_base_url``)."""
    st = store.data if isinstance(store, Store) else open_store(store)
    return _pull(st, source=source, market=market, dataset=dataset, symbols=list(symbols),
                 interval=interval, start=start, end=end, progress=progress,
                 **kwargs)  # fmt: skip


def pull_tardis(
    store: Store | PathLike,
    exchange: str,
    data_types: Sequence[str],
    symbols: Sequence[str],
    start: str,
    end: str | None = None,
    *,
    market: str = "usdm",
    download_dir: PathLike | None = None,
    api_key: str | None = None,
    base_url: str = TARDIS_BASE_URL,
) -> IngestReport:
    """Download Tardis.dev CSV files (one per data type, symbol and UTC day in [start, end);
    only ``start``'s day without ``end``) and ingest them, like ``alphaforge pull --source
    tardis``. The key comes from ``api_key`` or ``TARDIS_API_KEY`` and is never printed; files
    land in ``download_dir`` (default ``<store>/_downloads/tardis``) and a rerun skips complete
    ones.

    Raises:
        SourceError / RequestRejected: a download failed (401, 404, truncated body, ...).
    """
    st = store if isinstance(store, Store) else Store(store)
    first = dt.date.fromisoformat(start[:10])
    last = dt.date.fromisoformat(end[:10]) - dt.timedelta(days=1) if end else first
    dest = Path(download_dir) if download_dir is not None else st.path / "_downloads" / "tardis"
    got = download_range(exchange, data_types, symbols, first, last, dest, api_key=api_key,
                         base_url=base_url)  # fmt: skip
    return ingest(st, *[f.path for f in got], market=market)


def validate(path: PathLike, dataset: str | None = None, **kwargs: Any) -> QualityReport:
    """Quality report of one file (Binance archive CSV/zip, CDD export or parquet), like
    ``alphaforge validate FILE``; ``kwargs`` go to ``alphaforge.data.validate.validate_file``."""
    return validate_file(Path(path), dataset, **kwargs)
