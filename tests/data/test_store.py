"""Tests of data.store: round trips, idempotence, merges, crash safety, pushdown, readers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.data import schemas
from alphaforge.data.archive import read_archive_csv
from alphaforge.data.errors import SchemaError, StoreError
from alphaforge.data.store import Store, schema_name
from alphaforge.data.store_merge import dedupe_sort, sorted_by_symbol_time, split_partitions
from alphaforge.data.store_query import partition_files
from alphaforge.data.store_views import kline_panel_table
from tests.data.store_rows import MIN, T0, klines

ROOT = Path(__file__).resolve().parents[2]


def sort_rows(t: pa.Table, keys: list[str]) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in keys])


# ------------------------------------------------------------------ round trip, idempotence


def test_round_trip_exact_values_across_months_and_symbols(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = pa.concat_tables([klines("BTCUSDT", 44_000, 2000), klines("ETHUSDT", 0, 50)])
    rep = store.write(t, "klines_1m", source="archive:a.zip", source_sha256="ab" * 32)
    assert rep.rows_in == rep.rows_added == 2050
    assert {(p.symbol, p.month) for p in rep.partitions} == {
        ("BTCUSDT", "2024-01"),
        ("BTCUSDT", "2024-02"),
        ("ETHUSDT", "2024-01"),
    }
    back = store.read("klines_1m")
    assert back.schema == schemas.KLINES
    assert back.equals(sort_rows(t, ["symbol", "open_time"]))
    jan = next(p for p in store.partitions("klines_1m") if p.symbol == "BTCUSDT")
    assert jan.month == "2024-01"
    assert jan.rows == 44_640 - 44_000  # minutes of January from minute 44,000
    assert jan.min_time_us == T0 + 44_000 * MIN
    assert jan.max_time_us == T0 + 44_639 * MIN
    assert [(s.source, s.sha256) for s in jan.sources] == [("archive:a.zip", "ab" * 32)]


def test_real_futures_klines_round_trip(tmp_path: Path, real_dir: Path) -> None:
    path = real_dir / "binance_futures_klines" / "AVAXUSDT-1m-2023-02.csv.gz"
    t = read_archive_csv(path, "klines_1m", "AVAXUSDT")
    store = Store(tmp_path)
    store.write(t, "klines_1m", source=f"archive:{path}")
    back = store.read("klines_1m", symbols=["AVAXUSDT"])
    assert back.num_rows == 40_320
    assert back.equals(schemas.conform(t, "klines"))
    # values from the file's first and last lines
    first, last = back.slice(0, 1).to_pylist()[0], back.slice(40_319).to_pylist()[0]
    assert (first["open"], first["close"], first["volume"], first["trades"]) == (
        19.807,
        19.813,
        11067.0,
        500,
    )
    assert first["open_time"].timestamp() == 1675209600.0
    assert (last["close"], last["quote_volume"]) == (17.08, 34314.729)
    assert store.partitions()[0].month == "2023-02"


def test_rewrite_is_idempotent_and_leaves_file_untouched(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = klines("BTCUSDT", 0, 500)
    store.write(t, "klines_1m", source="s1")
    f = next(tmp_path.rglob("part-0.parquet"))
    before = (f.stat().st_mtime_ns, f.read_bytes())
    rep = store.write(t, "klines_1m", source="s1")
    assert rep.rows_added == 0
    assert rep.skipped == 1
    assert (f.stat().st_mtime_ns, f.read_bytes()) == before
    assert store.read("klines_1m").equals(t)
    assert len(store.partitions()[0].sources) == 1  # same source recorded once


def test_overlapping_writes_merge_and_newest_wins(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(klines("BTCUSDT", 0, 100), "klines_1m", source="a")
    newer = klines("BTCUSDT", 50, 100, bump=1000.0)  # minutes 50..149 with different prices
    rep = store.write(newer, "klines_1m", source="b")
    assert rep.rows_added == 50
    back = store.read("klines_1m")
    assert back.num_rows == 150
    ot = back["open_time"].cast(pa.int64()).to_numpy()
    assert np.array_equal(ot, T0 + np.arange(150) * MIN)
    assert back.slice(0, 50).equals(klines("BTCUSDT", 0, 50))
    assert back.slice(50).equals(newer)
    srcs = [s.source for s in store.partitions()[0].sources]
    assert srcs == ["a", "b"]


def test_duplicates_inside_one_write_keep_the_last(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a, b = klines("BTCUSDT", 0, 10), klines("BTCUSDT", 0, 10, bump=5.0)
    store.write(pa.concat_tables([a, b]), "klines_1m")
    assert store.read("klines_1m").equals(b)


def test_trades_with_uuid_ids_and_null_trade_id_dedupe(tmp_path: Path) -> None:
    ts = pa.array([T0, T0, T0 + 5], pa.int64()).cast(schemas.TS)
    t = pa.table(
        {
            "symbol": ["XBTUSD"] * 3,
            "trade_id": pa.nulls(3, pa.int64()),
            "trade_uid": ["b", "a", "c"],
            "price": [1.0, 2.0, 3.0],
            "qty": [1.0, 1.0, 1.0],
            "quote_qty": [1.0, 2.0, 3.0],
            "ts": ts,
            "is_buyer_maker": [True, False, True],
        }
    )
    store = Store(tmp_path)
    store.write(t, "trades", exchange="bitmex")
    store.write(t.slice(0, 2), "trades", exchange="bitmex")
    back = store.read("trades", exchange="bitmex")
    assert back.num_rows == 3
    assert back["trade_uid"].to_pylist() == ["a", "b", "c"]  # sorted by (ts, keys)
    assert back["trade_id"].null_count == 3


# ------------------------------------------------------------------ errors and empties


def test_unknown_dataset_names_known_ones(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(
        StoreError, match=r"unknown dataset 'kline_1m'.*klines_<interval>.*agg_trades"
    ):
        store.read("kline_1m")
    with pytest.raises(StoreError, match="unknown dataset 'klines'"):
        store.write(klines("X", 0, 1), "klines")
    with pytest.raises(StoreError, match="unknown market 'usd-m'"):
        store.read("klines_1m", market="usd-m")
    with pytest.raises(StoreError, match=r"symbol '\.\./x' cannot be a partition value"):
        store.write(pa.concat_tables([klines("OK", 0, 1), klines("../x", 0, 1)]), "klines_1m")
    assert not (tmp_path / "exchange=binance").exists()  # nothing written
    with pytest.raises(StoreError, match="exchange 'a/b'"):
        store.read("klines_1m", exchange="a/b")
    assert schema_name("mark_klines_1h") == "mark_klines"
    assert schema_name("funding") == "funding"


def test_absent_symbols_and_months_give_empty_typed_tables(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.read("klines_1m").schema == schemas.KLINES
    store.write(klines("BTCUSDT", 0, 10), "klines_1m")
    none = store.read("klines_1m", symbols=["NOPE"])
    assert none.num_rows == 0
    assert none.schema == schemas.KLINES
    later = store.read("klines_1m", start_us=T0 + 400 * 86_400_000_000)
    assert later.num_rows == 0
    assert later.schema == schemas.KLINES
    cols = store.read("agg_trades", columns=["ts", "price"])
    assert cols.schema.names == ["ts", "price"]
    assert store.last_time_us("klines_1m", symbol="NOPE") is None
    with pytest.raises(StoreError, match="unknown column"):
        store.read("klines_1m", columns=["nope"])


def test_missing_column_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['close'\]"):
        Store(tmp_path).write(klines("X", 0, 3).drop_columns(["close"]), "klines_1m")


# ------------------------------------------------------------------ query


def test_pushdown_returns_exactly_the_filtered_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    full = pa.concat_tables(
        [klines(s, 40_000, 9000, seed=i) for i, s in enumerate(["AAA", "BBB", "CCC"])]
    )
    store.write(full, "klines_1m")
    lo, hi = T0 + 44_700 * MIN + 7, T0 + 47_123 * MIN
    got = store.read(
        "klines_1m",
        symbols=["CCC", "AAA"],
        start_us=lo,
        end_us=hi,
        columns=["open_time", "symbol", "close"],
    )
    ot = full["open_time"].cast(pa.int64()).to_numpy()
    sym = np.asarray(full["symbol"].to_pylist())
    mask = (ot >= lo) & (ot < hi) & np.isin(sym, ["AAA", "CCC"])
    want = sort_rows(full.filter(pa.array(mask)), ["symbol", "open_time"])
    assert got.equals(want.select(["open_time", "symbol", "close"]))
    assert got.num_rows == 2 * (47_123 - 44_701)
    # directory pruning: only February files of AAA and CCC are opened
    files = partition_files(
        tmp_path / "exchange=binance/market=usdm/dataset=klines_1m", ["CCC", "AAA"], lo, hi
    )
    assert [f.parent.parent.name + "/" + f.parent.name for f in files] == [
        "symbol=AAA/month=2024-02",
        "symbol=CCC/month=2024-02",
    ]


def test_duckdb_and_polars_read_the_store_as_is(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = pa.concat_tables([klines("BTCUSDT", 44_600, 100), klines("ETHUSDT", 0, 30)])
    store.write(t, "klines_1m")
    glob = f"{tmp_path}/**/*.parquet"
    rel = duckdb.sql(
        f"SELECT symbol, month, dataset, open_time, close FROM read_parquet('{glob}', "
        "hive_partitioning=true) ORDER BY symbol, open_time"
    )
    rows = rel.fetchall()
    assert len(rows) == 130
    assert rows[0][:3] == ("BTCUSDT", "2024-01", "klines_1m")
    assert rows[-1][0] == "ETHUSDT"
    assert [r[4] for r in rows] == sort_rows(t, ["symbol", "open_time"])["close"].to_pylist()
    df = pl.scan_parquet(glob, hive_partitioning=True).sort(["symbol", "open_time"]).collect()
    assert df.height == 130
    assert df["close"].to_list() == [r[4] for r in rows]
    assert set(df["month"].to_list()) == {"2024-01", "2024-02"}
    assert df["open_time"].dtype == pl.Datetime("us", "UTC")


# ------------------------------------------------------------------ manifests, sources


def test_manifest_validation_and_sources(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(
        klines("BTCUSDT", 0, 10), "klines_1m", source="archive:x.zip", source_sha256="cd" * 32
    )
    assert store.has_source("cd" * 32)
    assert store.has_source("archive:x.zip") is False  # recorded by sha when one is given
    store.write(klines("BTCUSDT", 10, 5), "klines_1m", source="rest:/fapi/v1/klines")
    assert store.has_source("rest:/fapi/v1/klines")
    part = store.partitions("klines_1m")[0]
    assert part.rows == 15
    assert part.validation_status == "unvalidated"
    info = store.set_validation(part, "passed", {"issues": 0})
    assert info.validation_status == "passed"
    assert store.partitions("klines_1m")[0].validation_summary == {"issues": 0}
    store.write(klines("BTCUSDT", 15, 1), "klines_1m")  # data changed: validation resets
    assert store.partitions("klines_1m")[0].validation_status == "unvalidated"
    assert store.last_time_us("klines_1m", symbol="BTCUSDT") == T0 + 15 * MIN


def test_stale_manifest_is_rebuilt_from_the_data_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(klines("BTCUSDT", 0, 10), "klines_1m", source="a")
    part = store.partitions()[0].path
    doc = json.loads((part / "_manifest.json").read_text())
    doc["fingerprint"] = [1, 2]
    doc["rows"] = 999
    (part / "_manifest.json").write_text(json.dumps(doc))
    (part / "_manifest.pending.json").write_text('{"fingerprint": [')  # torn by a kill
    info = store.partitions()[0]
    assert info.rows == 10
    assert info.rebuilt
    assert [s.source for s in info.sources] == ["a"]
    assert info.min_time_us == T0
    assert info.max_time_us == T0 + 9 * MIN
    assert json.loads((part / "_manifest.json").read_text())["rows"] == 10  # persisted


# ------------------------------------------------------------------ kline panel table


def test_kline_panel_table_availability_vwap_and_funding(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = klines("BTCUSDT", 0, 600)
    t = t.set_column(6, "volume", pa.array(np.r_[0.0, t["volume"].to_numpy()[1:]]))
    store.write(t, "klines_1m")
    ft = pa.array([T0 + 17_000, T0 + 480 * MIN, T0 - 8 * 60 * MIN], pa.int64()).cast(schemas.TS)
    fund = pa.table(
        {
            "symbol": ["BTCUSDT"] * 3,
            "funding_time": ft,
            "funding_rate": [1e-4, -2e-4, 5.0],
            "mark_price": [1.0, 2.0, 3.0],
        }
    )
    store.write(fund, "funding")
    out = kline_panel_table(store, ["BTCUSDT"], start_us=T0 + MIN, end_us=T0 + 600 * MIN)
    ts = out["ts"].to_numpy()
    assert out.schema.field("ts").type == pa.int64()
    assert ts[0] == T0 + MIN  # bar opened at T0 becomes known at T0 + 1 minute
    assert len(ts) == 599
    vwap = out["vwap"].to_numpy()
    assert np.isnan(vwap[0])  # zero volume
    qv, vol = t["quote_volume"].to_numpy()[1:599], t["volume"].to_numpy()[1:599]
    np.testing.assert_allclose(vwap[1:], qv / vol, rtol=1e-15)
    fr = out["funding_paid"].to_numpy()
    assert fr[0] == 1e-4  # 00:00:00.017 -> first bar known at/after it: ts 00:01
    assert fr[ts == T0 + 480 * MIN][0] == -2e-4  # exactly on a bar close: that bar
    assert np.isnan(np.delete(fr, [0, np.flatnonzero(ts == T0 + 480 * MIN)[0]])).all()
    # the last settled rate per hour as of each bar: every 8 h here (inferred from the times)
    hourly = out["funding_rate"].to_numpy()
    np.testing.assert_allclose(hourly[ts < T0 + 480 * MIN], 1e-4 / 8, rtol=1e-12)
    np.testing.assert_allclose(hourly[ts >= T0 + 480 * MIN], -2e-4 / 8, rtol=1e-12)


# ------------------------------------------------------------------ hypothesis property

_write = st.tuples(st.integers(0, 90), st.integers(1, 40), st.sampled_from(["AAA", "BBB"]))


@settings(max_examples=25)
@given(st.lists(_write, min_size=1, max_size=5))
def test_any_sequence_of_overlapping_writes_equals_one_write_of_the_union(
    tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[int, int, str]]
) -> None:
    # start minutes near a month boundary (44,640 = Feb 1st) so writes span two partitions
    pieces = [klines(sym, 44_600 + start, n) for start, n, sym in writes]
    seq = Store(tmp_path_factory.mktemp("seq"))
    for p in pieces:
        seq.write(p, "klines_1m")
    one = Store(tmp_path_factory.mktemp("one"))
    one.write(pa.concat_tables(pieces), "klines_1m")
    a, b = seq.read("klines_1m"), one.read("klines_1m")
    assert a.equals(b)
    keys = {(s, start + i) for start, n, s in writes for i in range(n)}
    assert a.num_rows == len(keys)
    assert [p.rows for p in seq.partitions()] == [p.rows for p in one.partitions()]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-3, 3)), min_size=1, max_size=30))
def test_dedupe_sort_matches_a_dict_of_last_values(rows: list[tuple[int, int]]) -> None:
    t = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.int64()).cast(schemas.TS),
            "v": pa.array([r[1] for r in rows], pa.int64()),
            "seq": pa.array(range(len(rows)), pa.int64()),
        }
    )
    out = dedupe_sort(t, ["ts"], "ts")
    last = {}
    for i, (k, _) in enumerate(rows):
        last[k] = i
    assert out["seq"].to_pylist() == [last[k] for k in sorted(last)]


# ------------------------------------------------------------------ kill -9 mid-write

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from alphaforge.data import store as store_mod
    from tests.data.store_rows import klines
    import pyarrow as pa
    point, nth = sys.argv[2], int(sys.argv[3])
    seen = []
    def checkpoint(name):
        if name == point:
            seen.append(name)
            if len(seen) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
    if point not in ("timer", "none"):
        store_mod._checkpoint = checkpoint
    new = pa.concat_tables([klines("BTCUSDT", 40_000, 80_000, bump=3.0),
                            klines("ETHUSDT", 0, 20_000, bump=3.0)])
    print("go", flush=True)
    store_mod.Store(sys.argv[1]).write(new, "klines_1m", source="second")
    """
)


