"""Pull Binance history into the store: bulk archive for whole past months/days, REST for the rest.

Resumable and safe to kill:

- an archive file whose sha256 (from its ``.CHECKSUM``) is already recorded in the store is not
  downloaded again; a checksum mismatch raises before anything of that file is written;
- a REST range restarts after the last row stored inside it (last time + 1 µs for bars and
  funding, last ``agg_trade_id`` + 1 for aggregate trades);
- every store write replaces whole partitions atomically, so a failed or killed pull leaves each
  partition as before or complete, and the next pull finishes the job.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas
from alphaforge.data.archive import base_dataset
from alphaforge.data.archive_fetch import ArchiveClient, ArchiveFile, Fetched, plan_archive_files
from alphaforge.data.binance_rest import BinanceRest
from alphaforge.data.errors import SchemaError
from alphaforge.data.http import RateLimitState

__all__ = ["PullProgress", "PullReport", "dataset_partition", "parse_time_us", "pull"]

SOURCES = ("archive", "rest", "auto")
REST_DATASETS = ("klines", "mark_klines", "index_klines", "agg_trades", "funding")


class StoreLike(Protocol):
    """The part of :class:`data.store.Store` a pull needs."""

    def write(
        self,
        table: pa.Table,
        dataset: str,
        exchange: str = ...,
        market: str = ...,
        source: str = ...,
        source_sha256: str | None = ...,
    ) -> Any: ...

    def read(
        self,
        dataset: str,
        exchange: str = ...,
        market: str = ...,
        symbols: Sequence[str] | None = ...,
        start_us: int | None = ...,
        end_us: int | None = ...,
        columns: Sequence[str] | None = ...,
    ) -> pa.Table: ...

    def has_source(self, source_or_sha256: str) -> bool: ...

    def holds_source(self, sha256: str, dataset: str, exchange: str, market: str, symbol: str,
                     month: str) -> bool: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One progress event: what was just done and the running totals."""

    symbol: str
    stage: str  # "archive" | "archive-skip" | "archive-missing" | "rest" | "done"
    detail: str
    rows: int
    bytes: int
    rate: RateLimitState | None
    files_done: int
    files_total: int


@dataclass
class PullReport:
    """Totals of one :func:`pull` (``to_dict`` for ``--json``)."""

    dataset: str
    market: str
    source: str
    symbols: list[str]
    start_us: int
    end_us: int
    rows_fetched: int = 0
    rows_added: int = 0
    files_downloaded: int = 0
    files_skipped: int = 0
    files_missing: list[str] = field(default_factory=list)
    gaps: list[tuple[str, int, int]] = field(default_factory=list)
    missing: list[tuple[str, int, int]] = field(default_factory=list)
    rest_pages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rate: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gaps"] = [{"symbol": s, "start_us": a, "end_us": b} for s, a, b in self.gaps]
        d["missing"] = [{"symbol": s, "start_us": a, "end_us": b} for s, a, b in self.missing]
        d["complete"] = not self.missing
        return d


