"""The store on S3-compatible object storage (a moto server on loopback): round trips, merges,
manifests, SQL, ingest of real files, concurrent writers and kill -9 mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from alphaforge.data import ingest
from alphaforge.data.errors import StoreError
from alphaforge.data.object_store import ObjectStore
from alphaforge.data.sql import query
from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from tests.conftest import ROOT
from tests.data.store_rows import klines


def _pair(tmp_path: Path, s3) -> tuple[Store, Store]:
    return Store(tmp_path / "local"), open_store(f"s3://{s3.bucket()}/af")


def test_open_store_picks_the_object_store(s3_env) -> None:
    st = open_store(f"s3://{s3_env.bucket()}/some/prefix")
    assert isinstance(st, ObjectStore)
    assert st.uri.endswith("/some/prefix")
    assert "testing" not in repr(st)
    assert "testing" not in repr(st.ofs.cfg)


def test_writes_merges_and_reads_equal_the_local_store(tmp_path: Path, s3_env) -> None:
    local, remote = _pair(tmp_path, s3_env)
    first = pa.concat_tables([klines("BTCUSDT", 0, 50_000), klines("ETHUSDT", 10_000, 5_000)])
    second = klines("BTCUSDT", 40_000, 30_000, bump=2.0)  # overlaps: the newer rows win
    for st in (local, remote):
        r1 = st.write(first, "klines_1m", source="first")
        r2 = st.write(second, "klines_1m", source="second")
        assert r1.rows_added == 55_000
        assert r2.rows_added == 20_000
    assert remote.read("klines_1m").equals(local.read("klines_1m"))
    q = {
        "symbols": ["BTCUSDT"],
        "start_us": klines("X", 30_000, 1)["open_time"][0].value,
        "end_us": klines("X", 61_000, 1)["open_time"][0].value,
        "columns": ["open_time", "close"],
    }
    assert remote.read("klines_1m", **q).equals(local.read("klines_1m", **q))
    lp, rp = local.partitions("klines_1m"), remote.partitions("klines_1m")
    assert [(p.symbol, p.month, p.rows, p.min_time_us, p.max_time_us) for p in lp] == [
        (p.symbol, p.month, p.rows, p.min_time_us, p.max_time_us) for p in rp
    ]
    assert {p.tier for p in rp} == {"cold"}
    assert all(p.location.startswith("s3://") for p in rp)
    assert [s.source for s in rp[0].sources] == ["first", "second"]
    assert remote.datasets() == ["klines_1m"]
    assert remote.has_source("second")
    assert not remote.has_source("third")
    # an identical rewrite adds nothing and stores no new data object
    again = remote.write(second, "klines_1m", source="second")
    assert again.rows_added == 0
    assert again.skipped == len(again.partitions)
    assert remote.read("klines_1m").equals(local.read("klines_1m"))


def test_old_generations_are_cleaned_up(s3_env) -> None:
    st = open_store(f"s3://{s3_env.bucket()}/af")
    assert isinstance(st, ObjectStore)
    for i in range(5):
        st.write(klines("BTCUSDT", i * 100, 100), "klines_1m", source=f"w{i}")
    rel = "exchange=binance/market=usdm/dataset=klines_1m/symbol=BTCUSDT/month=2024-01"
    names = [r.rsplit("/", 2)[-2:] for r, _ in st.ofs.list_files(rel)]
    manifests = [n for n in names if n[0] == "_manifest"]
    data = [n for n in names if n[1].startswith("data-")]
    assert len(manifests) == 2
    assert len(data) == 2
    assert st.read("klines_1m").num_rows == 500


def test_a_drop_cut_short_never_exposes_an_older_generation(
    s3_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = open_store(f"s3://{s3_env.bucket()}/af")
    assert isinstance(st, ObjectStore)
    for i in range(3):
        st.write(klines("BTCUSDT", i * 100, 100), "klines_1m", source=f"w{i}")
    head = st.read("klines_1m")
    (info,) = st.partitions("klines_1m")
    real_delete = type(st.ofs).delete

    def first_then_die(self, rels):  # the drop is killed after its first deletion
        rels = list(rels)
        real_delete(self, rels[:1])
        raise KeyboardInterrupt

    monkeypatch.setattr(type(st.ofs), "delete", first_then_die)
    with pytest.raises(KeyboardInterrupt):
        st.drop_partition(info)
    monkeypatch.setattr(type(st.ofs), "delete", real_delete)
    assert st.read("klines_1m").equals(head)
    assert st.partitions("klines_1m")[0].generation == info.generation


def test_validation_status_is_a_new_generation(s3_env) -> None:
    st = open_store(f"s3://{s3_env.bucket()}/af")
    st.write(klines("BTCUSDT", 0, 100), "klines_1m", source="a")
    (p,) = st.partitions("klines_1m")
    q = st.set_validation(p, "passed", {"issues": 0})
    assert q.generation == p.generation + 1
    (p2,) = st.partitions("klines_1m")
    assert p2.validation_status == "passed"
    assert p2.rows == 100


def test_a_changed_data_object_is_refused_not_merged(s3_env) -> None:
    st = open_store(f"s3://{s3_env.bucket()}/af")
    assert isinstance(st, ObjectStore)
    st.write(klines("BTCUSDT", 0, 100), "klines_1m", source="a")
    ((rel, _),) = st._selected("klines_1m", "binance", "usdm", None)
    (name,) = [r for r, _ in st.ofs.list_files(rel) if "/data-" in r]
    st.ofs.put(name, b"not parquet")
    with pytest.raises(StoreError, match="sha256 differs"):
        st.write(klines("BTCUSDT", 50, 100), "klines_1m", source="b")


def test_unsupported_scheme_names_the_uri() -> None:
    with pytest.raises(StoreError, match="unsupported scheme 'gs'"):
        open_store("gs://bucket/x")


def test_sql_over_the_object_store(tmp_path: Path, s3_env) -> None:
    local, remote = _pair(tmp_path, s3_env)
    rows = pa.concat_tables([klines("BTCUSDT", 0, 3_000), klines("ETHUSDT", 0, 2_000)])
    for st in (local, remote):
        st.write(rows, "klines_1m", source="x")
    sql = (
        "select symbol, count(*) n, round(avg(close), 6) c from klines_1m "
        "where month = '2024-01' group by symbol order by symbol"
    )
    assert query(remote.uri, sql).to_pylist() == query(local.uri, sql).to_pylist()
    assert query(remote.uri, sql).to_pylist()[0]["n"] == 3_000


def test_ingest_real_archive_files_into_the_object_store(
    tmp_path: Path, s3_env, real_dir: Path
) -> None:
    files = [real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz"]
    local, remote = _pair(tmp_path, s3_env)
    for st in (local, remote):
        rep = ingest.ingest(st, files, market="usdm")
        assert not rep.failed
    a, b = local.read("klines_1m"), remote.read("klines_1m")
    assert a.num_rows > 20_000
    assert a.equals(b)
    assert remote.holds_source(
        local.partitions("klines_1m")[0].sources[0].sha256 or "",
        "klines_1m",
        "binance",
        "usdm",
        "DOTUSDT",
        "2026-02",
    )


# ------------------------------------------------------------------ writers in other processes

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from alphaforge.data import store as store_mod
    from alphaforge.data.store_open import open_store
    from tests.data.store_rows import klines
    import pyarrow as pa
    uri, point, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def checkpoint(name):
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)
    store_mod._checkpoint = checkpoint
    st = open_store(uri)
    print("go", flush=True)
    for i in range(int(sys.argv[4])):
        rows = pa.concat_tables([klines("BTCUSDT", seed * 10_000 + i * 500, 500, seed=seed),
                                 klines("ETHUSDT", seed * 10_000 + i * 500, 500, seed=seed)])
        st.write(rows, "klines_1m", source=f"writer{seed}-{i}")
    print("done", flush=True)
    """
)


