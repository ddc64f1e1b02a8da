"""``alphaforge ingest PATH...``: files on disk (Binance archive, Tardis, CryptoDataDownload)
into the store.

A progress bar on stderr (files done / total, rows); a summary table or ``--json`` on stdout.
Exit code 0 when every file went in and every partition it wrote is whole, 1 when any file
failed (each named with its reason; the others are stored), 2 for bad arguments (e.g. a path
that does not exist), 3 when every file went in but a partition lacks bars or agg-trade ids
inside its bounds (each hole listed: the source's own gaps, or files still to ingest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alphaforge.api_data import ingest
from alphaforge.cli.render import table_text, to_json
from alphaforge.data.errors import DataError
from alphaforge.data.ingest import IngestItem, IngestReport


def render_ingest(rep: IngestReport, store: str) -> str:
    """Per-file rows and totals as a plain-text table."""
    rows = [(Path(i.path).name, i.dataset or "-", i.market or "-", i.rows_read, i.rows_added,
             i.rows_merged, i.error or "ok") for i in rep.items]  # fmt: skip
    d = rep.to_dict()
    text = table_text(f"ingest into {store}", ["file", "dataset", "market", "rows read",
                      "rows added", "merged", "status"], rows, width=160)  # fmt: skip
    text += (f"{d['files']} file(s), {d['files_failed']} failed; {d['rows_read']:,} rows read, "
             f"{d['rows_added']:,} new rows stored\n")  # fmt: skip
    for m in rep.missing:
        spans = ", ".join(f"{_when(a, m['unit'])}..{_when(b, m['unit'])}" for a, b in m["spans"])
        text += f"INCOMPLETE {m['partition']}: {m['missing']:,} {m['unit']} missing ({spans})\n"
    return text


def _when(v: int, unit: str) -> str:
    if unit != "bars":
        return str(v)
    import datetime as dt

    return dt.datetime.fromtimestamp(v / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    store: Annotated[
        str,
        typer.Option(
            "--store", envvar="ALPHAFORGE_STORE", help="Store root: a folder or s3://bucket/prefix."
        ),
    ] = "store",
    market: Annotated[
        str | None, typer.Option(help="spot or usdm for every file (default: from the folders).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Ingest Binance archive files (.zip/.csv/.csv.gz), Tardis CSVs and CryptoDataDownload
    exports from disk into the store; every file is tried, failures are named."""
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    try:
        with Progress(*columns, console=err, transient=as_json, disable=as_json) as bar:
            task = bar.add_task("ingesting", total=None)

            def on_file(done: int, total: int, item: IngestItem) -> None:
                state = "failed" if item.error else f"{item.rows_read:,} rows"
                bar.update(task, completed=done, total=total,
                           description=f"{Path(item.path).name}: {state}")  # fmt: skip

            rep = ingest(store, *paths, market=market, progress=on_file)
    except DataError as exc:
        if as_json:
            typer.echo(to_json({"ok": False, "error": str(exc)}))
        else:
            err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(code=2) from None
    typer.echo(to_json(rep.to_dict()) if as_json else render_ingest(rep, store))
    if not rep.ok:
        if not as_json:
            for item in rep.failed:
                err.print(f"[red]failed:[/red] {item.path}: {item.error}", soft_wrap=True,
                          highlight=False)  # fmt: skip
            if not rep.items:
                err.print("[red]error:[/red] no data files found", highlight=False)
        raise typer.Exit(code=1)
    if not rep.complete:
        raise typer.Exit(code=3)


def register(app: typer.Typer) -> None:
    """Add ``alphaforge ingest`` to ``app``."""
    app.command("ingest")(ingest_cmd)