def _initial() -> pa.Table:
    return klines("BTCUSDT", 30_000, 30_000)


def _state(store: Store) -> dict[tuple[str, str], pa.Table]:
    t = store.read("klines_1m")
    out = {}
    for p in store.partitions("klines_1m"):
        ot = t["open_time"].cast(pa.int64()).to_numpy()
        m = (
            (np.asarray(t["symbol"].to_pylist()) == p.symbol)
            & (ot >= p.min_time_us)
            & (ot <= p.max_time_us)
        )
        out[(p.symbol, p.month)] = t.filter(pa.array(m))
        assert p.rows == out[(p.symbol, p.month)].num_rows  # manifest agrees with the data
    return out


@pytest.fixture(scope="module")
def expected_states(tmp_path_factory: pytest.TempPathFactory):
    before = Store(tmp_path_factory.mktemp("before"))
    before.write(_initial(), "klines_1m", source="first")
    after = Store(tmp_path_factory.mktemp("after"))
    after.write(_initial(), "klines_1m", source="first")
    after.write(
        pa.concat_tables(
            [klines("BTCUSDT", 40_000, 80_000, bump=3.0), klines("ETHUSDT", 0, 20_000, bump=3.0)]
        ),
        "klines_1m",
        source="second",
    )
    return _state(before), _state(after)


