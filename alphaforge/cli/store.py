"""``alphaforge store ls`` / ``alphaforge store info``: what the parquet store holds.

Registered by ``engine/cli.py`` with ``register(app)``. The store directory comes from
``--store``, else ``ALPHAFORGE_STORE``, else ``./store``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alphaforge.cli.render import fail
from alphaforge.data.errors import DataError
from alphaforge.data.manifest import PartitionInfo
from alphaforge.data.storage_config import StorageConfig, load_storage_config
from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from alphaforge.data.tier_move import move_tiers
from alphaforge.data.tiered_store import TieredStore

DEFAULT_STORE = "store"

store_app = typer.Typer(
    name="store",
    help="Inspect the parquet store (partitions, rows, spans, sources).",
    no_args_is_help=True,
)

StoreOpt = Annotated[
    str,
    typer.Option(
        "--store", envvar="ALPHAFORGE_STORE", help="Store root: a folder or s3://bucket/prefix."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _iso(t_us: int | None) -> str | None:
    if t_us is None:
        return None
    return datetime.fromtimestamp(t_us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def summarize(parts: Sequence[PartitionInfo]) -> list[dict[str, Any]]:
    """One row per (exchange, market, dataset): symbols, partitions, rows, span, bytes, status."""
    groups: dict[tuple[str, str, str], list[PartitionInfo]] = {}
    for p in parts:
        groups.setdefault((p.exchange, p.market, p.dataset), []).append(p)
    out = []
    for (ex, mk, ds), ps in sorted(groups.items()):
        lo = [p.min_time_us for p in ps if p.min_time_us is not None]
        hi = [p.max_time_us for p in ps if p.max_time_us is not None]
        out.append(
            {
                "exchange": ex,
                "market": mk,
                "dataset": ds,
                "symbols": len({p.symbol for p in ps}),
                "partitions": len(ps),
                "rows": sum(p.rows for p in ps),
                "bytes": sum(p.file_bytes for p in ps),
                "first": _iso(min(lo)) if lo else None,
                "last": _iso(max(hi)) if hi else None,
                "validation": dict(sorted(Counter(p.validation_status for p in ps).items())),
                "tiers": dict(sorted(Counter(p.tier for p in ps).items())),
                "missing": _missing(ps),
            }
        )
    return out


def tier_costs(parts: Sequence[PartitionInfo], cfg: StorageConfig,
               hot_bytes: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Per tier: partitions, bytes and the monthly cost at ``cfg.prices`` (USD per GB-month,
    GB = 1e9 bytes); the hot read cache's bytes when one is configured."""
    rows = []
    for tier in ("hot", "warm", "cold"):
        ps = [p for p in parts if p.tier == tier]
        n_bytes = hot_bytes if tier == "hot" else sum(p.file_bytes for p in ps)
        if n_bytes is None or (tier == "hot" and not cfg.hot_dir) or (tier != "hot" and not ps):
            continue
        price = cfg.prices.get(tier, 0.0)
        rows.append({"tier": tier, "partitions": len(ps) if tier != "hot" else None,
                     "bytes": n_bytes, "usd_per_gb_month": price,
                     "usd_per_month": n_bytes / 1e9 * price})  # fmt: skip
    return rows


def _missing(ps: list[PartitionInfo]) -> int | None:
    """Bars or ids missing inside the partitions (None: no completeness rule or not recorded)."""
    known = [p.completeness for p in ps if p.completeness is not None]
    return sum(int(c["missing"]) for c in known) if known else None


def _fail(exc: DataError, as_json: bool = False) -> typer.Exit:
    return fail(exc, as_json)


def _must_exist(st: Store) -> None:
    """A local store folder that does not exist is a typo, not an empty store: say so (an
    object-store prefix or a tiered store's empty warm folder can be legitimately empty)."""
    if type(st) is Store and not st.root.is_dir():
        raise DataError(f"no store at {str(st.root)!r}: that folder does not exist (pass "
                        "--store DIR, set ALPHAFORGE_STORE, or write data there first with "
                        "`alphaforge ingest` or `pull`)")  # fmt: skip


