"""SQL over the parquet store with the embedded DuckDB: one view per stored dataset.

Every ``dataset=<name>`` folder of the store becomes a view named after the dataset
(``klines_1m``, ``agg_trades``, ``funding`` ...) over
``read_parquet('<root>/exchange=*/market=*/dataset=<name>/symbol=*/month=*/*.parquet',
hive_partitioning = true)``, so the
partition columns ``exchange``, ``market``, ``symbol`` and ``month`` are queryable and pruned.
Sweep results stored under ``<root>/results`` (data.results) are the view ``sweep_results``
(one row per trial, partition column ``sweep`` kept as text). On object storage, or with a
cold tier, each view is an Arrow dataset over exactly the data objects the manifests name,
registered with DuckDB (no DuckDB extension is needed). Polars and Spark read one
dataset folder at a time (a ``root/**`` glob mixes schemas): see docs/store.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from alphaforge.data import schemas
from alphaforge.data.errors import StoreError
from alphaforge.data.storage_config import is_uri, load_storage_config
from alphaforge.data.store import Store, schema_name
from alphaforge.data.store_open import open_store

if TYPE_CHECKING:
    import pyarrow.dataset as ds

_SAFE = re.compile(r"^[a-z0-9_]+$")


def dataset_views(root: str | Path) -> dict[str, str]:
    """Dataset name -> the parquet glob its view reads (datasets present in the store)."""
    base = Path(root)
    names = sorted({p.name.split("=", 1)[1] for p in base.glob("exchange=*/market=*/dataset=*")
                    if p.is_dir()})  # fmt: skip
    tail = ("symbol=*", "month=*", "*.parquet")
    return {n: str(base.joinpath("exchange=*", "market=*", f"dataset={n}", *tail))
            for n in names if _SAFE.match(n)}  # fmt: skip


_HIVE = pa.schema([(k, pa.string()) for k in ("exchange", "market", "dataset", "symbol", "month")])


def arrow_views(store: Store) -> dict[str, ds.Dataset]:
    """Dataset name -> an Arrow dataset over the data files the manifests name, in every tier
    (object storage has no listing that tells current files from superseded ones, so the views
    come from the manifests rather than a glob)."""
    import pyarrow.dataset as ds  # here: it imports pandas (~0.4 s), which most commands skip

    groups: dict[str, list[ds.Dataset]] = {}
    for name, fs, base_dir, files in store.dataset_files():
        if not files or not _SAFE.match(name):
            continue
        file_schema = pa.schema([f for f in schemas.DATASETS[schema_name(name)]
                                 if f.name != "symbol"])  # fmt: skip
        groups.setdefault(name, []).append(ds.dataset(
            list(files), schema=pa.unify_schemas([file_schema, _HIVE]), format="parquet",
            partitioning=ds.partitioning(_HIVE, flavor="hive"), partition_base_dir=base_dir,
            filesystem=fs))  # fmt: skip
    return {n: d[0] if len(d) == 1 else ds.dataset(d) for n, d in sorted(groups.items())}


def view_names(root: str | Path | Store) -> list[str]:
    """The table names a query at ``root`` can use (empty for a missing local store)."""
    if isinstance(root, Store) or is_uri(root) or load_storage_config().cold:
        return list(arrow_views(open_store(root)))
    base = Path(root)
    if not base.is_dir():
        return []
    return [*dataset_views(base), *(["sweep_results"] if (base / "results").is_dir() else [])]


def query(root: str | Path | Store, sql: str, limit: int | None = None) -> pa.Table:
    """Run ``sql`` against the store's dataset views; returns an Arrow table.

    Args:
        root: store root: a folder, ``s3://bucket/prefix`` or a Store (tiers included).
        sql: a DuckDB SQL statement. limit: at most this many rows (None = all).

    Raises:
        StoreError: a missing store, or a DuckDB error (its message names the bad token).
    """
    import duckdb

    managed = isinstance(root, Store) or is_uri(root) or load_storage_config().cold is not None
    base = Path(root) if not isinstance(root, Store) else root.root
    if not managed and not base.is_dir():
        raise StoreError(f"store {str(base)!r} does not exist; run `alphaforge pull` first")
    con = duckdb.connect(":memory:")
    try:
        if managed:
            for name, dset in arrow_views(open_store(root)).items():
                con.register(name, dset)
        else:
            for name, glob in dataset_views(base).items():
                path = glob.replace("'", "''")
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}', "
                            "hive_partitioning = true, union_by_name = true)")  # fmt: skip
        results = base / "results"
        if results.is_dir():
            glob = str(results / "sweep=*" / "chunk=*.parquet").replace("'", "''")
            con.execute("CREATE VIEW sweep_results AS SELECT * FROM read_parquet("
                        f"'{glob}', hive_partitioning = true, hive_types = {{'sweep': VARCHAR}}, "
                        "union_by_name = true)")  # fmt: skip
        rel = con.sql(sql)
        if rel is None:
            return pa.table({})
        if limit is not None:
            rel = rel.limit(limit)
        to_arrow = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table  # duckdb < 1.4
        table: Any = to_arrow()
        return table if isinstance(table, pa.Table) else pa.table(table)
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {exc}") from None
    finally:
        con.close()
