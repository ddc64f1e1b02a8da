"""``alphaforge validate``: quality reports for files or the store, with pipeline exit codes.

Registered by ``engine/cli.py`` with ``register(app)``. Exit codes: 0 when no check at or above
``--fail-on`` found anything, 1 when one did, 2 on unusable input (unreadable file, unknown
dataset). ``--reconcile MODE`` runs the reconciliation checks instead (`data.cli_reconcile`).
``--repair OUT`` (klines only) writes a forward-filled copy with a ``repaired`` mask
column to OUT (parquet) and prints what it did; validation itself never changes data.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.console import Console

from alphaforge.cli.reconcile import reconcile_results
from alphaforge.cli.render import fail
from alphaforge.data.errors import DataError, SchemaError
from alphaforge.data.schemas import time_column
from alphaforge.data.store_open import open_store
from alphaforge.data.validate import (
    base_dataset,
    read_for_validation,
    repair_klines,
    validate_table,
)
from alphaforge.data.validate_common import ts_us
from alphaforge.data.validate_report import SEVERITY_RANK, QualityReport


def _month(t_us: int) -> str:
    return datetime.fromtimestamp(t_us // 1_000_000, UTC).strftime("%Y-%m")


def partition_summaries(
    table: pa.Table, report: QualityReport, dataset: str
) -> dict[tuple[str, str], dict[str, Any]]:
    """(symbol, month) -> {status, counts per failing check} from one report over ``table``."""
    t = ts_us(table, time_column(dataset))
    sym = np.asarray(table.column("symbol").to_pylist(), dtype=object)
    keys = {(str(s), _month(int(x))) for s, x in zip(sym, t, strict=True)} if len(t) else set()
    out: dict[tuple[str, str], dict[str, Any]] = {k: {"checks": {}, "worst": None} for k in keys}
    for c in report.checks:
        idx = c.row_index[(c.row_index >= 0) & (c.row_index < len(t))]
        for key, k in Counter((str(sym[i]), _month(int(t[i]))) for i in idx).items():
            entry = out.setdefault(key, {"checks": {}, "worst": None})
            entry["checks"][c.name] = k
            if entry["worst"] is None or SEVERITY_RANK[c.severity] > SEVERITY_RANK[entry["worst"]]:
                entry["worst"] = c.severity
    for entry in out.values():
        worst = entry.pop("worst")
        entry["status"] = {None: "passed", "info": "passed", "warning": "warnings"}.get(
            worst, "failed"
        )
    return out


def _store_reports(
    store: str,
    dataset: str,
    exchange: str,
    market: str,
    symbols: list[str] | None,
    interval: str | None,
) -> list[tuple[pa.Table, QualityReport, str]]:
    st = open_store(store)
    parts = [p for p in st.partitions(dataset, exchange, market)
             if not symbols or p.symbol in symbols]  # fmt: skip
    if not parts:
        have = ", ".join(st.datasets(exchange, market)) or "none"
        raise DataError(f"store {store} has no {dataset} for {exchange}/{market}"
                        f"{' ' + ','.join(symbols) if symbols else ''}: nothing to validate "
                        f"(datasets there: {have})")  # fmt: skip
    rows = sum(p.rows for p in parts)
    typer.echo(f"validating {dataset}: {len(parts)} partition(s), {rows:,} rows", err=True)
    table = st.read(dataset, exchange=exchange, market=market, symbols=symbols)
    base, iv = base_dataset(dataset)
    rep = validate_table(
        table, base, interval=interval or iv, source=f"store:{store}/{exchange}/{market}/{dataset}"
    )
    sums = partition_summaries(table, rep, base)
    for part in st.partitions(dataset, exchange, market):
        if symbols and part.symbol not in symbols:
            continue
        s = sums.get((part.symbol, part.month))
        if s is not None:
            st.set_validation(
                part, s["status"], {"checks": s["checks"], "completeness": rep.completeness}
            )
    return [(table, rep, base)]


def register(app: typer.Typer) -> None:
    """Add the ``validate`` command to ``app``."""

    @app.command("validate")
    def validate_cmd(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(help="Files: Binance archive CSV/zip, CryptoDataDownload CSV, parquet."),
        ] = None,
        store: Annotated[
            str | None,
            typer.Option(
                "--store",
                envvar="ALPHAFORGE_STORE",
                help="Validate the store (a folder or s3://bucket/prefix) instead.",
            ),
        ] = None,
        dataset: Annotated[
            str | None,
            typer.Option(help="Dataset (klines_1m, agg_trades, funding, ...); files: inferred."),
        ] = None,
        symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
        market: Annotated[str, typer.Option(help="Store market: spot|usdm|cm.")] = "usdm",
        exchange: Annotated[str, typer.Option(help="Store exchange.")] = "binance",
        interval: Annotated[str | None, typer.Option(help="Kline interval, e.g. 1m.")] = None,
        fail_on: Annotated[
            str,
            typer.Option(
                "--fail-on",
                help="Exit 1 when issues at or above error|warning|info, or when any of the "
                "named checks (e.g. missing_bars,duplicate_bars) finds something.",
            ),
        ] = "error",
        repair: Annotated[
            Path | None,
            typer.Option(
                "--repair", help="Write forward-filled klines (with a repaired mask) here."
            ),
        ] = None,
        reconcile: Annotated[
            str | None,
            typer.Option(
                "--reconcile",
                help="klines-vs-aggtrades|spot-vs-futures (store) or files (2 files A B).",
            ),
        ] = None,
        basis_window: Annotated[
            int, typer.Option(help="spot-vs-futures: rolling window of the basis z (bars).")
        ] = 1440,
        show_clean: Annotated[bool, typer.Option(help="List checks that found nothing.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Check data for gaps, duplicates, impossible values and disagreements."""
        console = Console()
        severities = ("error", "warning", "info")
        named = [] if fail_on in severities else [n.strip() for n in fail_on.split(",") if n]
        if reconcile is not None and repair is not None:
            raise typer.BadParameter(
                "--repair does not combine with --reconcile", param_hint="--repair"
            )
        syms = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
        unreadable: list[dict[str, str]] = []
        try:
            if reconcile is not None:
                results = reconcile_results(
                    reconcile, paths, store, dataset=dataset, exchange=exchange, market=market,
                    symbols=syms, interval=interval, window=basis_window,
                )  # fmt: skip
            elif paths:
                results = []
                for i, p in enumerate(paths, 1):  # one unreadable file does not stop the others
                    if len(paths) > 1:
                        typer.echo(f"[{i}/{len(paths)}] validating {p}", err=True)
                    try:
                        table, ds, iv = read_for_validation(p, dataset,
                                                            syms[0] if syms else None)  # fmt: skip
                        if table.num_rows == 0:
                            raise SchemaError(f"{p}: no data rows")
                        rep = validate_table(table, ds, interval=interval or iv, source=str(p))
                    except DataError as exc:
                        unreadable.append({"file": str(p), "error": str(exc)})
                        continue
                    results.append((table, rep, ds))
            elif store is not None:
                results = _store_reports(
                    store, dataset or "klines_1m", exchange, market, syms, interval
                )
            else:
                raise typer.BadParameter("give file PATHS or --store DIR")
            repair_doc = _repair(results, repair, interval) if repair is not None else None
        except DataError as exc:
            raise fail(exc, as_json) from None
        reports = [r for _, r, _ in results]
        if as_json:
            doc: dict[str, Any] = {"reports": [r.to_dict() for r in reports]}
            if unreadable:
                doc["unreadable"] = unreadable
            if repair_doc is not None:
                doc["repair"] = repair_doc
            typer.echo(json.dumps(doc, indent=2))
        else:
            for r in reports:
                console.print(r.to_rich(show_clean=show_clean))
            if repair_doc is not None:
                console.print(
                    f"repair: filled {repair_doc['n_filled']} bars, dropped "
                    f"{len(repair_doc['dropped_duplicates'])} duplicates -> {repair}"
                )
        for u in unreadable:
            typer.echo(f"error: {u['error']}", err=True)
        if named:  # --fail-on missing_bars,duplicate_bars: only those checks fail the run
            known = sorted({c.name for r in reports for c in r.checks})
            unknown = [n for n in named if n not in known]
            if unknown and reports:
                typer.echo(f"error: --fail-on: unknown check(s) {unknown}; the checks that ran: "
                           f"{', '.join(known)} (or a severity: error|warning|info)",
                           err=True)  # fmt: skip
                raise typer.Exit(2)
            failed = any(c.count > 0 for r in reports for c in r.checks if c.name in named)
        else:
            failed = any(r.failed(fail_on) for r in reports)  # type: ignore[arg-type]
        raise typer.Exit(2 if unreadable else (1 if failed else 0))


def _repair(
    results: list[tuple[pa.Table, QualityReport, str]], out: Path, interval: str | None
) -> dict[str, Any]:
    if len(results) != 1 or not results[0][2].endswith("klines"):
        raise DataError("--repair takes exactly one klines input (a file or a store dataset)")
    table, _rep, _ds = results[0]
    fixed, log = repair_klines(table, interval)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(fixed, out)
    doc = log.to_dict() | {"output": str(out)}
    out.with_suffix(out.suffix + ".repair.json").write_text(json.dumps(doc, indent=2))
    return doc
