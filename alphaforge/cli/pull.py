"""``alphaforge pull``: Binance history (bulk archive + REST), or Tardis.dev files, into the
parquet store.

Shows a rich progress bar (files, rows, bytes, request weight used / limit) and prints a JSON
summary with ``--json``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alphaforge.api_data import pull_tardis
from alphaforge.cli.ingest import render_ingest
from alphaforge.cli.render import fail
from alphaforge.data.archive_fetch import ARCHIVE_BASE_URL, ArchiveClient
from alphaforge.data.binance_rest import BinanceRest
from alphaforge.data.errors import DataError, IPBanned
from alphaforge.data.http import RetryPolicy
from alphaforge.data.pull import PullProgress, PullReport, pull
from alphaforge.data.store_open import open_store


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _describe(ev: PullProgress) -> str:
    rate = ""
    if ev.rate is not None and ev.rate.limit:
        rate = f" · weight {ev.rate.used_weight}/{ev.rate.limit}"
        if ev.rate.retries:
            rate += f" · retries {ev.rate.retries}"
    return f"{ev.symbol} {ev.stage} · {ev.rows:,} rows · {_fmt_bytes(ev.bytes)}{rate}"


def _summary_table(rep: PullReport) -> str:
    lines = [
        f"pulled {rep.dataset} ({rep.market}, source {rep.source}) for {', '.join(rep.symbols)}",
        f"  rows fetched {rep.rows_fetched:,}, new rows stored {rep.rows_added:,}",
        f"  archive files downloaded {rep.files_downloaded}, already stored {rep.files_skipped}, "
        f"missing {len(rep.files_missing)}; REST pages {rep.rest_pages}",
        f"  {_fmt_bytes(rep.bytes)} in {rep.seconds:.1f} s",
    ]
    if rep.rate:
        lines.append(f"  request weight {rep.rate['used_weight']}/{rep.rate['limit']} "
                     f"(retries {rep.rate['retries']})")  # fmt: skip
    if rep.gaps:
        lines.append(f"  {len(rep.gaps)} range(s) not in the archive (use --source auto for REST)")
    for sym, a, b in rep.missing:
        if rep.dataset == "agg_trades":
            lines.append(f"  MISSING {sym} aggTrade ids {a} .. {b - 1} (the next pull asks again)")
        else:
            lines.append(f"  MISSING {sym} bars {_iso(a)} .. {_iso(b)} (not served; the "
                         "exchange may have none there, e.g. maintenance; the next pull asks "
                         "again)")  # fmt: skip
    return "\n".join(lines)


_DATASETS = (
    "klines, mark_klines, index_klines, agg_trades, funding, trades, book_ticker, "
    "metrics (USD-M open interest, long/short ratios)"
)
SymbolsOpt = Annotated[str, typer.Option("--symbols", help="Comma-separated: BTCUSDT,ETHUSDT.")]
StartOpt = Annotated[str, typer.Option("--start", help="UTC date/time, e.g. 2024-01-01.")]
EndOpt = Annotated[str | None, typer.Option("--end", help="UTC date/time (exclusive); now.")]
SourceOpt = Annotated[str, typer.Option("--source", help="archive, rest, auto or tardis.")]
ExchangeOpt = Annotated[
    str, typer.Option("--exchange", help="Tardis exchange id (--source tardis).")
]
DownloadOpt = Annotated[
    Path | None, typer.Option("--download-dir", help="Tardis files (default <store>/_downloads).")
]
MarketOpt = Annotated[str, typer.Option("--market", help="spot or usdm.")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help=_DATASETS)]
IntervalOpt = Annotated[str, typer.Option("--interval", help="Kline interval (1m, 1h...).")]
StoreOpt = Annotated[
    str,
    typer.Option(
        "--store", envvar="ALPHAFORGE_STORE", help="Store root: a folder or s3://bucket/prefix."
    ),
]
BaseOpt = Annotated[str | None, typer.Option("--base-url", help="REST base URL override.")]
ArchiveOpt = Annotated[str, typer.Option("--archive-base-url", help="Bulk archive base URL.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Read timeout per request (s).")]
RetriesOpt = Annotated[int, typer.Option("--retries", help="Retries per request.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary.")]


def pull_cmd(
    symbols: SymbolsOpt,
    start: StartOpt,
    end: EndOpt = None,
    source: SourceOpt = "auto",
    market: MarketOpt = "usdm",
    dataset: DatasetOpt = "klines",
    interval: IntervalOpt = "1m",
    store: StoreOpt = "store",
    base_url: BaseOpt = None,
    archive_base_url: ArchiveOpt = ARCHIVE_BASE_URL,
    timeout: TimeoutOpt = 30.0,
    retries: RetriesOpt = 5,
    exchange: ExchangeOpt = "binance-futures",
    download_dir: DownloadOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pull Binance history into the store: archive for past months/days, REST for the tail;
    or, with --source tardis, Tardis.dev CSV files (--dataset trades,quotes,... as Tardis data
    types; key from TARDIS_API_KEY) downloaded and ingested."""
    syms = [s.strip().upper() for s in symbols.split(",") if s.strip()]
    if source == "tardis":
        _pull_tardis(store, exchange, dataset, syms, start, end, market, download_dir,
                     base_url, as_json)  # fmt: skip
        return
    kw: dict[str, Any] = {"timeout_s": (10.0, timeout), "retry": RetryPolicy(max_retries=retries)}
    try:
        rest = BinanceRest(market, base_url=base_url, **kw)
        archive = ArchiveClient(archive_base_url, **kw)
        args: dict[str, Any] = {
            "store": open_store(store), "source": source, "market": market, "dataset": dataset,
            "symbols": syms, "interval": interval, "start": start, "end": end,
            "rest": rest, "archive": archive,
        }  # fmt: skip
        rep = pull(**args) if as_json else _pull_with_bar(args)
    except IPBanned as exc:
        raise fail(f"stopped: {exc}", as_json, code=3) from None
    except (DataError, KeyError) as exc:
        raise fail(exc, as_json) from None
    if as_json:
        sys.stdout.write(json.dumps(rep.to_dict(), sort_keys=True) + "\n")
    else:
        Console().print(_summary_table(rep))
    if rep.missing:  # the pull could not get everything asked: say so in the exit code
        raise typer.Exit(code=1)


