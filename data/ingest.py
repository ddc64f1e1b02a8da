"""Files on disk -> the store: Binance archive files, Tardis CSVs and CryptoDataDownload exports.

`ingest` walks files and folders (recursively), tells each file's kind from its name and first
line, parses it with the reader of its format and writes it with the store's usual guarantees
(atomic replace per partition, idempotent merge on the natural key, manifest with the source path
and sha256). A file that cannot be ingested is reported with its name and the reason; the other
files still go in, and the report says which failed (`IngestReport.ok` is False then).

Kinds:
- ``binance``: archive files as downloaded, ``SYMBOL-<interval|aggTrades|trades|bookTicker|
  fundingRate|metrics>-YYYY-MM[-DD].zip`` (or the extracted ``.csv``, or ``.csv.gz``). Symbol,
  dataset and interval come from the name; a zip's CSV member must carry the same name (a
  renamed zip is refused), and a ``.CHECKSUM`` file beside a zip is verified. Mark/index
  price klines are told from their folder (``markPriceKlines``/``indexPriceKlines``), the
  market from the folder (``spot``, ``futures``/``um``) unless given.
- ``tardis``: Tardis.dev CSV files (header ``exchange,symbol,timestamp,local_timestamp,...``).
- ``cdd``: CryptoDataDownload exports (header ``unix,date,symbol,...``), stored as klines of
  the interval in the file name.
- ``hftbacktest``: raw Binance WebSocket + REST depth recordings in the hftbacktest collector
  format (``btcusdt_20240808.gz``, lines ``<local ts> <json>``): depth updates, trades, aggTrades,
  bookTicker and funding go to their datasets (``depth_updates``, ``trades``, ...).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data.archive import read_archive_csv
from alphaforge.data.bars_from_trades import klines_from_trades
from alphaforge.data.cdd import interval_from_name, is_cdd_csv, read_cdd_csv
from alphaforge.data.errors import ChecksumMismatch, DataError, SchemaError
from alphaforge.data.recordings import read_hftbacktest
from alphaforge.data.schemas import KLINES, interval_us
from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from alphaforge.data.tardis import dataset_of, detect_data_type, file_exchange, read_tardis_csv

__all__ = ["FileSpec", "IngestItem", "IngestReport", "classify", "ingest", "iter_files"]

_ARCHIVE_NAME: Final = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<middle>\d+[smhdwM]|aggTrades|trades|bookTicker|fundingRate|"
    r"metrics)"
    r"-(?P<label>\d{4}-\d{2}(?:-\d{2})?)(?P<suffix>-[A-Za-z0-9_]+)?$"
)
_MIDDLE_DATASET: Final = {
    "aggTrades": "agg_trades",
    "trades": "trades",
    "bookTicker": "book_ticker",
    "fundingRate": "funding",
    "metrics": "metrics",
}
_PRICE_KLINES: Final = {"markpriceklines": "mark_klines", "indexpriceklines": "index_klines"}
_SUFFIXES: Final = (".csv.gz", ".csv", ".zip", ".dat.gz", ".gz")
_RECORDING_NAME: Final = re.compile(r"^[a-z0-9_]+?_\d{8}$")
_RECORDING_TABLES: Final = ("depth_updates", "trades", "agg_trades", "book_ticker", "funding")
_SKIP_SUFFIXES: Final = (".CHECKSUM", ".md", ".json", ".txt", ".parquet")


@dataclass(frozen=True, slots=True)
class FileSpec:
    """What a file holds, as told from its name, folder and first line.

    Attributes:
        path: the file. kind: "binance", "tardis" or "cdd".
        dataset: the store's partition value (``klines_1m``, ``agg_trades``, ``quotes``, ...).
        symbol: exchange symbol for Binance files (None when the file carries its own).
        market: "spot" or "usdm". exchange: the partition's exchange.
        data_type: Tardis data type (None for other kinds).
    """

    path: Path
    kind: str
    dataset: str
    symbol: str | None
    market: str
    exchange: str = "binance"
    data_type: str | None = None


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One file's outcome, or the error that stopped it.

    ``rows_added`` counts rows new to the store; ``rows_merged`` = ``rows_read - rows_added`` are
    rows whose natural key was already stored (a re-ingest, an overlapping file) or repeated
    within the file (e.g. CryptoDataDownload's overlapping legacy/current rows): the stored
    row for such a key is the one read last. ``missing`` lists, per partition the file wrote
    to, what that partition still lacks inside its bounds (bars or agg-trade ids,
    ``data.completeness``): the source's own holes, or holes another file may fill.
    """

    path: str
    kind: str | None = None
    dataset: str | None = None
    market: str | None = None
    rows_read: int = 0
    rows_added: int = 0
    partitions: int = 0
    error: str | None = None
    missing: tuple[dict[str, Any], ...] = ()

    @property
    def rows_merged(self) -> int:
        return self.rows_read - self.rows_added

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["rows_merged"] = self.rows_merged
        return out