def _writer(tmp_path: Path, s3, uri: str, point: str, seed: int, n: int) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(ROOT), **s3.env)
    return subprocess.Popen([sys.executable, str(script), uri, point, str(seed), str(n)],
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip


@pytest.mark.slow
def test_two_writers_at_once_both_land(tmp_path: Path, s3_env) -> None:
    uri = f"s3://{s3_env.bucket()}/af"
    procs = [_writer(tmp_path, s3_env, uri, "none", seed, 8) for seed in (1, 2)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        assert out.split() == ["go", "done"]
    st = open_store(uri)
    t = st.read("klines_1m")
    expect = pa.concat_tables(
        [
            klines(s, seed * 10_000, 4_000, seed=seed)
            for s in ("BTCUSDT", "ETHUSDT")
            for seed in (1, 2)
        ]
    )
    local = Store(tmp_path / "expect")
    local.write(expect, "klines_1m")
    want = local.read("klines_1m")
    keys = [set(zip(x["symbol"].to_pylist(), x["open_time"].cast(pa.int64()).to_pylist(),
                    strict=True)) for x in (t, want)]  # fmt: skip
    chain = [(p.symbol, p.generation, [s.source for s in p.sources])
             for p in st.partitions("klines_1m")]  # fmt: skip
    assert t.equals(want), (f"{len(keys[1] - keys[0])} rows missing, {len(keys[0] - keys[1])} "
                            f"extra; manifests now: {chain}")  # fmt: skip
    srcs = {s.source for p in st.partitions("klines_1m") for s in p.sources}
    assert srcs == {f"writer{k}-{i}" for k in (1, 2) for i in range(8)}


def test_a_slow_writer_never_commits_into_a_collected_generation(
    s3_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that read generation g, then stalled while another writer committed g+1..g+3
    (whose cleanup deleted manifest g+1), must not 'create' g+1 again below the head: its
    conditional create succeeds on the freed name, so the commit has to see the newer head and
    merge again, or its rows would be reported stored and never read."""
    from alphaforge.data import store as store_mod

    uri = f"s3://{s3_env.bucket()}/af"
    slow, fast = open_store(uri), open_store(uri)
    slow.write(klines("BTCUSDT", 0, 100), "klines_1m", source="base")
    stalled = []

    def stall(name: str) -> None:
        if name == "data_tmp_written" and not stalled:
            stalled.append(name)  # the slow writer is between its upload and its commit
            for i in range(3):
                fast.write(klines("BTCUSDT", 1_000 * (i + 1), 100), "klines_1m",
                           source=f"fast{i}")  # fmt: skip

    monkeypatch.setattr(store_mod, "_checkpoint", stall)
    slow.write(klines("BTCUSDT", 10_000, 100), "klines_1m", source="slow")
    assert stalled
    got = open_store(uri).read("klines_1m")
    assert got.num_rows == 500
    (part,) = open_store(uri).partitions("klines_1m")
    assert {s.source for s in part.sources} == {"base", "slow", "fast0", "fast1", "fast2"}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["data_tmp_written", "manifest_replaced", "source_recorded"])
def test_kill_9_mid_write_leaves_the_object_store_old_or_complete(
    tmp_path: Path, s3_env, point: str
) -> None:
    uri = f"s3://{s3_env.bucket()}/af"
    st = open_store(uri)
    st.write(klines("BTCUSDT", 0, 20_000), "klines_1m", source="first")
    before = st.read("klines_1m")
    proc = _writer(tmp_path, s3_env, uri, point, 0, 1)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    after = st.read("klines_1m")
    new = pa.concat_tables([klines("BTCUSDT", 0, 500), klines("ETHUSDT", 0, 500)])
    # each partition is as before or complete: BTC rows 0..499 rewritten with equal values
    btc = after.filter(pa.compute.equal(after["symbol"], "BTCUSDT"))
    assert btc.equals(before)
    eth = after.filter(pa.compute.equal(after["symbol"], "ETHUSDT"))
    assert eth.num_rows in (0, 500)
    if point == "data_tmp_written":
        assert eth.num_rows == 0 or eth.equals(
            new.filter(pa.compute.equal(new["symbol"], "ETHUSDT"))
        )
    for p in st.partitions("klines_1m"):  # every manifest agrees with its data
        part = after.filter(pa.compute.equal(after["symbol"], p.symbol))
        assert p.rows == part.num_rows
    # the next write completes on top of whatever the kill left
    st.write(new, "klines_1m", source="retry")
    assert st.read("klines_1m", symbols=["ETHUSDT"]).num_rows == 500
    assert np.all(
        np.diff(st.read("klines_1m", symbols=["BTCUSDT"])["open_time"].cast(pa.int64()).to_numpy())
        > 0
    )


def test_cli_validate_and_store_info_on_the_object_store(s3_env, real_dir: Path) -> None:
    import json

    from typer.testing import CliRunner

    from alphaforge.cli import app

    uri = f"s3://{s3_env.bucket()}/af"
    f = real_dir / "binance_futures_klines" / "LINKUSDT-1m-2026-02.csv.gz"
    runner = CliRunner()
    ing = runner.invoke(app, ["ingest", str(f), "--store", uri, "--market", "usdm", "--json"])
    assert ing.exit_code == 0, ing.output
    val = runner.invoke(app, ["validate", "--store", uri, "--dataset", "klines_1m", "--json"])
    assert val.exit_code in (0, 1), val.output  # 1: findings at --fail-on, not a crash
    info = runner.invoke(app, ["store", "info", "klines_1m", "--store", uri, "--json"])
    doc = json.loads(info.stdout)
    (part,) = doc["partitions"]
    assert part["validation_status"] in ("passed", "warnings", "failed")
    assert part["tier"] == "cold"
    assert part["location"].startswith(uri)
    assert doc["store"] == uri
