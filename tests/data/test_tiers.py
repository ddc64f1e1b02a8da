"""Hot/warm/cold tiers: a local store with a cold tier on an S3 server started by the tests
(moto on loopback); placement by policy, transparent reads and SQL, resumable verified moves
(kill -9 at every step of a move), the hot read cache, and the CLI (`store ls`, `store tier`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from alphaforge.data.hot_cache import HotCache
from alphaforge.data.object_store import ObjectStore
from alphaforge.data.sql import query
from alphaforge.data.storage_config import load_storage_config
from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from alphaforge.data.tier_move import move_tiers
from alphaforge.data.tiered_store import TieredStore, policy_tier
from tests.conftest import ROOT
from tests.data.store_rows import klines

DAY_MIN = 1440
JULY_15 = int(dt.datetime(2024, 7, 15, tzinfo=dt.UTC).timestamp() * 1e6)


def _rows() -> pa.Table:
    """Six months (2024-01..06) of BTCUSDT, 2024-04-30..06-09 of ETHUSDT: 9 partitions."""
    return pa.concat_tables([klines("BTCUSDT", 0, 182 * DAY_MIN),
                             klines("ETHUSDT", 120 * DAY_MIN, 40 * DAY_MIN, seed=3)])  # fmt: skip


def _tiered(tmp_path: Path, s3, warm_days: int = 60, now_us: int = JULY_15,
            bucket: str | None = None) -> TieredStore:  # fmt: skip
    cfg = load_storage_config()
    cold = ObjectStore(f"s3://{bucket or s3.bucket()}/cold", cfg)
    return TieredStore(Store(tmp_path / "warm"), cold, cfg.__class__(
        **{**cfg.__dict__, "warm_days": warm_days}), now_us=now_us)  # fmt: skip


def _tiers(st: Store) -> dict[tuple[str, str], str]:
    return {(p.symbol, p.month): p.tier for p in st.partitions("klines_1m")}


def test_policy_by_month_end() -> None:
    assert policy_tier("2024-06", 60, JULY_15) == "warm"
    assert policy_tier("2024-05", 60, JULY_15) == "warm"  # ends 06-01, after 05-16
    assert policy_tier("2024-04", 60, JULY_15) == "cold"  # ends 05-01
    assert (
        policy_tier("2024-04", 0, int(dt.datetime(2024, 5, 1, tzinfo=dt.UTC).timestamp() * 1e6))
        == "warm"
    )


def test_writes_follow_the_policy_and_reads_span_both_tiers(tmp_path: Path, s3_env) -> None:
    st = _tiered(tmp_path, s3_env)
    plain = Store(tmp_path / "plain")
    for s in (st, plain):
        s.write(_rows(), "klines_1m", source="rows")
    tiers = _tiers(st)
    assert tiers[("BTCUSDT", "2024-01")] == "cold"
    assert tiers[("BTCUSDT", "2024-04")] == "cold"
    assert tiers[("BTCUSDT", "2024-05")] == "warm"
    assert tiers[("ETHUSDT", "2024-06")] == "warm"
    assert st.read("klines_1m").equals(plain.read("klines_1m"))
    q = {
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "start_us": klines("X", 100 * DAY_MIN, 1)["open_time"][0].value,
        "end_us": klines("X", 160 * DAY_MIN, 1)["open_time"][0].value,
        "columns": ["close", "volume"],
    }
    assert st.read("klines_1m", **q).equals(plain.read("klines_1m", **q))
    # a later write into a cold month merges there
    st.write(klines("BTCUSDT", 10, 5, bump=9.0), "klines_1m", source="fix")
    plain.write(klines("BTCUSDT", 10, 5, bump=9.0), "klines_1m", source="fix")
    assert _tiers(st)[("BTCUSDT", "2024-01")] == "cold"
    assert st.read("klines_1m").equals(plain.read("klines_1m"))
    sql = (
        "select symbol, month, count(*) n, sum(close) c from klines_1m group by 1, 2 order by 1, 2"
    )
    assert query(st, sql).to_pylist() == query(plain.uri, sql).to_pylist()


def test_moves_both_ways_keep_every_row(tmp_path: Path, s3_env) -> None:
    st = _tiered(tmp_path, s3_env)
    st.write(_rows(), "klines_1m", source="rows")
    expect = st.read("klines_1m")
    later = _tiered(tmp_path, s3_env, now_us=JULY_15 + 200 * 86_400_000_000,
                    bucket=st.cold.ofs.bucket)  # fmt: skip
    plan = move_tiers(later, dry_run=True)
    assert {m.action for m in plan.moves} == {"planned"}
    rep = move_tiers(later)
    assert len(rep.moves) == len(plan.moves) == 4  # BTCUSDT and ETHUSDT, 2024-05 and 2024-06
    assert set(_tiers(later).values()) == {"cold"}
    assert later.read("klines_1m").equals(expect)
    assert not list((tmp_path / "warm").rglob("part-0.parquet"))
    back = _tiered(tmp_path, s3_env, warm_days=10_000, bucket=st.cold.ofs.bucket)
    rep2 = move_tiers(back)
    assert len(rep2.moves) == len(_tiers(back))
    assert set(_tiers(back).values()) == {"warm"}
    assert back.read("klines_1m").equals(expect)
    assert back.cold.partitions() == []
    assert move_tiers(back).moves == []  # nothing left to do


MOVER = textwrap.dedent(
    """
    import os, signal, sys
    from alphaforge.data import store as store_mod
    from alphaforge.data.object_store import ObjectStore
    from alphaforge.data.storage_config import load_storage_config
    from alphaforge.data.store import Store
    from alphaforge.data.tier_move import move_tiers
    from alphaforge.data.tiered_store import TieredStore
    warm, cold, point = sys.argv[1], sys.argv[2], sys.argv[4]
    days, nth, now_us = int(sys.argv[3]), int(sys.argv[5]), int(sys.argv[6])
    seen = []
    def checkpoint(name):
        if name == point:
            seen.append(name)
            if len(seen) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
    store_mod._checkpoint = checkpoint
    cfg = load_storage_config()
    cfg = cfg.__class__(**{**cfg.__dict__, "warm_days": days})
    st = TieredStore(Store(warm), ObjectStore(cold, cfg), cfg, now_us=now_us)
    move_tiers(st)
    print("done", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("days", "point", "nth"),
    [
        (0, "tier_data_copied", 1),
        (0, "tier_cold_committed", 2),
        (0, "warm_data_dropped", 1),
        (10_000, "tier_warm_committed", 1),
        (10_000, "tier_warm_committed", 3),
    ],
)
def test_kill_9_during_a_move_leaves_the_store_complete_and_the_move_resumable(
    tmp_path: Path, s3_env, days: int, point: str, nth: int
) -> None:
    st = _tiered(tmp_path, s3_env)
    st.write(_rows(), "klines_1m", source="rows")
    expect = st.read("klines_1m")
    script = tmp_path / "mover.py"
    script.write_text(MOVER)
    env = dict(os.environ, PYTHONPATH=str(ROOT), **s3_env.env)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "warm"), st.cold.uri,
                           str(days), point, str(nth), str(JULY_15)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    again = _tiered(tmp_path, s3_env, warm_days=days, bucket=st.cold.ofs.bucket)
    assert again.read("klines_1m").equals(expect)  # complete at the kill
    keys = {(p.symbol, p.month) for p in again.partitions("klines_1m")}
    assert len(keys) == len(again.partitions("klines_1m")) == 9
    rep = move_tiers(again)  # the rerun finishes the job
    want = "cold" if days == 0 else "warm"
    assert set(_tiers(again).values()) == {want}
    assert again.read("klines_1m").equals(expect)
    warm, cold = again.copies()
    assert len(warm if want == "warm" else cold) == 9
    assert (cold if want == "warm" else warm) == []
    if point in ("tier_cold_committed", "tier_warm_committed"):  # both copies at the kill
        assert "resumed" in {m.action for m in rep.moves}


