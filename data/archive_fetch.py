"""Binance bulk archive (data.binance.vision): file layout, planning, verified download.

Layout (base URL configurable)::

    data/{spot|futures/um}/{monthly|daily}/<kind>[/<SYMBOL>[/<interval>]]/<file>.zip
    ...<file>.zip.CHECKSUM      "<sha256 hex>  <file>.zip"

with ``<kind>`` one of ``klines``, ``markPriceKlines``, ``indexPriceKlines`` (USD-M),
``aggTrades``, ``trades``, ``fundingRate`` (USD-M, monthly), ``bookTicker`` (USD-M). File names are
``<SYMBOL>-<interval>-<YYYY-MM[-DD]>.zip`` for klines and ``<SYMBOL>-<kind>-<YYYY-MM[-DD]>.zip``
otherwise. A zip is downloaded to a temporary file, its sha256 compared with ``.CHECKSUM``
(a mismatch raises :class:`~data.errors.ChecksumMismatch` before anything is parsed), and its CSV
is streamed out of the zip by :func:`data.archive.read_archive_csv`.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import pyarrow as pa

from alphaforge.data.archive import base_dataset, read_archive_csv
from alphaforge.data.errors import ChecksumMismatch, RequestRejected, SchemaError
from alphaforge.data.http import HttpClient, RateLimitState

__all__ = ["ARCHIVE_BASE_URL", "ArchiveClient", "ArchiveFile", "plan_archive_files"]

ARCHIVE_BASE_URL: Final = "https://data.binance.vision"
ARCHIVE_KIND: Final = {
    "klines": "klines",
    "mark_klines": "markPriceKlines",
    "index_klines": "indexPriceKlines",
    "agg_trades": "aggTrades",
    "trades": "trades",
    "funding": "fundingRate",
    "book_ticker": "bookTicker",
    "metrics": "metrics",
}
_MARKET_DIR: Final = {"spot": "spot", "usdm": "futures/um"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _us(d: date) -> int:
    return (datetime(d.year, d.month, d.day, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _date_of_us(t_us: int) -> date:
    return (_EPOCH + timedelta(microseconds=t_us)).date()


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One archive zip: which data it holds and the time span it covers (µs, half-open)."""

    market: str
    dataset: str  # base dataset: klines, mark_klines, agg_trades, funding, ...
    symbol: str
    interval: str | None
    period: str  # "monthly" | "daily"
    day: date  # first day covered

    @property
    def label(self) -> str:
        return self.day.strftime("%Y-%m" if self.period == "monthly" else "%Y-%m-%d")

    @property
    def name(self) -> str:
        kind = ARCHIVE_KIND[self.dataset]
        middle = self.interval if kind.lower().endswith("klines") else kind
        return f"{self.symbol}-{middle}-{self.label}.zip"

    @property
    def rel_path(self) -> str:
        kind = ARCHIVE_KIND[self.dataset]
        sub = f"{self.symbol}/{self.interval}" if kind.lower().endswith("klines") else self.symbol
        return f"data/{_MARKET_DIR[self.market]}/{self.period}/{kind}/{sub}/{self.name}"

    @property
    def start_us(self) -> int:
        return _us(self.day)

    @property
    def end_us(self) -> int:
        end = _next_month(self.day) if self.period == "monthly" else self.day + timedelta(days=1)
        return _us(end)