def _run_child(root: Path, point: str, nth: int, delay: float | None) -> int:
    script = root.parent / f"child_{point}_{nth}.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with subprocess.Popen(
        [sys.executable, str(script), str(root), point, str(nth)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "go"
        if delay is not None:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "nth", "delay"),
    [
        ("data_tmp_written", 1, None),
        ("pending_written", 1, None),
        ("data_replaced", 1, None),
        ("manifest_replaced", 2, None),
        ("data_replaced", 3, None),
        ("source_recorded", 1, None),
        ("timer", 0, 0.05),
        ("timer", 0, 0.25),
        ("timer", 0, 0.6),
    ],
)
def test_kill_9_mid_write_leaves_partitions_old_or_complete(
    tmp_path: Path, expected_states, point: str, nth: int, delay: float | None
) -> None:
    before, after = expected_states
    root = tmp_path / "store"
    store = Store(root)
    store.write(_initial(), "klines_1m", source="first")
    rc = _run_child(root, point, nth, delay)
    assert rc in (-signal.SIGKILL, 0)
    state = _state(store)  # also checks every manifest against its data file
    for key, table in state.items():
        assert table.equals(after[key]) or (key in before and table.equals(before[key])), key
    for key in before:
        assert key in state
    done = [k for k in after if k in state and state[k].equals(after[k])]
    if rc == 0 or point == "source_recorded":
        assert store.has_source("second")
    elif point != "timer":
        assert not store.has_source("second")
    if store.has_source("second"):  # recorded only once every partition is complete
        assert state.keys() == after.keys()
        assert all(state[k].equals(after[k]) for k in after)
    if point == "data_replaced":
        assert len(done) >= nth  # the killed partition's new file is in place
    # resume: writing the second table again completes the store exactly
    store.write(
        pa.concat_tables(
            [klines("BTCUSDT", 40_000, 80_000, bump=3.0), klines("ETHUSDT", 0, 20_000, bump=3.0)]
        ),
        "klines_1m",
        source="second",
    )
    final = _state(store)
    assert final.keys() == after.keys()
    assert all(final[k].equals(after[k]) for k in after)
    assert not list(root.rglob(".*.tmp"))
    assert not list(root.rglob("_manifest.pending.json"))


