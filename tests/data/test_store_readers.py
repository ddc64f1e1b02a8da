"""DuckDB and Polars read the market-data store and the sweep-results store as written, with
the recipes of docs/store.md, and get exactly the values of the store's own readers.

tests/data/test_store.py covers one kline dataset read with a root-wide glob; here the store
holds two datasets and a sweep under the same root (the CLI default), so every reader must
select one dataset folder, and the sweep id (an all-digit id, the hard case for hive type
inference) must come back as text.
"""

from __future__ import annotations

import stat
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from alphaforge.data.results import ResultsStore
from alphaforge.data.sql import query
from alphaforge.data.store import Store
from alphaforge.data.synthetic import generate_market
from alphaforge.engine.sweep import expand_trials, run_sweep
from alphaforge.panels import synthetic_panel
from tests.engine.sweep_helpers import mom_signal

SWEEP_ID = "0123456789012345"  # digits only: hive inference would make it an integer
KEYS = {"klines_1m": ("symbol", "open_time"), "funding": ("symbol", "funding_time")}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("store")
    m = generate_market(n_symbols=3, n_bars=400, book_levels=0, seed=11)
    for name, table in (("klines_1m", m.klines), ("funding", m.funding)):
        Store(base).write(table, dataset=name, exchange="binance", market="usdm",
                          source="synthetic")  # fmt: skip
    panel = synthetic_panel(n_symbols=4, n_bars=300, seed=2).panel
    trials = expand_trials(["5", "20"], {"rebalance_every": [1, 10], "fee_bps": [0.0, 4.0]})
    run_sweep(panel, trials, mom_signal, ResultsStore(base, SWEEP_ID), chunk_size=3)
    return base


def _dataset_dir(root: Path, name: str) -> str:
    return f"{root}/exchange=binance/market=usdm/dataset={name}"


def _reference(root: Path, name: str) -> pa.Table:
    return Store(root).read(name, exchange="binance", market="usdm")


@pytest.mark.parametrize("name", ["klines_1m", "funding"])
def test_duckdb_reads_each_dataset_as_the_store_reader(root: Path, name: str) -> None:
    ref = _reference(root, name)
    assert ref.num_rows > 0
    glob = f"{_dataset_dir(root, name)}/symbol=*/month=*/*.parquet"
    cols = ", ".join(ref.column_names)
    got = duckdb.sql(
        f"SELECT {cols} FROM read_parquet('{glob}', hive_partitioning = true) "
        f"ORDER BY {', '.join(KEYS[name])}"
    ).to_arrow_table()
    ts_type = got.schema.field(KEYS[name][1]).type  # TIMESTAMPTZ in the session's zone
    assert ts_type.unit == "us"
    assert ts_type.tz in ("UTC", "Etc/UTC")
    for c in ref.column_names:
        assert got[c].to_pylist() == ref[c].to_pylist(), c


@pytest.mark.parametrize("name", ["klines_1m", "funding"])
def test_polars_reads_each_dataset_as_the_store_reader(root: Path, name: str) -> None:
    ref = _reference(root, name)
    df = (
        pl.scan_parquet(f"{_dataset_dir(root, name)}/**/*.parquet", hive_partitioning=True)
        .sort(list(KEYS[name]))
        .collect()
    )
    assert df.schema[KEYS[name][1]] == pl.Datetime("us", "UTC")
    assert set(df["month"].unique().to_list()) <= {"2024-01", "2024-02"}
    for c in ref.column_names:
        assert df[c].to_list() == ref[c].to_pylist(), c


def test_every_stored_time_column_is_utc_micros_in_parquet(root: Path) -> None:
    files = sorted(root.glob("exchange=*/market=*/dataset=*/symbol=*/month=*/*.parquet"))
    assert len(files) >= 6
    seen = 0
    for f in files:
        schema = pq.ParquetFile(f).schema
        for i in range(len(schema)):
            col = schema.column(i)
            if col.physical_type == "INT64" and "Timestamp" in str(col.logical_type):
                lt = str(col.logical_type)
                assert "isAdjustedToUTC=true" in lt, (f, lt)
                assert "timeUnit=microseconds" in lt, (f, lt)
                seen += 1
    assert seen >= len(files)


def _results_ref(root: Path) -> pa.Table:
    return ResultsStore(root, SWEEP_ID).read().sort_by("trial_id")


def test_duckdb_reads_sweep_results_as_stored(root: Path) -> None:
    ref = _results_ref(root)
    assert ref.num_rows == 8
    glob = f"{root}/results/sweep=*/chunk=*.parquet"
    got = duckdb.sql(
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
        "hive_types = {'sweep': VARCHAR}) ORDER BY trial_id"
    ).to_arrow_table()
    assert got["sweep"].to_pylist() == [SWEEP_ID] * 8
    for c in ref.column_names:
        assert got[c].to_pylist() == ref[c].to_pylist(), c
    view = query(root, "select trial_id, sweep, sharpe, block_sum from sweep_results "
                       "order by trial_id")  # fmt: skip
    assert view["sweep"].to_pylist() == [SWEEP_ID] * 8
    assert view["sharpe"].to_pylist() == ref["sharpe"].to_pylist()
    assert view["block_sum"].to_pylist() == ref["block_sum"].to_pylist()


def test_polars_reads_sweep_results_as_stored(root: Path) -> None:
    ref = _results_ref(root)
    lazy = pl.scan_parquet(
        f"{root}/results/**/*.parquet", hive_partitioning=True, hive_schema={"sweep": pl.String}
    )
    df = lazy.sort("trial_id").collect()
    assert df["sweep"].to_list() == [SWEEP_ID] * 8
    for c in ref.column_names:
        assert df[c].to_list() == ref[c].to_pylist(), c
    best = df.group_by("factor").agg(pl.col("sharpe").max()).sort("factor")
    want = [max(s for f, s in zip(ref["factor"].to_pylist(), ref["sharpe"].to_pylist(),
                                  strict=True) if f == name) for name in ("20", "5")]  # fmt: skip
    np.testing.assert_array_equal(best["sharpe"].to_numpy(), want)


def test_result_files_are_as_readable_as_market_files(root: Path) -> None:
    """Chunk and spec files get the umask's mode (like part-0.parquet), not mkstemp's 0600."""
    market = next(root.glob("exchange=*/market=*/dataset=*/symbol=*/month=*/part-0.parquet"))
    want = stat.S_IMODE(market.stat().st_mode)
    results = sorted((root / "results" / f"sweep={SWEEP_ID}").iterdir())
    assert [p.name for p in results if p.name.startswith(".")] == []
    assert {stat.S_IMODE(p.stat().st_mode) for p in results} == {want}


def test_sql_cli_lists_sweep_results_among_tables_on_error(root: Path) -> None:
    from alphaforge.cli import app

    res = CliRunner().invoke(app, ["sql", "select * from nope", "--store", str(root)])
    assert res.exit_code == 2
    assert "funding, klines_1m, sweep_results" in res.stderr