@dataclass(slots=True)
class IngestReport:
    """Every file's outcome, in the order ingested. ``ok`` is False when any file failed."""

    items: list[IngestItem] = field(default_factory=list)

    @property
    def failed(self) -> list[IngestItem]:
        return [i for i in self.items if i.error is not None]

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.items)

    @property
    def missing(self) -> list[dict[str, Any]]:
        """What the written partitions lack, one entry per partition (each listed once)."""
        seen: dict[str, dict[str, Any]] = {}
        for item in self.items:
            for m in item.missing:
                seen[m["partition"]] = m
        return list(seen.values())

    @property
    def complete(self) -> bool:
        """True when no written partition lacks a bar or an id inside its bounds."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with totals."""
        done = [i for i in self.items if i.error is None]
        return {
            "ok": self.ok,
            "complete": self.complete,
            "missing": self.missing,
            "files": len(self.items),
            "files_failed": len(self.failed),
            "rows_read": sum(i.rows_read for i in done),
            "rows_added": sum(i.rows_added for i in done),
            "items": [i.to_dict() for i in self.items],
        }


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named directly, plus every data file under the folders named (sorted, recursive).

    Checksum files, notes and hidden files inside folders are skipped; a path that does not
    exist raises.

    Raises:
        DataError: a path that does not exist.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and not f.name.startswith(".")
                and not f.name.endswith(_SKIP_SUFFIXES)
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"{p}: no such file or folder")
    return out


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _market_of(path: Path, market: str | None) -> str:
    if market is not None:
        return market
    parts = [p.lower() for p in path.parent.parts]
    if any("spot" in p for p in parts):
        return "spot"
    if any(p in ("um", "usdm") or "futures" in p for p in parts):
        return "usdm"
    raise SchemaError(
        f"{path}: cannot tell spot from USD-M futures from the folder names; pass market "
        "('spot' or 'usdm', CLI --market)"
    )


def _first_line(path: Path) -> str:
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict") as fh:
            return str(fh.readline(4096)).lstrip("\ufeff").strip().lower()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SchemaError(f"{path}: not a readable text file ({exc})") from None