@given(
    st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 3 * 44_640)), max_size=40),
    st.booleans(),
)
def test_split_partitions_groups_rows_by_symbol_and_month(
    rows: list[tuple[str, int]], presort: bool
) -> None:
    if presort:
        rows = sorted(rows, key=lambda r: (r[0] != rows[0][0], r[1])) if rows else rows
    t = pa.table(
        {
            "symbol": pa.array([r[0] for r in rows], pa.string()),
            "ts": pa.array([T0 + r[1] * MIN for r in rows], pa.int64()).cast(schemas.TS),
            "i": pa.array(range(len(rows)), pa.int64()),
        }
    )
    seen = []
    for sym, month, part in split_partitions(t, "ts"):
        months = {
            str(np.datetime64(v, "us").astype("datetime64[M]"))
            for v in part["ts"].cast(pa.int64()).to_pylist()
        }
        assert months == {month}
        idx = part["i"].to_pylist()
        assert idx == sorted(idx)  # row order kept inside a partition
        assert all(rows[i][0] == sym for i in idx)
        seen += idx
    assert sorted(seen) == list(range(len(rows)))


@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 4)), max_size=12))
def test_sorted_by_symbol_time_matches_python(rows: list[tuple[str, int]]) -> None:
    t = pa.table(
        {
            "symbol": pa.array([r[0] for r in rows], pa.string()),
            "ts": pa.array([r[1] for r in rows], pa.int64()).cast(schemas.TS),
        }
    )
    assert sorted_by_symbol_time(t, "ts") == (rows == sorted(rows))
    # the same rows as a store read yields them: one batch per run of one symbol
    runs: list[list[tuple[str, int]]] = []
    for r in rows:
        if runs and runs[-1][0][0] == r[0]:
            runs[-1].append(r)
        else:
            runs.append([r])
    batches = [pa.record_batch([pa.array([x[0] for x in run], pa.string()),
                                pa.array([x[1] for x in run], pa.int64()).cast(schemas.TS)],
                               names=["symbol", "ts"]) for run in runs]  # fmt: skip
    if batches:
        assert sorted_by_symbol_time(pa.Table.from_batches(batches), "ts") == (rows == sorted(rows))