def test_hot_cache_serves_repeated_cold_reads_and_never_a_stale_one(tmp_path: Path, s3_env) -> None:
    st = _tiered(tmp_path, s3_env, warm_days=0)
    st.hot = HotCache(tmp_path / "hot", 50_000_000)
    st.write(_rows(), "klines_1m", source="rows")
    first = st.read("klines_1m", symbols=["ETHUSDT"])
    assert len(st.hot.entries()) == 1
    again = st.read("klines_1m", symbols=["ETHUSDT"])
    assert again.equals(first)
    assert len(st.hot.entries()) == 1  # served from the cache
    st.write(klines("ETHUSDT", 120 * DAY_MIN, 3, bump=5.0), "klines_1m", source="fix")
    changed = st.read("klines_1m", symbols=["ETHUSDT"])
    assert not changed.equals(first)  # a write makes a new key: the cached read is not reused
    assert (
        changed.slice(0, 3)["close"].to_pylist()
        == klines("E", 120 * DAY_MIN, 3, bump=5.0)["close"].to_pylist()
    )
    small = HotCache(tmp_path / "small", 1)
    small.put("a", first)
    assert small.entries() == []  # larger than its bound: evicted at once


def _cli(*args: str, env: dict[str, str]) -> Any:
    """``alphaforge ARGS`` in this process (typer's runner), with ``env`` set."""
    from typer.testing import CliRunner

    from alphaforge.cli import app

    return CliRunner().invoke(app, list(args), env=env)