def parse_time_us(value: str | int | datetime) -> int:
    """``2024-01-01`` / ISO 8601 (UTC unless an offset is given) / epoch µs -> epoch µs."""
    if isinstance(value, int):
        return value
    dt = value if isinstance(value, datetime) else None
    if dt is None:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise SchemaError(
                f"cannot read time {value!r}; expected YYYY-MM-DD, ISO 8601 or epoch µs"
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def missing_bar_spans(lo: int, hi: int, step: int, stored_us: Any) -> list[tuple[int, int]]:
    """Half-open spans of the bar grid in [lo, hi) (bars opening at multiples of ``step``) with
    no stored bar: what a pull must still fetch. Stored bars need not be a prefix of the range
    (an earlier-starting pull, months written out of order), so every hole is found.

    Args:
        lo, hi: the range, µs. step: bar length, µs. stored_us: open times already stored.
    """
    first = -(-lo // step) * step
    grid = np.arange(first, hi, step, dtype=np.int64)
    if grid.size == 0:
        return []
    have = np.isin(grid, np.asarray(stored_us, dtype=np.int64))
    edges = np.flatnonzero(np.diff(np.concatenate([[1], have.astype(np.int8), [1]])))
    return [(int(grid[a]), int(grid[b - 1]) + step) for a, b in zip(edges[::2], edges[1::2],
                                                                    strict=True)]  # fmt: skip


def _missing_bars(store: StoreLike, report: PullReport, part: str, exchange: str, symbol: str,
                  interval: str | None, now_us: int) -> list[tuple[str, int, int]]:  # fmt: skip
    """The completeness ledger of a pull: for klines every span of closed bars in the requested
    range that the store still lacks after it (µs, half-open); for aggTrades every hole in the
    id sequence (ids, half-open); empty for other datasets."""
    if part == "agg_trades":
        done = store.read(part, exchange, report.market, [symbol], report.start_us,
                          report.end_us, columns=["agg_trade_id"])  # fmt: skip
        ids = np.unique(np.asarray(done.column(0).to_numpy(), dtype=np.int64))
        holes = np.flatnonzero(np.diff(ids) > 1)  # ids are consecutive: a jump is a loss
        return [(symbol, int(ids[i] + 1), int(ids[i + 1])) for i in holes]  # id spans
    if not part.startswith(("klines_", "mark_klines_", "index_klines_")) or interval is None:
        return []
    step = schemas.interval_us(interval)
    hi = min(report.end_us, now_us // step * step)  # the bar still open is not expected
    if hi <= report.start_us:
        return []
    done = store.read(part, exchange, report.market, [symbol], report.start_us, hi,
                      columns=["open_time"])  # fmt: skip
    stored = np.asarray(done.column(0).cast(pa.int64()).to_numpy(), dtype=np.int64)
    return [(symbol, a, b) for a, b in missing_bar_spans(report.start_us, hi, step, stored)]


def dataset_partition(dataset: str, interval: str | None) -> str:
    """Store partition value: ``klines`` + ``1m`` -> ``klines_1m``; others unchanged."""
    base = base_dataset(dataset)
    if base.endswith("klines"):
        if dataset != base:
            return dataset
        if not interval:
            raise SchemaError(f"{base} needs an interval (e.g. --interval 1m)")
        schemas.interval_us(interval)
        return f"{base}_{interval}"
    return base


def _spans_minus(lo: int, hi: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, cur = [], lo
    for a, b in sorted(covered):
        if b <= cur or a >= hi:
            continue
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if cur < hi:
        out.append((cur, hi))
    return out


class _Pull:
    def __init__(self, store: StoreLike, report: PullReport, base: str, part: str,
                 interval: str | None, exchange: str, rest: BinanceRest | None,
                 archive: ArchiveClient | None, progress: Callable[[PullProgress], None] | None,
                 now_us: int, flush_rows: int, workers: int) -> None:  # fmt: skip
        self.store, self.r, self.base, self.part = store, report, base, part
        self.interval, self.exchange = interval, exchange
        self.rest, self.archive, self.progress = rest, archive, progress
        self.now_us, self.flush_rows, self.workers = now_us, flush_rows, max(1, workers)
        self.files_done = self.files_total = 0

    def _bytes(self) -> int:
        n = self.rest.http.bytes_received if self.rest else 0
        return n + (self.archive.http.bytes_received if self.archive else 0)

    def emit(self, symbol: str, stage: str, detail: str) -> None:
        self.r.bytes = self._bytes()
        if self.progress is not None:
            rate = self.rest.state() if self.rest is not None else None
            self.progress(PullProgress(symbol, stage, detail, self.r.rows_fetched, self.r.bytes,
                                       rate, self.files_done, self.files_total))  # fmt: skip

    def write(self, table: pa.Table, source: str, sha: str | None) -> None:
        rep = self.store.write(table, dataset=self.part, exchange=self.exchange,
                               market=self.r.market, source=source, source_sha256=sha)  # fmt: skip
        self.r.rows_fetched += table.num_rows
        self.r.rows_added += int(getattr(rep, "rows_added", 0))

    # ------------------------------------------------------------------ archive
    def archive_phase(self, symbol: str) -> list[tuple[int, int]]:
        """Download (up to ``workers`` files ahead, in threads) and write (in plan order)."""
        assert self.archive is not None
        files = plan_archive_files(self.r.market, self.base, symbol, self.interval,
                                   self.r.start_us, self.r.end_us, self.now_us)  # fmt: skip
        self.files_total += len(files)
        covered = []
        pending = iter(files)
        window: deque[tuple[ArchiveFile, Future[Fetched | str]]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="archive") as pool:
            try:
                for f in itertools.islice(pending, self.workers):
                    window.append((f, pool.submit(self._download, f)))
                while window:
                    f, fut = window.popleft()
                    got = fut.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        window.append((nxt, pool.submit(self._download, nxt)))
                    if self._store_file(symbol, f, got):
                        covered.append((f.start_us, f.end_us))
                    self.files_done += 1
            finally:
                for _, fut in window:
                    fut.cancel()
        return covered

    def _download(self, f: ArchiveFile) -> Fetched | str:
        """(worker thread) ``"missing"``, ``"stored"`` (sha already in the store) or the file."""
        assert self.archive is not None
        sha = self.archive.expected_sha256(f)
        if sha is None:
            return "missing"
        month = f.day.strftime("%Y-%m")
        if self.store.holds_source(sha, self.part, self.exchange, self.r.market, f.symbol, month):
            return "stored"  # this very file is in the store, intact
        got = self.archive.fetch(f, sha)
        return "missing" if got is None else got

    def _store_file(self, symbol: str, f: ArchiveFile, got: Fetched | str) -> bool:
        if got == "missing":
            self.r.files_missing.append(f.rel_path)
            self.emit(symbol, "archive-missing", f.name)
            return False
        if got == "stored":
            self.r.files_skipped += 1
            self.emit(symbol, "archive-skip", f.name)
            return True
        assert isinstance(got, Fetched)
        self.write(got.table, f"archive:{got.url}", got.sha256)
        self.r.files_downloaded += 1
        self.emit(symbol, "archive", f.name)
        return True

    # ------------------------------------------------------------------ REST
    def rest_phase(self, symbol: str, segments: list[tuple[int, int]]) -> None:
        assert self.rest is not None
        for lo, hi in segments:
            buf: list[pa.Table] = []
            for page in self._rest_pages(symbol, lo, hi):
                self.r.rest_pages += 1
                buf.append(page)
                if sum(t.num_rows for t in buf) >= self.flush_rows:
                    self._flush(symbol, buf)
                    buf = []
                self.emit(symbol, "rest", f"{page.num_rows} rows")
            self._flush(symbol, buf)

    def _rest_pages(self, symbol: str, lo: int, hi: int) -> Iterator[pa.Table]:
        assert self.rest is not None
        tcol = schemas.time_column(self.base)
        if self.base == "agg_trades":
            return self.rest.iter_agg_trades(symbol, lo, hi, self._agg_resume_id(symbol, lo, hi))
        if self.base == "funding":  # irregular times: holes cannot be told; the merge dedupes
            return self.rest.iter_funding(symbol, lo, hi)
        assert self.interval is not None
        done = self.store.read(self.part, self.exchange, self.r.market, [symbol], lo, hi,
                               columns=[tcol])  # fmt: skip
        stored = np.asarray(done.column(0).cast(pa.int64()).to_numpy(), dtype=np.int64)
        spans = missing_bar_spans(lo, hi, schemas.interval_us(self.interval), stored)
        rest, kind, iv = self.rest, self.base, self.interval
        return (page for a, b in spans for page in rest.iter_klines(symbol, iv, a, b, kind=kind))

    def _agg_resume_id(self, symbol: str, lo: int, hi: int) -> int | None:
        """Where an aggTrades pull of [lo, hi) resumes: the first id the store lacks. Stored ids
        need not be a prefix of the range: before any, the range's own first id is asked for
        (None = find it by time); inside, the first hole of the id sequence."""
        assert self.rest is not None
        done = self.store.read(self.part, self.exchange, self.r.market, [symbol], lo, hi,
                               columns=["agg_trade_id"])  # fmt: skip
        ids = np.unique(np.asarray(done.column(0).to_numpy(), dtype=np.int64))
        if ids.size == 0:
            return None
        first = self.rest.first_agg_id(symbol, lo, hi)
        if first is not None and first < ids[0]:
            return first  # the front of the range is missing (an earlier-starting pull)
        holes = np.flatnonzero(np.diff(ids) > 1)
        return int(ids[holes[0]] + 1) if holes.size else int(ids[-1] + 1)

    def _flush(self, symbol: str, buf: list[pa.Table]) -> None:
        if not buf:
            return
        t = pa.concat_tables(buf)
        tcol = schemas.time_column(self.base)
        ts = t.column(tcol).cast(pa.int64())
        lo, hi = int(pc.min(ts).as_py()), int(pc.max(ts).as_py())
        url = self.rest.http.base_url if self.rest else ""
        self.write(t, f"rest:{url}/{self.part}?symbol={symbol}&start_us={lo}&end_us={hi}", None)


def pull(
    store: StoreLike,
    source: str = "auto",
    market: str = "usdm",
    dataset: str = "klines",
    symbols: Sequence[str] = (),
    interval: str | None = "1m",
    start: str | int | datetime = "2024-01-01",
    end: str | int | datetime | None = None,
    progress: Callable[[PullProgress], None] | None = None,
    *,
    exchange: str = "binance",
    rest: BinanceRest | None = None,
    archive: ArchiveClient | None = None,
    base_url: str | None = None,
    archive_base_url: str | None = None,
    clock: Callable[[], float] = time.time,
    flush_rows: int = 200_000,
    archive_workers: int = 3,
) -> PullReport:
    """Pull ``dataset`` of ``symbols`` over ``[start, end)`` into ``store``.

    Args:
        store: a :class:`data.store.Store`.
        source: ``archive`` (bulk files only), ``rest`` (REST only) or ``auto`` (archive for
            whole past months/days, REST for the recent tail and for files the archive lacks).
        market: ``spot`` or ``usdm``.
        dataset: ``klines``, ``mark_klines``, ``index_klines``, ``agg_trades``, ``funding``,
            ``trades``, ``book_ticker`` or ``metrics`` (the last three from the archive only;
            metrics: USD-M open interest and long/short ratios, daily files).
        symbols: exchange symbols.
        interval: kline interval (``1m``...); ignored for other datasets.
        start, end: ``YYYY-MM-DD``/ISO (UTC) or epoch µs; ``end`` defaults to now.
        progress: called after every archive file and REST page.
        rest, archive: ready clients (else built from ``base_url`` / ``archive_base_url``).
        clock: epoch seconds (which months/days are finished, which bars are closed).
        flush_rows: REST rows buffered before a store write.
        archive_workers: archive files downloaded and parsed ahead, in threads (each holds one
            parsed file in memory until it is written, in plan order).

    Returns:
        PullReport with rows, files, bytes, gaps, the bars still missing after the pull
        (``missing``, kline datasets: ``complete`` is False when any) and the final rate-limit
        state.

    Raises:
        SchemaError: unknown source/dataset/market combination or bad times.
        ChecksumMismatch, UnknownSymbol, RateLimited, IPBanned, SourceError: from the sources.
    """
    if source not in SOURCES:
        raise SchemaError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if not symbols:
        raise SchemaError("no symbols given")
    base = base_dataset(dataset)
    part = dataset_partition(dataset, interval)
    if source == "rest" and base not in REST_DATASETS:
        raise SchemaError(f"Binance REST has no history of {base}; use --source archive")
    now_us = int(clock() * 1_000_000)
    start_us = parse_time_us(start)
    end_us = min(parse_time_us(end), now_us) if end is not None else now_us
    if end_us <= start_us:
        raise SchemaError(f"empty time range: start {start} is not before end {end}")
    t0 = time.perf_counter()
    use_rest = source != "archive" and base in REST_DATASETS
    if use_rest and rest is None:
        rest = BinanceRest(market, base_url=base_url, clock=clock)
    if source != "rest" and archive is None:
        archive = ArchiveClient(archive_base_url) if archive_base_url else ArchiveClient()
    report = PullReport(part, market, source, list(symbols), start_us, end_us)
    job = _Pull(store, report, base, part, interval, exchange, rest if use_rest else None,
                archive if source != "rest" else None, progress, now_us, flush_rows,
                archive_workers)  # fmt: skip
    for symbol in symbols:
        covered = job.archive_phase(symbol) if source != "rest" else []
        segments = _spans_minus(start_us, end_us, covered)
        if use_rest:
            job.rest_phase(symbol, segments)
        else:
            report.gaps.extend((symbol, a, b) for a, b in segments)
        report.missing.extend(_missing_bars(store, report, part, exchange, symbol, interval,
                                            now_us))  # fmt: skip
        job.emit(symbol, "done", symbol)
    report.seconds = time.perf_counter() - t0
    report.bytes = job._bytes()
    if rest is not None and use_rest:
        report.rate = asdict(rest.state())
    return report
