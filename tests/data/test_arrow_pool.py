"""data.arrow_pool.fast_pool: the process-wide Arrow pool swap is scoped and restored."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data.archive import read_archive_csv
from alphaforge.data.arrow_pool import fast_pool
from alphaforge.data.store import Store

_CSV = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
    "1,100.5,0.25,10,11,1704067200000,true\n"
    "2,100.75,1.5,12,12,1704067201000,false\n"
)


def test_pool_restored_after_read_and_write(tmp_path: Path) -> None:
    before = pa.default_memory_pool().backend_name
    src = tmp_path / "BTCUSDT-aggTrades-2024-01.csv"
    src.write_text(_CSV)
    table = read_archive_csv(src, "agg_trades", "BTCUSDT")
    assert pa.default_memory_pool().backend_name == before
    Store(tmp_path / "store").write(table, "agg_trades")
    assert pa.default_memory_pool().backend_name == before
    # buffers made under the swapped pool stay valid after it is restored
    assert table.column("agg_trade_id").to_pylist() == [1, 2]
    assert pc.sum(table.column("qty")).as_py() == 1.75
    back = Store(tmp_path / "store").read("agg_trades", symbols=["BTCUSDT"])
    assert back.column("ts").cast(pa.int64()).to_pylist() == [1704067200000000, 1704067201000000]


def test_nested_and_concurrent_users_restore_once() -> None:
    before = pa.default_memory_pool().backend_name
    inside: list[str] = []
    gate = threading.Barrier(2)

    def user() -> None:
        with fast_pool():
            gate.wait()
            inside.append(pa.default_memory_pool().backend_name)
            gate.wait()

    threads = [threading.Thread(target=user) for _ in range(2)]
    with fast_pool():
        with fast_pool():
            nested = pa.default_memory_pool().backend_name
        still = pa.default_memory_pool().backend_name
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert nested == still
    assert inside == [still, still]
    assert pa.default_memory_pool().backend_name == before


def test_swaps_to_jemalloc_when_built_in() -> None:
    try:
        want = pa.jemalloc_memory_pool().backend_name
    except (NotImplementedError, pa.ArrowNotImplementedError):
        want = pa.default_memory_pool().backend_name
    with fast_pool():
        assert pa.default_memory_pool().backend_name == want
