"""pull(): archive + REST into the store; faults, resume, kill -9, checksum mismatch, real files."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import alphaforge.data.store as store_mod
from alphaforge.data.archive_fetch import ArchiveClient
from alphaforge.data.binance_rest import BinanceRest
from alphaforge.data.errors import ChecksumMismatch, SchemaError, UnknownSymbol
from alphaforge.data.http import RetryPolicy
from alphaforge.data.pull import PullProgress, dataset_partition, parse_time_us, pull
from alphaforge.data.store import Store
from tests.data.fake_binance import FakeBinance, add_kline_archive, read_text
from tests.data.test_archive import _plain_parse, assert_klines_equal

ROOT = Path(__file__).resolve().parents[2]
JUNE = "binance_futures_klines/AVAXUSDT-1m-2026-06.csv.gz"
JULY = "binance_futures_klines/AVAXUSDT-1m-2026-07.csv.gz"
NOW = datetime(2026, 7, 3, 12, 0, 30, tzinfo=UTC).timestamp()  # 30 s into the 12:00 bar
START, END = "2026-06-28", None  # 3 June days + 2 July days from daily zips, then REST


def us(text: str) -> int:
    return parse_time_us(text)


@pytest.fixture(scope="module")
def fake(real_dir: Path) -> Iterator[FakeBinance]:
    f = FakeBinance()
    add_kline_archive(f, "usdm", "AVAXUSDT", "1m", read_text(real_dir / JUNE))
    add_kline_archive(f, "usdm", "AVAXUSDT", "1m", read_text(real_dir / JULY))
    with f:
        yield f


@pytest.fixture(autouse=True)
def _reset(fake: FakeBinance) -> Iterator[None]:
    fake.faults.clear()
    fake.log.clear()
    yield
    fake.faults.clear()


def clients(fake: FakeBinance, now: float = NOW, read_s: float = 3.0) -> dict[str, object]:
    retry = RetryPolicy(max_retries=6, backoff_base_s=0.001, backoff_cap_s=0.01)
    rest = BinanceRest("usdm", base_url=fake.url, clock=lambda: now, retry=retry, page_limit=100,
                       timeout_s=(2.0, read_s), rng=random.Random(3))  # fmt: skip
    archive = ArchiveClient(fake.url, retry=retry, timeout_s=(2.0, read_s))
    return {"rest": rest, "archive": archive, "clock": lambda: now}


def run(store: Store, fake: FakeBinance, read_s: float = 3.0, **kw: object):  # type: ignore[no-untyped-def]
    args = {"source": "auto", "market": "usdm", "dataset": "klines", "symbols": ["AVAXUSDT"],
            "interval": "1m", "start": START, "end": END, "flush_rows": 300}  # fmt: skip
    args.update(kw)
    return pull(store, **clients(fake, read_s=read_s), **args)  # type: ignore[arg-type]


def content(store: Store) -> pa.Table:
    return store.read("klines_1m", "binance", "usdm", ["AVAXUSDT"])


@pytest.fixture(scope="module")
def clean(fake: FakeBinance, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    store = Store(tmp_path_factory.mktemp("clean"))
    run(store, fake)
    return content(store)


@pytest.mark.shared
def test_clean_pull_archive_then_rest_tail(fake: FakeBinance, tmp_path: Path,
                                           real_dir: Path) -> None:  # fmt: skip
    events: list[PullProgress] = []
    rep = run(Store(tmp_path), fake, progress=events.append)
    got = content(Store(tmp_path))
    assert rep.files_downloaded == 5  # 06-28 .. 07-02 daily zips; July's monthly is not out yet
    zips = [p for p, _, _ in fake.log if p.endswith(".zip")]
    assert all("/daily/" in p for p in zips)
    assert got.num_rows == 5 * 1440 + 12 * 60  # + REST 07-03 00:00 .. 11:59 (12:00 is open)
    june = pa.concat_tables([_rows(real_dir / JUNE), _rows(real_dir / JULY)])
    ts = june.column("open_time").cast(pa.int64()).to_numpy()
    want = june.filter(pa.array((ts >= us("2026-06-28")) & (ts < us("2026-07-03T12:00"))))
    assert got.equals(want)
    assert rep.rows_added == got.num_rows
    assert events[-1].stage == "done"
    assert events[-1].rows == rep.rows_fetched
    assert events[-1].bytes > 0
    assert events[-1].rate is not None
    assert events[-1].rate.limit == 2400


def _rows(path: Path) -> pa.Table:
    from alphaforge.data.archive import read_archive_csv

    return read_archive_csv(path, "klines", "AVAXUSDT")


@pytest.mark.shared
def test_resume_downloads_nothing_twice(fake: FakeBinance, tmp_path: Path,
                                        clean: pa.Table) -> None:  # fmt: skip
    store = Store(tmp_path)
    run(store, fake)
    fake.log.clear()
    rep = run(store, fake)
    assert rep.rows_added == 0
    assert rep.files_skipped == 5
    assert not [p for p, _, _ in fake.log if p.endswith(".zip")]
    klines = [q for p, q, _ in fake.log if p == "/fapi/v1/klines"]
    assert len(klines) == 1
    assert int(klines[0]["startTime"]) == us("2026-07-03T12:00") // 1000  # the first hole
    assert content(store).equals(clean)


@pytest.mark.shared
def test_an_earlier_starting_second_pull_fills_the_front(fake: FakeBinance, tmp_path: Path,
                                                        real_dir: Path) -> None:  # fmt: skip
    """Stored rows are not a prefix of the new range: the pull fetches the front it lacks."""
    store = Store(tmp_path)
    run(store, fake, source="rest", start="2026-07-02")
    run(store, fake, source="rest", start="2026-07-01")
    ref = Store(tmp_path / "ref")
    run(ref, fake, source="rest", start="2026-07-01")
    got = content(store)
    assert got.num_rows == 2 * 1440 + 12 * 60
    assert got.equals(content(ref))


@pytest.mark.shared
@pytest.mark.parametrize("damage", ["delete", "overwrite"])
def test_a_deleted_or_damaged_partition_is_restored(
    fake: FakeBinance, tmp_path: Path, clean: pa.Table, damage: str
) -> None:
    store = Store(tmp_path)
    run(store, fake)
    (june,) = [p.path for p in store.partitions("klines_1m") if p.month == "2026-06"]
    if damage == "delete":
        shutil.rmtree(june)
    else:
        data = next(june.glob("*.parquet"))
        pq.write_table(pq.read_table(data).slice(0, 10), data)  # fewer rows, new fingerprint
    assert not content(store).equals(clean)
    rep = run(store, fake)
    assert rep.files_downloaded == 3  # 06-28, 06-29, 06-30 fetched again
    assert content(store).equals(clean)


@pytest.mark.shared
def test_pull_with_faults_equals_clean_pull(fake: FakeBinance, tmp_path: Path,
                                            clean: pa.Table) -> None:  # fmt: skip
    for prefix, kind in [("/data/", "truncate"), ("/data/", "503"), ("/data/", "slow"),
                         ("/fapi/v1/klines", "overlap"), ("/fapi/v1/klines", "repeat"),
                         ("/fapi/v1/klines", "429"), ("/fapi/v1/klines", "502"),
                         ("/fapi/v1/klines", "truncate"), ("/data/", "500")]:  # fmt: skip
        fake.add_fault(prefix, kind, retry_after=0.01, delay_s=1.2)
    store = Store(tmp_path)
    rep = run(store, fake, read_s=0.6)
    assert not fake.faults  # every fault was served
    assert content(store).equals(clean)
    assert rep.rate["retries"] == 3  # 429, 502 and the truncated page; overlap/repeat are absorbed


@pytest.mark.shared
def test_checksum_mismatch_writes_nothing_and_names_the_file(fake: FakeBinance,
                                                             tmp_path: Path) -> None:  # fmt: skip
    store = Store(tmp_path)
    fake.add_fault("/data/futures/um/monthly/klines/AVAXUSDT/1m/AVAXUSDT-1m-2026-06.zip.CHECKSUM",
                   "bad_checksum")  # fmt: skip
    with pytest.raises(ChecksumMismatch, match=r"AVAXUSDT-1m-2026-06\.zip"):
        run(store, fake, start="2026-06-01", end="2026-07-01")
    assert content(store).num_rows == 0
    assert not list(tmp_path.rglob("*.parquet"))
    assert not list(tmp_path.rglob("month=2026-06"))


@pytest.mark.shared
@pytest.mark.parametrize(("fault", "message"), [
    ("wrong_member", r"AVAXUSDT-1m-2026-06\.zip: the zip holds 'NEARUSDT-1m-2026-06\.csv'"),
    ("corrupt_zip", r"AVAXUSDT-1m-2026-06\.zip(!\S+)?: corrupt or truncated archive"),
])  # fmt: skip
def test_mislabelled_or_corrupt_archive_is_an_error_naming_it(
    fake: FakeBinance, tmp_path: Path, fault: str, message: str
) -> None:
    store = Store(tmp_path)
    # both requests of the file (.CHECKSUM, then the zip) get the fault
    fake.add_fault("/data/futures/um/monthly/klines/AVAXUSDT/1m/AVAXUSDT-1m-2026-06.zip", fault,
                   count=2)  # fmt: skip
    with pytest.raises(SchemaError, match=message):
        run(store, fake, start="2026-06-01", end="2026-07-01")
    fake.faults.clear()
    assert content(store).num_rows == 0
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.shared
def test_archive_only_reports_gaps_and_rest_only(fake: FakeBinance, tmp_path: Path,
                                                 clean: pa.Table) -> None:  # fmt: skip
    a = Store(tmp_path / "a")
    rep = run(a, fake, source="archive")
    assert rep.gaps == [("AVAXUSDT", us("2026-07-03"), int(NOW * 1e6))]
    assert content(a).num_rows == 5 * 1440
    # the completeness ledger: the closed bars of 07-03 (until the open 12:00 bar) are missing
    assert rep.missing == [("AVAXUSDT", us("2026-07-03"), us("2026-07-03T12:00"))]
    assert rep.to_dict()["complete"] is False
    b = Store(tmp_path / "b")
    fake.log.clear()
    rep = run(b, fake, source="rest")
    assert rep.missing == []
    assert rep.to_dict()["complete"] is True
    assert rep.files_downloaded == 0
    assert content(b).equals(clean)
    assert not [p for p, _, _ in fake.log if p.startswith("/data/")]


@pytest.mark.shared
def test_missing_archive_file_falls_back_to_rest(fake: FakeBinance, tmp_path: Path,
                                                 clean: pa.Table) -> None:  # fmt: skip
    rel = "data/futures/um/daily/klines/AVAXUSDT/1m/AVAXUSDT-1m-2026-06-29.zip"
    saved = fake.archive.pop(rel)
    try:
        rep = run(Store(tmp_path), fake)
    finally:
        fake.archive[rel] = saved
    assert rep.files_missing == [rel]
    assert content(Store(tmp_path)).equals(clean)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="unknown source"):
        pull(Store(tmp_path), "ftp", symbols=["X"])
    with pytest.raises(SchemaError, match="REST has no history of trades"):
        pull(Store(tmp_path), "rest", dataset="trades", symbols=["X"])
    with pytest.raises(SchemaError, match="cannot read time"):
        pull(Store(tmp_path), "rest", symbols=["X"], start="yesterday")
    assert dataset_partition("mark_klines", "1h") == "mark_klines_1h"
    assert parse_time_us("2024-01-01T00:00:01Z") == 1_704_067_201_000_000


@pytest.mark.shared
def test_unknown_symbol_is_clear(fake: FakeBinance, tmp_path: Path) -> None:
    with pytest.raises(UnknownSymbol, match="NOPEUSDT"):
        run(Store(tmp_path), fake, symbols=["NOPEUSDT"], start="2026-07-03T00:00")


def _child(fake: FakeBinance, root: Path, kill_at: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "tests.data.pull_child", str(root), fake.url, START,
            "2026-07-04", str(NOW), str(kill_at)]  # fmt: skip
    return subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE)


@pytest.mark.shared
def test_kill_9_at_random_points_then_resume_equals_clean(
    fake: FakeBinance, tmp_path: Path, clean: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(store_mod, "_checkpoint", calls.append)
    run(Store(tmp_path / "count"), fake)
    monkeypatch.undo()
    assert len(calls) > 20
    rng = random.Random(20260703)
    points = sorted(rng.sample(range(1, len(calls)), 2))
    for i, k in enumerate([*points, -1]):
        root = tmp_path / f"kill{i}"
        fake.log.clear()
        proc = _child(fake, root, k)
        if k == -1:  # killed by the parent while it pulls (a download or page in flight)
            after = rng.randint(3, 12)
            deadline = time.monotonic() + 30
            while len(fake.log) < after and time.monotonic() < deadline:
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        fake.log.clear()
        run(Store(root), fake)
        assert content(Store(root)).equals(clean)
        assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.shared
def test_every_real_kline_file_round_trips_through_archive_into_store(
    real_dir: Path, tmp_path: Path
) -> None:
    files = sorted((real_dir / "binance_futures_klines").glob("*.csv.gz"))
    files += sorted((real_dir / "binance_spot_klines").glob("*.csv"))
    f = FakeBinance()
    plan = []
    for path in files:
        sym, iv, rest = path.name.split(".")[0].split("-", 2)
        market = "usdm" if "futures" in str(path.parent) else "spot"
        add_kline_archive(f, market, sym, iv, read_text(path), daily=len(rest) == 10, rest=False)
        lo = us(rest if len(rest) == 10 else rest + "-01")
        hi = lo + 86_400_000_000 if len(rest) == 10 else us(_next_month(rest) + "-01")
        plan.append((path, market, sym, iv, lo, hi))
    store = Store(tmp_path)
    with f:
        for path, market, sym, iv, lo, hi in plan:
            rep = pull(store, "archive", market, "klines", [sym], iv, lo, hi,
                       archive=ArchiveClient(f.url), clock=lambda: 2_000_000_000.0)  # fmt: skip
            assert rep.files_downloaded == 1, path
    for path, market, sym, iv, lo, hi in plan:
        got = store.read(f"klines_{iv}", "binance", market, [sym], lo, hi)
        assert_klines_equal(got, _plain_parse(path), sym)


def _next_month(ym: str) -> str:
    y, m = map(int, ym.split("-"))
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def test_plan_archive_files() -> None:
    from alphaforge.data.archive_fetch import plan_archive_files

    now = us("2024-03-10T12:00")
    plan = plan_archive_files("usdm", "klines", "BTCUSDT", "1m", us("2024-01-15"), now, now)
    names = [f.name for f in plan]
    assert names[:17] == [f"BTCUSDT-1m-2024-01-{d:02d}.zip" for d in range(15, 32)]
    assert names[17] == "BTCUSDT-1m-2024-02.zip"  # a finished month: one monthly file
    assert names[18:] == [f"BTCUSDT-1m-2024-03-{d:02d}.zip" for d in range(1, 10)]  # to 03-09
    assert plan[17].rel_path == "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip"
    assert (plan[17].start_us, plan[17].end_us) == (us("2024-02-01"), us("2024-03-01"))
    agg = plan_archive_files("spot", "agg_trades", "BTCUSDT", None, us("2024-01-01"), now, now)
    assert agg[0].rel_path == "data/spot/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01.zip"
    fund = plan_archive_files("usdm", "funding", "BTCUSDT", None, us("2024-01-01"), now, now)
    assert [f.name for f in fund] == ["BTCUSDT-fundingRate-2024-01.zip",
                                      "BTCUSDT-fundingRate-2024-02.zip"]  # fmt: skip
    with pytest.raises(SchemaError, match="spot archive has no funding"):
        plan_archive_files("spot", "funding", "BTCUSDT", None, 0, now, now)


@pytest.mark.shared
def test_spot_archive_in_microseconds_joins_rest_tail_in_milliseconds(
    real_dir: Path, tmp_path: Path
) -> None:
    """A 2025 spot daily file (µs, no header) + the REST tail (ms) give one contiguous 1m grid."""
    rows = (real_dir / "binance_spot_klines/ADABTC-1m-2021-11-27.csv").read_text().splitlines()
    shift_ms = us("2025-01-02") // 1000 - 1637971200000
    micro, rest_rows = [], []
    for day in range(2):  # 10 real rows on 2025-01-02 (µs archive) and 2025-01-03 (REST, ms)
        for ln in rows:
            f = ln.split(",")
            t0 = int(f[0]) + shift_ms + day * 86_400_000
            f[0], f[6] = str(t0), str(t0 + 59_999)
            rest_rows.append(",".join(f))
            micro.append(",".join([str(t0 * 1000), *f[1:6], str(t0 * 1000 + 59_999_999), *f[7:]]))
    fake = FakeBinance()
    fake.add_archive_file("data/spot/daily/klines/ADABTC/1m/ADABTC-1m-2025-01-02.zip",
                          ("\n".join(micro[:10]) + "\n").encode())  # fmt: skip
    from tests.data.fake_binance import kline_rows_from_csv

    fake.add_klines("spot", "ADABTC", "1m", kline_rows_from_csv("\n".join(rest_rows).encode()))
    now = us("2025-01-03T12:00") / 1e6
    with fake:
        rest = BinanceRest("spot", base_url=fake.url, clock=lambda: now)
        rep = pull(Store(tmp_path), "auto", "spot", "klines", ["ADABTC"], "1m", "2025-01-02",
                   None, rest=rest, archive=ArchiveClient(fake.url), clock=lambda: now)  # fmt: skip
    assert rep.files_downloaded == 1
    got = Store(tmp_path).read("klines_1m", "binance", "spot", ["ADABTC"])
    ot = got.column("open_time").cast(pa.int64()).to_pylist()
    assert ot[:10] == [us("2025-01-02") + i * 60_000_000 for i in range(10)]
    assert ot[10:] == [us("2025-01-03") + i * 60_000_000 for i in range(10)]
    ct = got.column("close_time").cast(pa.int64()).to_pylist()
    assert ct[0] == us("2025-01-02") + 59_999_999  # µs file keeps its µs close time
    assert ct[10] == us("2025-01-03") + 59_999_000  # REST gives ms
    assert got.column("close").to_pylist() == [float(r.split(",")[4]) for r in rest_rows]


@pytest.mark.shared
def test_pull_into_an_object_store_equals_the_local_pull_and_resumes(
    fake: FakeBinance, clean: pa.Table, s3_env: Any
) -> None:
    from alphaforge.data.store_open import open_store

    store = open_store(f"s3://{s3_env.bucket()}/pulled")
    rep = run(store, fake)
    assert rep.rows_added == clean.num_rows
    assert content(store).equals(clean)
    assert {p.tier for p in store.partitions("klines_1m")} == {"cold"}
    again = run(store, fake)  # the archive files are known by sha256 in the manifests
    assert again.files_downloaded == 0
    assert again.rows_added == 0
    assert content(store).equals(clean)