def classify(path: str | os.PathLike[str], market: str | None = None) -> FileSpec:
    """Tell what ``path`` holds (see the module docstring for the recognised kinds).

    Raises:
        SchemaError: a file of no recognised kind, or an unknown market (names the file).
    """
    p = Path(path)
    m = _ARCHIVE_NAME.match(_stem(p.name))
    if m:
        middle = m.group("middle")
        if middle in _MIDDLE_DATASET:
            dataset = _MIDDLE_DATASET[middle]
        else:
            interval_us(middle)
            folders = [q.lower() for q in p.parent.parts]
            base = next((v for k, v in _PRICE_KLINES.items() if k in folders), "klines")
            dataset = f"{base}_{middle}"
        return FileSpec(p, "binance", dataset, m.group("symbol"), _market_of(p, market))
    if _RECORDING_NAME.match(_stem(p.name)) and re.match(r"^\d+ \{", _first_line(p)):
        return FileSpec(p, "hftbacktest", "recording", None, _recording_market(p, market))
    if p.name.endswith(".zip"):
        raise SchemaError(
            f"{p}: a zip whose name is not a Binance archive name "
            "(SYMBOL-<interval|aggTrades|trades|bookTicker|fundingRate|metrics>-YYYY-MM[-DD].zip)"
        )
    head = _first_line(p)
    if head.startswith("exchange,symbol,timestamp,local_timestamp"):
        dt = detect_data_type(p)
        return FileSpec(p, "tardis", dataset_of(dt), None, market or "usdm",
                        file_exchange(p), dt)  # fmt: skip
    if is_cdd_csv(p):
        iv = interval_from_name(p)
        if iv is None:
            raise SchemaError(f"{p}: a CryptoDataDownload file whose name gives no interval")
        return FileSpec(p, "cdd", f"klines_{iv}", None, _market_of_cdd(p, market))
    raise SchemaError(
        f"{p}: not a Binance archive file (by name), a Tardis CSV or a CryptoDataDownload "
        f"export (by header); first line: {head[:80]!r}"
    )


def _recording_market(path: Path, market: str | None) -> str:
    if market is not None:
        return market
    folders = [q.lower() for q in path.parent.parts]
    if "cm" in folders or "coinm" in folders:
        return "coinm"
    return _market_of(path, None)


def _market_of_cdd(path: Path, market: str | None) -> str:
    if market is not None:
        return market
    return "usdm" if "futures" in path.name.lower() else "spot"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_checksum(path: Path, sha: str) -> None:
    """A ``.CHECKSUM`` file beside a zip must give the zip's sha256 (the zip's member name and
    integrity are checked by the archive reader)."""
    checksum = path.with_name(path.name + ".CHECKSUM")
    if checksum.is_file():
        expected = checksum.read_text(encoding="utf-8", errors="replace").split()[:1]
        if expected != [sha]:
            raise ChecksumMismatch(f"{path}: sha256 {sha} differs from {checksum.name} {expected}")


def _read(spec: FileSpec, sha: str) -> pa.Table:
    if spec.kind == "binance":
        if spec.path.name.endswith(".zip"):
            _check_checksum(spec.path, sha)
        if spec.symbol is None:  # classify() always names the symbol of a Binance file
            raise SchemaError(f"{spec.path}: no symbol in the file name")
        member = _stem(spec.path.name) + ".csv" if spec.path.name.endswith(".zip") else None
        return read_archive_csv(spec.path, spec.dataset, spec.symbol, expected_member=member)
    if spec.kind == "tardis":
        return read_tardis_csv(spec.path, spec.data_type)
    table = read_cdd_csv(spec.path)
    table = table.select(KLINES.names)
    return table.set_column(0, "symbol", pc.replace_substring(table.column("symbol"), "/", ""))


def ingest_file(store: Store, spec: FileSpec) -> IngestItem:
    """Parse one classified file and merge it into ``store``.

    Raises:
        DataError: the file cannot be parsed or stored (the message names the file).
    """
    sha = _sha256(spec.path)
    if spec.kind == "hftbacktest":
        return _ingest_recording(store, spec, sha)
    table = _read(spec, sha)
    if table.num_rows == 0:
        raise SchemaError(f"{spec.path}: no data rows")
    rep = store.write(table, spec.dataset, exchange=spec.exchange, market=spec.market,
                      source=f"file:{spec.path.resolve()}", source_sha256=sha)  # fmt: skip
    return IngestItem(str(spec.path), spec.kind, spec.dataset, spec.market, table.num_rows,
                      rep.rows_added, len(rep.partitions), None,
                      _lacking(rep.partitions))  # fmt: skip


