"""ingest(): real archive, Tardis and CryptoDataDownload files on disk -> the store, row for row;
bad files named with their reason while the others still go in; idempotent re-ingest."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import zipfile
from pathlib import Path

import pyarrow.compute as pc
import pytest

from alphaforge.data.cdd import read_cdd_csv
from alphaforge.data.errors import DataError, SchemaError
from alphaforge.data.ingest import classify, ingest
from alphaforge.data.recordings import read_hftbacktest
from alphaforge.data.store import Store

KLINE = "binance_futures_klines/DOTUSDT-1m-2024-11.csv.gz"


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return [ln for ln in fh.read().splitlines() if ln.strip()]


def _data_rows(path: Path) -> int:
    lines = _lines(path)
    return len(lines) - (0 if lines[0][:1].isdigit() else 1)


def test_real_folders_store_every_row(real_dir: Path, tmp_path: Path) -> None:
    folders = ["binance_futures_klines", "binance_spot_klines", "tardis"]
    rep = ingest(tmp_path / "st", [real_dir / f for f in folders])
    assert rep.ok, [i.error for i in rep.failed]
    store = Store(tmp_path / "st")
    by_file = {Path(i.path).name: i for i in rep.items}
    for path in sorted((real_dir / "binance_futures_klines").iterdir()):
        item = by_file[path.name]
        assert (item.kind, item.dataset, item.market) == ("binance", "klines_1m", "usdm")
        assert item.rows_read == item.rows_added == _data_rows(path)
    assert by_file["BTCUSDT-1h-2022-01.csv"].dataset == "klines_1h"
    assert by_file["BTCUSDT-1h-2022-01.csv"].market == "spot"
    stored = sum(p.rows for p in store.partitions("klines_1m", market="usdm"))
    assert stored == sum(_data_rows(p) for p in (real_dir / "binance_futures_klines").iterdir())
    # every Tardis row of the shared samples is stored (snapshot depths are separate datasets)
    for path in sorted((real_dir / "tardis").iterdir()):
        item = by_file[path.name]
        assert item.kind == "tardis"
        assert item.rows_added == item.rows_read == _data_rows(path), path.name
        parts = store.partitions(item.dataset)
        assert sum(p.rows for p in parts) == _data_rows(path)


def test_reingest_adds_nothing_and_keeps_the_store(real_dir: Path, tmp_path: Path) -> None:
    src = real_dir / KLINE
    first = ingest(tmp_path / "st", [src])
    before = Store(tmp_path / "st").read("klines_1m")
    again = ingest(tmp_path / "st", [src])
    assert first.items[0].rows_added == first.items[0].rows_read > 40_000
    assert again.ok
    assert again.items[0].rows_added == 0
    assert again.items[0].rows_merged == again.items[0].rows_read
    assert Store(tmp_path / "st").read("klines_1m").equals(before)


def test_tardis_quotes_sharing_a_timestamp_are_all_kept(real_dir: Path, tmp_path: Path) -> None:
    """The real bookTicker recording written as Tardis quotes (no update id): rows that share a
    millisecond are distinct quotes and must all be stored; an exact re-ingest adds none."""
    rows = _lines(real_dir / "binance_bookticker" / "BTCUSDT-bookTicker-2023-10-02-short.csv.gz")
    out = ["exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"]
    for ln in rows[1:]:
        _uid, bid, bid_qty, ask, ask_qty, t_ms, ev_ms = ln.split(",")
        out.append(f"binance-futures,BTCUSDT,{int(t_ms) * 1000},{int(ev_ms) * 1000},"
                   f"{ask_qty},{ask},{bid},{bid_qty}")  # fmt: skip
    path = tmp_path / "binance-futures_quotes_2023-10-02_BTCUSDT.csv"
    path.write_text("\n".join(out) + "\n")
    times = [ln.split(",")[2] for ln in out[1:]]
    assert len(set(times)) < len(times) - 300  # the case: hundreds of shared timestamps
    rep = ingest(tmp_path / "st", [path])
    assert rep.ok
    assert rep.items[0].dataset == "book_ticker"
    assert rep.items[0].rows_added == len(out) - 1 == 9_999
    table = Store(tmp_path / "st").read("book_ticker", exchange="binance-futures")
    assert table.num_rows == 9_999
    assert pc.sum(table["bid_qty"]).as_py() == pytest.approx(sum(float(r.split(",")[2])
                                                                 for r in rows[1:]))  # fmt: skip
    assert ingest(tmp_path / "st", [path]).items[0].rows_added == 0


def test_cdd_overlapping_rows_are_counted_as_merged(real_dir: Path, tmp_path: Path) -> None:
    path = real_dir / "cryptodatadownload" / "Binance_BTCUSDT_1h.csv.gz"
    rep = ingest(tmp_path / "st", [path])
    item = rep.items[0]
    assert rep.ok
    assert (item.kind, item.dataset, item.market) == ("cdd", "klines_1h", "spot")
    table = read_cdd_csv(path)
    distinct = len(set(table["open_time"].to_pylist()))
    assert item.rows_read == table.num_rows
    assert item.rows_added == distinct
    assert item.rows_merged == table.num_rows - distinct > 0
    stored = Store(tmp_path / "st").read("klines_1h", market="spot", symbols=["BTCUSDT"])
    assert stored.num_rows == distinct


def _zip(path: Path, member: str, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, payload)
    return path


def test_bad_files_are_named_and_the_others_still_go_in(real_dir: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "futures" / "um"
    inbox.mkdir(parents=True)
    payload = gzip.decompress((real_dir / KLINE).read_bytes())
    good = _zip(inbox / "DOTUSDT-1m-2024-11.zip", "DOTUSDT-1m-2024-11.csv", payload)
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    (inbox / "DOTUSDT-1m-2024-11.zip.CHECKSUM").write_text(f"{sha}  DOTUSDT-1m-2024-11.zip\n")
    # DOT rows inside a zip named for NEAR: must not be stored as NEARUSDT
    _zip(inbox / "NEARUSDT-1m-2024-11.zip", "DOTUSDT-1m-2024-11.csv", payload)
    bad_sum = _zip(inbox / "LINKUSDT-1m-2024-11.zip", "LINKUSDT-1m-2024-11.csv", payload)
    (inbox / "LINKUSDT-1m-2024-11.zip.CHECKSUM").write_text("0" * 64 + "  x.zip\n")
    (inbox / "AVAXUSDT-1m-2024-11.zip").write_bytes(b"PK\x03\x04 truncated")
    (inbox / "notes.bin").write_bytes(bytes(range(256)) * 4)
    rep = ingest(tmp_path / "st", [tmp_path / "futures"])
    errors = {Path(i.path).name: i.error for i in rep.failed}
    assert not rep.ok
    assert set(errors) == {"NEARUSDT-1m-2024-11.zip", bad_sum.name, "AVAXUSDT-1m-2024-11.zip",
                           "notes.bin"}  # fmt: skip
    assert "DOTUSDT-1m-2024-11.csv" in errors["NEARUSDT-1m-2024-11.zip"]
    assert "ChecksumMismatch" in errors[bad_sum.name]
    assert "corrupt or truncated archive" in errors["AVAXUSDT-1m-2024-11.zip"]
    assert "notes.bin" in errors["notes.bin"]
    store = Store(tmp_path / "st")
    assert [p.symbol for p in store.partitions("klines_1m")] == ["DOTUSDT"]
    assert store.partitions("klines_1m")[0].rows == _data_rows(real_dir / KLINE)


def test_classify_names_and_markets(tmp_path: Path) -> None:
    spot = tmp_path / "data" / "spot" / "monthly" / "klines" / "BTCUSDT" / "1h"
    spot.mkdir(parents=True)
    f = spot / "BTCUSDT-1h-2024-01.zip"
    f.write_bytes(b"")
    assert (classify(f).dataset, classify(f).market, classify(f).symbol) == ("klines_1h", "spot",
                                                                             "BTCUSDT")  # fmt: skip
    mark = tmp_path / "futures" / "um" / "daily" / "markPriceKlines" / "ETHUSDT" / "1m"
    mark.mkdir(parents=True)
    g = mark / "ETHUSDT-1m-2024-01-02.zip"
    g.write_bytes(b"")
    assert (classify(g).dataset, classify(g).market) == ("mark_klines_1m", "usdm")
    h = tmp_path / "BTCUSDT-fundingRate-2024-01.csv"
    h.write_text("calc_time,funding_interval_hours,last_funding_rate\n")
    with pytest.raises(SchemaError, match="market"):
        classify(h)
    assert classify(h, market="usdm").dataset == "funding"


def test_missing_path_raises_before_writing(tmp_path: Path, real_dir: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        ingest(tmp_path / "st", [real_dir / KLINE, tmp_path / "absent"])
    assert not (tmp_path / "st").exists() or not Store(tmp_path / "st").partitions()


def test_copied_file_from_any_folder_name(real_dir: Path, tmp_path: Path) -> None:
    flat = tmp_path / "downloads"
    flat.mkdir()
    shutil.copy(real_dir / KLINE, flat)
    rep = ingest(tmp_path / "st", [flat], market="usdm")
    assert rep.ok
    assert rep.items[0].market == "usdm"


def test_depth_recordings_go_to_their_datasets_row_for_row(real_dir: Path, tmp_path: Path) -> None:
    src = real_dir / "binance_ws_hftbacktest" / "usdm" / "btcusdt_20230404.dat.gz"
    rep = ingest(tmp_path / "st", [src])
    assert rep.ok
    assert rep.items[0].kind == "hftbacktest"
    assert rep.items[0].market == "usdm"
    rec = read_hftbacktest(src)
    store = Store(tmp_path / "st")
    for name in ("depth_updates", "trades", "book_ticker", "funding"):
        want = getattr(rec, name).num_rows
        assert want > 0, name
        assert sum(p.rows for p in store.partitions(name)) == want, name
    assert rep.items[0].rows_added == rep.items[0].rows_read


@pytest.mark.shared
def test_completeness_ledger_lists_the_sources_holes_and_the_next_file_fills_them(
    real_dir: Path, tmp_path: Path
) -> None:
    """Rows cut out of a real month are reported as missing bars (summary, manifest, exit 3);
    ingesting the whole month fills exactly them."""
    import json

    from typer.testing import CliRunner

    from alphaforge.cli import app

    src = real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz"
    with gzip.open(src) as fh:
        lines = fh.read().splitlines(keepends=True)
    holes = [(1_000, 1_003), (20_000, 20_060)]  # data rows [a, b): 3 and 60 bars
    kept = [ln for k, ln in enumerate(lines) if not any(a <= k - 1 < b for a, b in holes)]
    cut = tmp_path / "cut" / "usdm" / "DOTUSDT-1m-2026-02.csv"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(b"".join(kept))
    runner = CliRunner()
    store = str(tmp_path / "store")
    res = runner.invoke(app, ["ingest", str(cut), "--store", store, "--json"])
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["complete"] is False
    (m,) = doc["missing"]
    assert (m["partition"], m["unit"], m["missing"]) == ("klines_1m/usdm/DOTUSDT/2026-02",
                                                         "bars", 63)  # fmt: skip
    first = 1_769_904_000_000_000  # 2026-02-01 00:00 UTC, the month's first bar
    assert m["spans"] == [[first + a * 60_000_000, first + b * 60_000_000] for a, b in holes]
    (info,) = Store(store).partitions("klines_1m")
    assert info.completeness is not None
    assert info.completeness["missing"] == 63
    ls = json.loads(runner.invoke(app, ["store", "ls", "--store", store, "--json"]).stdout)
    assert ls["datasets"][0]["missing"] == 63
    assert not info.completeness["complete"]
    full = runner.invoke(app, ["ingest", str(src), "--store", store, "--market", "usdm",
                               "--json"])  # fmt: skip
    assert full.exit_code == 0, full.output
    assert json.loads(full.stdout)["rows_added"] == 63
    (info,) = Store(store).partitions("klines_1m")
    assert info.completeness == {"unit": "bars", "missing": 0, "spans": [], "spans_total": 0,
                                 "complete": True}  # fmt: skip


@pytest.mark.shared
def test_a_real_source_with_outages_reports_them_all(real_dir: Path, tmp_path: Path) -> None:
    """CryptoDataDownload's BNB hourly file has 12 missing hours: ingest lists the same 12."""
    from alphaforge.data.validate import validate_file

    path = real_dir / "cryptodatadownload" / "Binance_BNBUSDT_1h.csv.gz"
    rep = ingest(tmp_path / "store", [path], market="spot")
    assert rep.ok
    assert not rep.complete
    assert (
        sum(m["missing"] for m in rep.missing)
        == validate_file(path).check("missing_bars").count
        == 12
    )


