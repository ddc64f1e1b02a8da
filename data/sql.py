"""SQL over the parquet store with the embedded DuckDB: one view per stored dataset.

Every ``dataset=<name>`` folder of the store becomes a view named after the dataset
(``klines_1m``, ``agg_trades``, ``funding`` ...) over
``read_parquet('<root>/exchange=*/market=*/dataset=<name>/symbol=*/month=*/*.parquet',
hive_partitioning = true)``, so the
partition columns ``exchange``, ``market``, ``symbol`` and ``month`` are queryable and pruned.
Sweep results stored under ``<root>/results`` (data.results) are the view ``sweep_results``
(one row per trial, partition column ``sweep`` kept as text). Polars and Spark read one
dataset folder at a time (a ``root/**`` glob mixes schemas): see docs/store.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from alphaforge.data.errors import StoreError

_SAFE = re.compile(r"^[a-z0-9_]+$")


def dataset_views(root: str | Path) -> dict[str, str]:
    """Dataset name -> the parquet glob its view reads (datasets present in the store)."""
    base = Path(root)
    names = sorted({p.name.split("=", 1)[1] for p in base.glob("exchange=*/market=*/dataset=*")
                    if p.is_dir()})  # fmt: skip
    tail = ("symbol=*", "month=*", "*.parquet")
    return {n: str(base.joinpath("exchange=*", "market=*", f"dataset={n}", *tail))
            for n in names if _SAFE.match(n)}  # fmt: skip


def query(root: str | Path, sql: str, limit: int | None = None) -> pa.Table:
    """Run ``sql`` against the store's dataset views; returns an Arrow table.

    Args:
        root: store root directory. sql: a DuckDB SQL statement.
        limit: at most this many rows (None = all).

    Raises:
        StoreError: a missing store, or a DuckDB error (its message names the bad token).
    """
    import duckdb

    base = Path(root)
    if not base.is_dir():
        raise StoreError(f"store {str(base)!r} does not exist; run `alphaforge pull` first")
    con = duckdb.connect(":memory:")
    try:
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