def _bars_the_store_lacks(store: Store, spec: FileSpec, trades: pa.Table) -> pa.Table:
    """1-minute klines built from a recording's trades (``data.bars_from_trades``) for the
    minutes the store has no exchange kline for: a recorded symbol gets bars on the grid of
    its book, and an exchange kline is never replaced by a derived one."""
    bars = klines_from_trades(trades, 60_000_000)
    if bars.num_rows == 0:
        return bars
    t = bars["open_time"].cast(pa.int64())
    have = store.read("klines_1m", spec.exchange, spec.market,
                      pc.unique(bars["symbol"]).to_pylist(),
                      int(pc.min(t).as_py()), int(pc.max(t).as_py()) + 1,
                      columns=["symbol", "open_time"])  # fmt: skip
    if have.num_rows == 0:
        return bars
    key = pc.binary_join_element_wise(bars["symbol"], pc.cast(t, pa.string()), "|")
    seen = pc.binary_join_element_wise(have["symbol"],
                                       pc.cast(have["open_time"].cast(pa.int64()), pa.string()),
                                       "|")  # fmt: skip
    return bars.filter(pc.invert(pc.is_in(key, value_set=seen.combine_chunks())))


def _lacking(infos: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """The ``missing`` entries of the written partitions whose completeness is not whole."""
    out = []
    for p in infos:
        c = p.completeness
        if c and not c.get("complete", True):
            out.append({"partition": f"{p.dataset}/{p.market}/{p.symbol}/{p.month}",
                        "symbol": p.symbol, "dataset": p.dataset, "month": p.month,
                        "unit": c["unit"], "missing": c["missing"],
                        "spans": c["spans"]})  # fmt: skip
    return tuple(out)


def _ingest_recording(store: Store, spec: FileSpec, sha: str) -> IngestItem:
    """Every non-empty table of an hftbacktest recording into its dataset."""
    rec = read_hftbacktest(spec.path)
    read = added = parts = 0
    written = []
    lacking: tuple[dict[str, Any], ...] = ()
    for name in _RECORDING_TABLES:
        table = getattr(rec, name)
        if table.num_rows == 0:
            continue
        rep = store.write(table, name, exchange=spec.exchange, market=spec.market,
                          source=f"file:{spec.path.resolve()}", source_sha256=sha)  # fmt: skip
        lacking += _lacking(rep.partitions)
        read, added, parts = (
            read + table.num_rows,
            added + rep.rows_added,
            parts + len(rep.partitions),
        )
        written.append(name)
    if not written:
        raise SchemaError(f"{spec.path}: the recording holds no depth, trade or ticker rows")
    bars = _bars_the_store_lacks(store, spec, rec.trades)
    if bars.num_rows:
        src = f"trades:file:{spec.path.resolve()}"
        rep = store.write(bars, "klines_1m", exchange=spec.exchange, market=spec.market,
                          source=src, source_sha256=sha)  # fmt: skip
        added += rep.rows_added
        parts += len(rep.partitions)
        written.append("klines_1m")
    return IngestItem(str(spec.path), spec.kind, "+".join(written), spec.market, read, added,
                      parts, None, lacking)  # fmt: skip


def ingest(
    store: Store | str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    *,
    market: str | None = None,
    progress: Callable[[int, int, IngestItem], None] | None = None,
) -> IngestReport:
    """Ingest files and folders into ``store``; every file is tried, failures are reported.

    Args:
        store: a Store or its root folder.
        paths: files and/or folders (searched recursively).
        market: "spot" or "usdm" for every file; None tells it from each file's folders.
        progress: called after each file with (files done, files total, its outcome).

    Returns:
        IngestReport (``ok`` False when any file failed or no file was found).

    Raises:
        DataError: a path that does not exist (before anything is written).
    """
    st = open_store(store)
    files = iter_files(paths)
    report = IngestReport()
    for i, path in enumerate(files, 1):
        try:
            item = ingest_file(st, classify(path, market))
        except (DataError, OSError, ValueError) as exc:
            item = IngestItem(str(path), error=f"{type(exc).__name__}: {exc}")
        report.items.append(item)
        if progress is not None:
            progress(i, len(files), item)
    return report
