"""`alphaforge sql`: DuckDB views over the store agree with the store's own reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from alphaforge.data.errors import StoreError
from alphaforge.data.sql import dataset_views, query
from alphaforge.data.store import Store
from alphaforge.data.synthetic import generate_market


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    m = generate_market(n_symbols=3, n_bars=300, book_levels=0, seed=3)
    Store(root).write(m.klines, dataset="klines_1m", exchange="binance", market="usdm",
                      source="synthetic")  # fmt: skip
    Store(root).write(m.funding, dataset="funding", exchange="binance", market="usdm",
                      source="synthetic")  # fmt: skip
    return root


def test_views_match_the_store_reader(store: Path) -> None:
    assert set(dataset_views(store)) == {"klines_1m", "funding"}
    got = query(store, "select symbol, count(*) n, sum(close) s from klines_1m "
                       "where symbol <> 'SYN001USDT' group by 1 order by 1")  # fmt: skip
    ref = Store(store).read("klines_1m", exchange="binance", market="usdm",
                            symbols=["SYN000USDT", "SYN002USDT"])  # fmt: skip
    assert got.column("n").to_pylist() == [300, 300]
    want = [pc.sum(ref.filter(pc.equal(ref["symbol"], s))["close"]).as_py()
            for s in ("SYN000USDT", "SYN002USDT")]  # fmt: skip
    assert got.column("s").to_pylist() == pytest.approx(want, rel=1e-12)
    parts = query(store, "select distinct exchange, market, month from funding")
    assert parts.column("market").to_pylist() == ["usdm"]


def test_errors_name_the_problem(store: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="syntax error"):
        query(store, "selec 1")
    with pytest.raises(StoreError, match="does not exist"):
        query(tmp_path / "nope", "select 1")


def test_cli_json(store: Path) -> None:
    from alphaforge.cli import app

    res = CliRunner().invoke(app, ["sql", "select count(*) n from klines_1m", "--store",
                                   str(store), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert '"n": 900' in res.output