def plan_archive_files(
    market: str,
    dataset: str,
    symbol: str,
    interval: str | None,
    start_us: int,
    end_us: int,
    now_us: int,
) -> list[ArchiveFile]:
    """Whole monthly files inside ``[start_us, end_us)`` for finished months, then daily files
    for the remaining whole days that ended before today (UTC). Partial days are left to REST.

    Raises:
        SchemaError: the market or dataset has no archive.
    """
    base = base_dataset(dataset)
    if market not in _MARKET_DIR or base not in ARCHIVE_KIND:
        raise SchemaError(f"no Binance archive for market {market!r} dataset {dataset!r}")
    if market == "spot" and base in ("mark_klines", "index_klines", "funding", "book_ticker",
                                     "metrics"):  # fmt: skip
        raise SchemaError(f"the Binance spot archive has no {base}")
    if base.endswith("klines") and not interval:
        raise SchemaError(f"{base} archive files need an interval (e.g. 1m)")
    this_month = _date_of_us(now_us).replace(day=1)
    today = _date_of_us(now_us)
    files: list[ArchiveFile] = []
    day = _date_of_us(start_us)
    if _us(day) < start_us:
        day += timedelta(days=1)
    iv = interval if base.endswith("klines") else None
    while _us(day) < end_us:
        nxt_month = _next_month(day)
        monthly_ok = base != "metrics"  # metrics are published daily only
        if monthly_ok and day.day == 1 and _us(nxt_month) <= end_us and nxt_month <= this_month:
            files.append(ArchiveFile(market, base, symbol, iv, "monthly", day))
            day = nxt_month
            continue
        nxt = day + timedelta(days=1)
        if _us(nxt) > end_us or nxt > today:
            break
        if base != "funding":  # fundingRate is published monthly only
            files.append(ArchiveFile(market, base, symbol, iv, "daily", day))
        day = nxt
    return files


@dataclass(frozen=True, slots=True)
class Fetched:
    """A downloaded, verified and parsed archive file."""

    file: ArchiveFile
    url: str
    sha256: str
    table: pa.Table
    size_bytes: int


class ArchiveClient:
    """Downloads archive zips and their checksums through one :class:`~data.http.HttpClient`.

    Args:
        base_url: archive host (``https://data.binance.vision`` by default).
        http: a ready client; built from ``base_url`` and ``http_kw`` when None.
    """

    def __init__(
        self, base_url: str = ARCHIVE_BASE_URL, http: HttpClient | None = None, **http_kw: Any
    ) -> None:
        self.http = http or HttpClient(base_url, limiter=None, **http_kw)

    def state(self) -> RateLimitState:
        return self.http.state()

    def url(self, f: ArchiveFile) -> str:
        return self.http.url("/" + f.rel_path)

    def expected_sha256(self, f: ArchiveFile) -> str | None:
        """The sha256 published in ``<file>.CHECKSUM``, or None when the file does not exist.

        Raises:
            ChecksumMismatch: the CHECKSUM file is not ``<64 hex>  <name>``.
        """
        buf = io.BytesIO()
        try:
            self.http.download("/" + f.rel_path + ".CHECKSUM", buf)
        except RequestRejected as exc:
            if exc.status in (403, 404):
                return None
            raise
        parts = buf.getvalue().decode("ascii", "replace").split()
        if not parts or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0]):
            raise ChecksumMismatch(f"{f.name}.CHECKSUM: expected '<sha256>  {f.name}', got "
                                   f"{buf.getvalue()[:100]!r}")  # fmt: skip
        return parts[0]

    def fetch(self, f: ArchiveFile, expected_sha256: str) -> Fetched | None:
        """Download ``f``, verify it against ``expected_sha256`` and parse it.

        Returns None when the zip does not exist (HTTP 404).

        Raises:
            ChecksumMismatch: the zip's sha256 differs; the message names the file.
        """
        with tempfile.TemporaryFile(prefix="alphaforge-archive-") as tmp:
            try:
                got = self.http.download("/" + f.rel_path, tmp)
            except RequestRejected as exc:
                if exc.status in (403, 404):
                    return None
                raise
            if got != expected_sha256:
                raise ChecksumMismatch(
                    f"{f.name}: sha256 {got} does not match {expected_sha256} published in "
                    f"{f.name}.CHECKSUM ({self.url(f)}); nothing was written"
                )
            size = tmp.tell()
            tmp.seek(0)
            table = read_archive_csv(
                tmp,
                f.dataset,
                f.symbol,
                name=f.name,
                expected_member=f.name.removesuffix(".zip") + ".csv",
            )
        return Fetched(f, self.url(f), got, table, size)