@pytest.mark.slow
def test_resume_write_right_after_a_kill_reconciles_under_its_own_lock(
    tmp_path: Path, expected_states
) -> None:
    _, after = expected_states
    root = tmp_path / "store"
    Store(root).write(_initial(), "klines_1m", source="first")
    assert _run_child(root, "data_replaced", 1, None) == -signal.SIGKILL
    # the next touch is a write (no listing first): it must reconcile the stale manifest
    # while holding the partition lock, not deadlock on it (timeout in _run_child)
    assert _run_child(root, "none", 0, None) == 0
    final = _state(Store(root))
    assert final.keys() == after.keys()
    assert all(final[k].equals(after[k]) for k in after)


def test_a_full_disk_is_a_store_error_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the data file is written: StoreError naming the partition, no temp file,
    the stored rows as before."""
    import errno
    import os

    store = Store(tmp_path)
    store.write(klines("BTCUSDT", 0, 100), "klines_1m")
    before = store.read("klines_1m")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    with pytest.raises(StoreError, match="No space left on device") as info:
        store.write(klines("BTCUSDT", 100, 200), "klines_1m")
    assert "BTCUSDT" in str(info.value)
    monkeypatch.undo()
    assert not list(tmp_path.rglob("*.tmp"))
    assert store.read("klines_1m").equals(before)


def _funding_oracle(bar_ts: np.ndarray, f_t: np.ndarray, f_r: np.ndarray, f_h: np.ndarray,
                    step: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One symbol's funding columns by the definition, bar by bar (bars ascending; settlement
    hours as given, else the gap to the previous settlement, the next one for the first)."""
    paid, hourly = np.full(bar_ts.size, np.nan), np.full(bar_ts.size, np.nan)
    gaps = np.diff(f_t) / 3.6e9
    inferred = np.round(np.concatenate([gaps[:1], gaps]), 3) if gaps.size else f_h
    hours = np.where(np.isfinite(f_h) & (f_h > 0), f_h, inferred)
    for i, t in enumerate(bar_ts):
        prev = bar_ts[i - 1] if i else bar_ts[0] - step
        due = (f_t > prev) & (f_t <= t)
        if due.any():
            paid[i] = f_r[due].sum()
        known = np.flatnonzero(f_t <= t)
        if known.size:
            hourly[i] = f_r[known[-1]] / hours[known[-1]]
    return paid, hourly