def test_cli_store_ls_and_tier_on_a_tiered_store(tmp_path: Path, s3_env) -> None:
    bucket = s3_env.bucket()
    env = dict(s3_env.env, ALPHAFORGE_COLD_STORE=f"s3://{bucket}/cold",
               ALPHAFORGE_WARM_DAYS="100000", ALPHAFORGE_STORE=str(tmp_path / "st"),
               ALPHAFORGE_CONFIG=str(tmp_path / "none.toml"))  # fmt: skip
    Store(tmp_path / "st").write(_rows(), "klines_1m", source="rows")  # all warm
    ls = json.loads(_cli("store", "ls", "--json", env=env).stdout)
    assert [t["tier"] for t in ls["tiers"]] == ["warm"]
    assert ls["datasets"][0]["tiers"] == {"warm": 9}
    env["ALPHAFORGE_WARM_DAYS"] = "0"
    dry = _cli("store", "tier", "--dry-run", "--json", env=env)
    assert dry.exit_code == 0, dry.output
    assert len(json.loads(dry.stdout)["moves"]) == 9
    run = _cli("store", "tier", "--json", env=env)
    assert run.exit_code == 0, run.output
    doc = json.loads(run.stdout)
    assert {m["action"] for m in doc["moves"]} == {"moved"}
    assert "[9/9] done" in run.stderr
    ls = json.loads(_cli("store", "ls", "--json", env=env).stdout)
    (cold,) = ls["tiers"]
    assert cold["tier"] == "cold"
    assert cold["partitions"] == 9
    assert cold["usd_per_month"] == pytest.approx(cold["bytes"] / 1e9 * 0.023)
    assert "testing" not in run.stdout + run.stderr  # the secret key is never printed
    sql = _cli("sql", "select count(*) n from klines_1m", "--json", env=env)
    assert json.loads(sql.stdout) == [{"n": _rows().num_rows}]
    plain = _cli("store", "tier", "--json", env=dict(env, ALPHAFORGE_COLD_STORE=""))
    assert plain.exit_code != 0
    assert "no cold tier" in json.loads(plain.stdout)["error"]


def test_open_store_builds_the_tiers_from_the_config(tmp_path: Path, s3_env, monkeypatch) -> None:
    monkeypatch.setenv("ALPHAFORGE_COLD_STORE", f"s3://{s3_env.bucket()}/c")
    monkeypatch.setenv("ALPHAFORGE_HOT_DIR", str(tmp_path / "hot"))
    st = open_store(tmp_path / "x")
    assert isinstance(st, TieredStore)
    assert st.hot is not None
    assert st.cold.uri.endswith("/c")