@store_app.command("ls")
def ls_cmd(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """List the datasets in the store with their symbols, partitions, rows, time span and tier,
    and the size and monthly cost of each tier."""
    try:
        cfg = load_storage_config()
        st = open_store(store, cfg)
        _must_exist(st)
        parts = st.partitions()
        hot = getattr(st, "hot", None)
        costs = tier_costs(parts, cfg, hot.size_bytes() if hot is not None else None)
        rows = summarize(parts)
    except DataError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        typer.echo(json.dumps({"store": st.uri, "datasets": rows, "tiers": costs}, indent=1))
        return
    if not rows:
        typer.echo(f"{st.uri}: empty store (no partitions)")
        return
    table = Table(title=f"store {st.uri}")
    cols = ("exchange", "market", "dataset", "symbols", "partitions", "rows", "MB", "first",
            "last", "missing", "tier", "validation")  # fmt: skip
    for col in cols:
        right = col in ("symbols", "partitions", "rows", "MB", "missing")
        table.add_column(col, justify="right" if right else "left")
    for r in rows:
        table.add_row(
            r["exchange"],
            r["market"],
            r["dataset"],
            str(r["symbols"]),
            str(r["partitions"]),
            f"{r['rows']:,}",
            f"{r['bytes'] / 1e6:.2f}",
            r["first"] or "-",
            r["last"] or "-",
            "-" if r["missing"] is None else f"{r['missing']:,}",
            ", ".join(f"{k}:{v}" for k, v in r["tiers"].items()),
            ", ".join(f"{k}:{v}" for k, v in r["validation"].items()),
        )
    console = Console(width=200)
    console.print(table)
    tiers = Table(title="tiers (USD per month at the configured prices)")
    for col in ("tier", "partitions", "MB", "USD/GB-month", "USD/month"):
        tiers.add_column(col, justify="left" if col == "tier" else "right")
    for c in costs:
        tiers.add_row(c["tier"], "-" if c["partitions"] is None else str(c["partitions"]),
                      f"{c['bytes'] / 1e6:.2f}", f"{c['usd_per_gb_month']:.4f}",
                      f"{c['usd_per_month']:.4f}")  # fmt: skip
    console.print(tiers)


@store_app.command("tier")
def tier_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the moves only.")] = False,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Move partitions between the warm (local) and cold (object storage) tiers as the policy
    in [storage] says (months ending more than warm_days ago go cold). Resumable: run it again
    after an interruption; each copy is verified by checksum before its source is deleted."""
    try:
        st = open_store(store)
        if not isinstance(st, TieredStore):
            raise DataError(f"store {st.uri!r} has no cold tier: set [storage] cold = "
                            "'s3://bucket/prefix' in alphaforge.toml, or "
                            "ALPHAFORGE_COLD_STORE")  # fmt: skip

        def progress(i: int, n: int, msg: str) -> None:
            typer.echo(f"[{i}/{n}] {msg}", err=True)

        rep = move_tiers(st, dry_run=dry_run, progress=progress)
    except DataError as exc:
        raise _fail(exc, as_json) from None
    doc = rep.to_dict()
    if as_json:
        typer.echo(json.dumps({"store": st.uri, "dry_run": dry_run, **doc}, indent=1))
        return
    verb = "would move" if dry_run else "moved"
    typer.echo(f"{st.uri}: {verb} {len(rep.moves)} partition(s) "
               f"({doc['moved_bytes'] / 1e6:.2f} MB), {rep.in_place} already in their tier, "
               f"{rep.seconds:.1f} s")  # fmt: skip
    for m in rep.moves:
        k = m.key
        typer.echo(f"  {k['dataset']} {k['symbol']} {k['month']}: {m.source} -> {m.target} "
                   f"({m.action}, {m.bytes / 1e6:.2f} MB)")  # fmt: skip


@store_app.command("info")
def info_cmd(
    dataset: Annotated[str, typer.Argument(help="e.g. klines_1m, agg_trades, funding")],
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Repeatable.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Filter by exchange.")] = None,
    market: Annotated[str | None, typer.Option(help="Filter by market.")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Show every partition of DATASET: rows, time span, sources and validation status."""
    st = open_store(store)
    try:
        _must_exist(st)
        parts = [
            p
            for p in st.partitions(dataset, exchange=exchange, market=market)
            if not symbol or p.symbol in symbol
        ]
    except DataError as exc:
        raise _fail(exc, as_json) from None
    if as_json:
        docs = [
            dict(p.to_dict(), first=_iso(p.min_time_us), last=_iso(p.max_time_us)) for p in parts
        ]
        typer.echo(json.dumps({"store": st.uri, "dataset": dataset, "partitions": docs}, indent=1))
        return
    if not parts:
        typer.echo(
            f"{store}: no partitions of {dataset}" + (f" for {', '.join(symbol)}" if symbol else "")
        )
        return
    table = Table(title=f"{dataset} in {store}")
    for col in (
        "exchange",
        "market",
        "symbol",
        "month",
        "rows",
        "first",
        "last",
        "sources",
        "validation",
    ):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for p in parts:
        srcs = "; ".join(
            s.source + (f" sha256:{s.sha256[:12]}" if s.sha256 else "") for s in p.sources[-2:]
        )
        if len(p.sources) > 2:
            srcs = f"(+{len(p.sources) - 2}) " + srcs
        table.add_row(
            p.exchange,
            p.market,
            p.symbol,
            p.month,
            f"{p.rows:,}",
            _iso(p.min_time_us) or "-",
            _iso(p.max_time_us) or "-",
            srcs or "-",
            p.validation_status + (" (rebuilt)" if p.rebuilt else ""),
        )
    Console(width=220).print(table)


def register(app: typer.Typer) -> None:
    """Add the ``store`` sub-command group to the main app."""
    app.add_typer(store_app, name="store")