@pytest.mark.shared
def test_agg_trade_id_holes_are_in_the_manifest(real_dir: Path, tmp_path: Path) -> None:
    import numpy as np

    from tests.data.test_validate_streams import _agg

    agg = _agg(real_dir)  # 12,477 real XRP aggTrades, consecutive ids
    ids = np.asarray(agg["agg_trade_id"])
    keep = ~np.isin(np.arange(agg.num_rows), [100, 101, 5_000])
    store = Store(tmp_path / "store")
    rep = store.write(agg.filter(keep), "agg_trades", exchange="binance", market="spot",
                      source="test")  # fmt: skip
    comp = [p.completeness for p in rep.partitions if p.completeness["missing"]]
    assert [c["spans"] for c in comp] == [[[int(ids[100]), int(ids[102])],
                                           [int(ids[5_000]), int(ids[5_001])]]]  # fmt: skip
    assert comp[0]["unit"] == "ids"
    assert comp[0]["missing"] == 3


@pytest.mark.shared
def test_a_bad_token_in_a_cdd_file_names_its_line_and_column(real_dir: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    with gzip.open(real_dir / "cryptodatadownload" / "Binance_BNBUSDT_1h.csv.gz") as fh:
        lines = fh.read().splitlines()[:50]
    lines[20] = lines[20].replace(b",", b",zz", 4)  # the 'open' field of line 21
    bad = tmp_path / "Binance_BNBUSDT_1h.csv"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(SchemaError, match=r"line 21: column 'open': 'zz.*' is not a number"):
        read_cdd_csv(bad)