def _iso(t_us: int) -> str:
    return datetime.fromtimestamp(t_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _pull_tardis(store: str, exchange: str, dataset: str, syms: list[str], start: str,
                 end: str | None, market: str, download_dir: Path | None, base_url: str | None,
                 as_json: bool) -> None:  # fmt: skip
    err = Console(stderr=True)
    types = [d.strip() for d in dataset.split(",") if d.strip()]
    kw: dict[str, Any] = {"base_url": base_url} if base_url else {}
    try:
        rep = pull_tardis(store, exchange, types, syms, start, end, market=market,
                          download_dir=download_dir, **kw)  # fmt: skip
    except (DataError, ValueError) as exc:
        if as_json:
            sys.stdout.write(json.dumps({"ok": False, "error": str(exc)}) + "\n")
        else:
            err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(code=2) from None
    if as_json:
        sys.stdout.write(json.dumps(rep.to_dict(), sort_keys=True) + "\n")
    else:
        Console().print(render_ingest(rep, store))
    if not rep.ok:
        raise typer.Exit(code=1)


def _pull_with_bar(args: dict[str, Any]) -> PullReport:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("starting", total=None)

        def on_progress(ev: PullProgress) -> None:
            total = ev.files_total or None
            bar.update(task, description=_describe(ev), completed=ev.files_done, total=total)

        return pull(**args, progress=on_progress)


def register(app: typer.Typer) -> None:
    """Add ``alphaforge pull`` to ``app``."""
    app.command("pull")(pull_cmd)
