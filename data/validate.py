"""Data validation: find every gap, duplicate, impossible value and disagreement, and report it.

Public API (each returns a `QualityReport`; nothing is ever repaired or dropped silently)::

    validate_table(table, dataset, interval=None)     dispatch on the dataset name
    validate_klines / validate_trades / validate_funding
    validate_book_snapshots / validate_book_ticker / validate_depth_updates
    reconcile_klines_agg_trades / reconcile_tables / basis_outliers
    validate_file(path, dataset=None)                 Binance archive CSV/zip, CDD CSV, parquet
    repair_klines(table, interval) -> (table, RepairLog)   explicit, opt-in

The checks run numba kernels (`data.validate_nb`) over the Arrow columns; each dataset's
checks live in ``data/validate_<dataset>.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alphaforge.data import cdd
from alphaforge.data.errors import SchemaError
from alphaforge.data.schemas import DATASETS
from alphaforge.data.validate_books import (
    BookChecks,
    validate_book_snapshots,
    validate_book_ticker,
    validate_depth_updates,
)
from alphaforge.data.validate_funding import FundingChecks, validate_funding
from alphaforge.data.validate_klines import KlineChecks, validate_klines
from alphaforge.data.validate_reconcile import (
    basis_outliers,
    reconcile_klines_agg_trades,
    reconcile_tables,
)
from alphaforge.data.validate_repair import RepairLog, repair_klines
from alphaforge.data.validate_report import CheckResult, QualityReport
from alphaforge.data.validate_trades import TradeChecks, validate_trades

__all__ = [
    "BookChecks",
    "CheckResult",
    "FundingChecks",
    "KlineChecks",
    "QualityReport",
    "RepairLog",
    "TradeChecks",
    "base_dataset",
    "basis_outliers",
    "read_for_validation",
    "reconcile_klines_agg_trades",
    "reconcile_tables",
    "repair_klines",
    "validate_book_snapshots",
    "validate_book_ticker",
    "validate_depth_updates",
    "validate_file",
    "validate_funding",
    "validate_klines",
    "validate_table",
    "validate_trades",
]

_KLINE_BASES = ("mark_klines", "index_klines", "klines")


def base_dataset(dataset: str) -> tuple[str, str | None]:
    """(schema name, interval or None) of a dataset name: ``klines_1m`` -> (``klines``, ``1m``).

    Raises:
        SchemaError: unknown dataset.
    """
    for base in _KLINE_BASES:
        if dataset == base:
            return base, None
        if dataset.startswith(base + "_"):
            return base, dataset[len(base) + 1 :]
    if dataset in DATASETS:
        return dataset, None
    if re.fullmatch(r"book_snapshots_\d+", dataset):
        return "book_snapshots", None
    raise SchemaError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")


def validate_table(
    table: pa.Table,
    dataset: str,
    *,
    interval: str | int | None = None,
    source: str = "table",
    params: Any = None,
) -> QualityReport:
    """Run the checks of ``dataset`` (``klines[_1m]``, ``agg_trades``, ``trades``, ``funding``,
    ``book_snapshots``, ``book_ticker``, ``depth_updates``) over ``table``.

    Args:
        table: a table in the dataset's schema (extra columns are ignored, except the CDD
            provenance columns that the kline checks use).
        dataset: dataset name; a ``klines_<interval>`` name also gives the interval.
        interval: kline interval ('1m' or µs); None takes it from the name or infers it.
        params: the dataset's check parameters (`KlineChecks`, `TradeChecks`, ...).

    Raises:
        SchemaError: unknown dataset, or a column missing.
    """
    base, iv = base_dataset(dataset)
    if base in _KLINE_BASES:
        return validate_klines(table, interval or iv, params=params, source=source, dataset=base)
    if base in ("agg_trades", "trades"):
        return validate_trades(table, base, params=params, source=source)
    if base == "funding":
        return validate_funding(table, params=params, source=source)
    if base == "book_snapshots":
        return validate_book_snapshots(table, params=params, source=source)
    if base == "book_ticker":
        return validate_book_ticker(table, params=params, source=source)
    if base == "depth_updates":
        return validate_depth_updates(table, source=source)
    raise SchemaError(f"no validator for dataset {dataset!r}")


_ARCHIVE_KIND = {
    "aggTrades": "agg_trades",
    "trades": "trades",
    "bookTicker": "book_ticker",
    "fundingRate": "funding",
    "markPriceKlines": "mark_klines",
    "indexPriceKlines": "index_klines",
}
_ARCHIVE_NAME = re.compile(r"^(?P<sym>[A-Z0-9]+)-(?P<kind>[A-Za-z0-9]+)-")


def _archive_dataset(path: Path) -> tuple[str, str | None, str]:
    """(dataset, interval, symbol) from a Binance archive file name, e.g. BTCUSDT-1m-2024-01."""
    m = _ARCHIVE_NAME.match(path.name)
    if not m:
        raise SchemaError(
            f"{path}: cannot tell the dataset from the file name; pass --dataset "
            "(expected a Binance archive name like BTCUSDT-1m-2024-01.zip)"
        )
    kind, sym = m.group("kind"), m.group("sym")
    if kind in _ARCHIVE_KIND:
        ds = _ARCHIVE_KIND[kind]
        if ds.endswith("klines"):
            iv = path.name.split("-")[2]
            return ds, iv, sym
        return ds, None, sym
    return "klines", kind, sym


def read_for_validation(
    path: str | Path, dataset: str | None = None, symbol: str | None = None
) -> tuple[pa.Table, str, str | None]:
    """Read one file for validation: (table, dataset, interval or None).

    Parquet files are read as they are (``dataset`` required unless the columns match exactly
    one schema); CryptoDataDownload CSVs via `data.cdd.read_cdd_csv` (provenance kept);
    anything else as a Binance archive CSV/zip via `data.archive.read_archive_path`.

    Raises:
        SchemaError: unreadable or unrecognised file (the message names it).
    """
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: no such file")
    if p.suffix == ".parquet":
        table = pq.read_table(p)
        if dataset is None:
            names = set(table.column_names)
            hits = [d for d, s in DATASETS.items() if set(s.names) <= names]
            hits = [h for h in hits if h not in ("mark_klines", "index_klines")]
            if len(hits) != 1:
                raise SchemaError(f"{p}: pass --dataset; columns match {hits or 'no schema'}")
            dataset = hits[0]
        base, iv = base_dataset(dataset)
        return table, base, iv
    if cdd.is_cdd_csv(p):
        return cdd.read_cdd_csv(p), "klines", cdd.interval_from_name(p)
    from alphaforge.data.archive import read_archive_path

    if dataset is None:
        dataset, iv, sym = _archive_dataset(p)
        symbol = symbol or sym
    else:
        dataset, iv = base_dataset(dataset)
    arch = f"klines_{iv}" if dataset == "klines" and iv else dataset
    return read_archive_path(p, arch, symbol), dataset, iv


def validate_file(
    path: str | Path,
    dataset: str | None = None,
    *,
    interval: str | None = None,
    symbol: str | None = None,
    params: Any = None,
) -> QualityReport:
    """`read_for_validation` then `validate_table`; the report's source is the path."""
    table, ds, iv = read_for_validation(path, dataset, symbol)
    return validate_table(table, ds, interval=interval or iv, source=str(path), params=params)