def test_panel_table_funding_matches_the_definition_in_any_row_order() -> None:
    """``panel_table_from_klines`` on a multi-symbol perpetual market: rows sorted by (symbol,
    ts) whatever the input order, and every bar's funding paid and hourly rate as a bar-by-bar
    reading of the definition gives them (a funding symbol without bars changes nothing; a
    symbol without funding gets NaN)."""
    from alphaforge.data.store_views import panel_table_from_klines
    from alphaforge.data.synthetic import generate_market

    m = generate_market(n_symbols=3, n_bars=2000, interval="5m", book_levels=0, seed=11,
                        funding_interval_h=4)  # fmt: skip
    step = 300_000_000
    syms = sorted(set(m.klines["symbol"].to_pylist()))
    funding = m.funding.filter(pa.compute.not_equal(m.funding["symbol"], syms[-1]))
    extra = funding.slice(0, 3).set_column(0, funding.schema.field("symbol"),
                                           pa.array(["ZZZUSDT"] * 3))  # fmt: skip
    funding = pa.concat_tables([extra, funding])
    perm = np.random.default_rng(5).permutation(m.klines.num_rows)
    out = panel_table_from_klines(m.klines, funding, step)
    shuffled = panel_table_from_klines(m.klines.take(pa.array(perm)), funding, step)
    assert shuffled.equals(out) or all(
        np.array_equal(out[c].to_numpy(zero_copy_only=False),
                       shuffled[c].to_numpy(zero_copy_only=False), equal_nan=c != "symbol")
        for c in out.column_names)  # fmt: skip
    sym = np.asarray(out["symbol"].to_pylist())
    ts = out["ts"].to_numpy()
    assert (sym[:-1] <= sym[1:]).all()
    for s in syms:
        rows = sym == s
        assert (np.diff(ts[rows]) > 0).all()
        f = funding.filter(pa.compute.equal(funding["symbol"], s))
        f_t = f["funding_time"].cast(pa.int64()).to_numpy()
        f_r = f["funding_rate"].to_numpy()
        f_h = f["funding_interval_hours"].to_numpy(zero_copy_only=False).astype(np.float64)
        o = np.argsort(f_t, kind="stable")
        paid, hourly = _funding_oracle(ts[rows], f_t[o], f_r[o], f_h[o], step)
        np.testing.assert_array_equal(out["funding_paid"].to_numpy()[rows], paid)
        np.testing.assert_array_equal(out["funding_rate"].to_numpy()[rows], hourly)
    assert np.isnan(out["funding_paid"].to_numpy()[sym == syms[-1]]).all()
