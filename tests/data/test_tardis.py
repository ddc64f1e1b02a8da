"""Tests of data.tardis (CSV parsing into our schemas) and data.tardis_fetch (downloads)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest
import requests
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.data import schemas
from alphaforge.data.errors import RequestRejected, SchemaError, SourceError
from alphaforge.data.store import Store, schema_name
from alphaforge.data.tardis import (
    dataset_of,
    detect_data_type,
    file_exchange,
    ingest_tardis_file,
    read_tardis_csv,
)
from alphaforge.data.tardis_fetch import dataset_url, download_file, download_range, local_name

SAMPLES = {
    "binance-futures_book_snapshot_25_BTCUSDT.csv": "book_snapshot_25",
    "binance-futures_book_snapshot_5_BTCUSDT.csv": "book_snapshot_5",
    "bitmex_trades_XBTUSD.csv": "trades",
    "deribit_incremental_book_L2_BTC-PERPETUAL.csv": "incremental_book_L2",
    "huobi-dm-swap_quotes_BTC-USD.csv": "quotes",
}


def raw_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def us(value: str) -> int:
    return int(value)


def ts_us(table: pa.Table, col: str = "ts") -> np.ndarray:
    return table[col].cast(pa.int64()).to_numpy()


# ------------------------------------------------------------------ real samples


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_parses_into_its_declared_schema(real_dir: Path, name: str) -> None:
    path = real_dir / "tardis" / name
    assert detect_data_type(path) == SAMPLES[name]
    table = read_tardis_csv(path)
    assert table.schema == schemas.DATASETS[schema_name(dataset_of(SAMPLES[name]))]
    rows = raw_rows(path)
    assert table.num_rows == len(rows)
    assert table["symbol"].to_pylist() == [r["symbol"] for r in rows]
    assert ts_us(table).tolist() == [us(r["timestamp"]) for r in rows]


def test_trades_sample_values(real_dir: Path) -> None:
    path = real_dir / "tardis" / "bitmex_trades_XBTUSD.csv"
    t = read_tardis_csv(path)
    rows = raw_rows(path)
    assert t["trade_id"].null_count == t.num_rows  # UUID ids are not integers
    assert t["trade_uid"].to_pylist() == [r["id"] for r in rows]
    assert t["trade_uid"][0].as_py() == "ccc3c1fa-212c-e8b0-1706-9b9c4f3d5ecf"
    assert t["price"].to_pylist() == [float(r["price"]) for r in rows]
    assert t["qty"].to_pylist()[:2] == [2152.0, 1.0]
    # Tardis side is the taker side: a taker sell hits a resting (maker) buyer
    assert t["is_buyer_maker"].to_pylist() == [r["side"] == "sell" for r in rows]
    assert ts_us(t)[0] == 1583020803145000


def test_incremental_book_sample_values(real_dir: Path) -> None:
    path = real_dir / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    t = read_tardis_csv(path)
    rows = raw_rows(path)
    assert t["is_snapshot"].to_pylist() == [r["is_snapshot"] == "true" for r in rows]
    assert all(t["is_snapshot"].to_pylist())  # README: snapshot rows only
    assert t["is_bid"].to_pylist() == [r["side"] == "bid" for r in rows]
    assert t["price"].to_pylist() == [float(r["price"]) for r in rows]
    assert t["qty"].to_pylist() == [float(r["amount"]) for r in rows]
    assert ts_us(t, "local_ts").tolist() == [us(r["local_timestamp"]) for r in rows]
    assert (t["price"][0].as_py(), t["qty"][0].as_py()) == (6421.5, 18640.0)
    assert t["last_update_id"].null_count == t.num_rows


@pytest.mark.parametrize(
    ("name", "levels"),
    [
        ("binance-futures_book_snapshot_25_BTCUSDT.csv", 25),
        ("binance-futures_book_snapshot_5_BTCUSDT.csv", 5),
    ],
)
def test_book_snapshot_sample_values(real_dir: Path, name: str, levels: int) -> None:
    path = real_dir / "tardis" / name
    t = read_tardis_csv(path)
    rows = raw_rows(path)
    for i in (0, len(rows) - 1):
        r = rows[i]
        for side, px, qty in (("bids", "bid_px", "bid_qty"), ("asks", "ask_px", "ask_qty")):
            assert t[px][i].as_py() == [float(r[f"{side}[{k}].price"]) for k in range(levels)]
            assert t[qty][i].as_py() == [float(r[f"{side}[{k}].amount"]) for k in range(levels)]
    bid0, ask0 = t["bid_px"][0].as_py(), t["ask_px"][0].as_py()
    assert (bid0[0], ask0[0]) == (11657.07, 11657.08)
    assert bid0 == sorted(bid0, reverse=True)  # bids descending, asks ascending
    assert ask0 == sorted(ask0)


def test_snapshot_5_matches_first_levels_of_25(real_dir: Path) -> None:
    t25 = read_tardis_csv(real_dir / "tardis" / "binance-futures_book_snapshot_25_BTCUSDT.csv")
    t5 = read_tardis_csv(real_dir / "tardis" / "binance-futures_book_snapshot_5_BTCUSDT.csv")
    common = set(ts_us(t25).tolist()) & set(ts_us(t5).tolist())
    assert common
    for ts in sorted(common):
        i25 = ts_us(t25).tolist().index(ts)
        i5 = ts_us(t5).tolist().index(ts)
        assert t25["bid_px"][i25].as_py()[:5] == t5["bid_px"][i5].as_py()


def test_quotes_sample_column_order(real_dir: Path) -> None:
    path = real_dir / "tardis" / "huobi-dm-swap_quotes_BTC-USD.csv"
    t = read_tardis_csv(path)
    rows = raw_rows(path)
    assert t["ask_qty"].to_pylist() == [float(r["ask_amount"]) for r in rows]
    assert t["bid_qty"].to_pylist() == [float(r["bid_amount"]) for r in rows]
    assert (t["bid_px"][0].as_py(), t["ask_px"][0].as_py()) == (8629.2, 8629.3)
    assert (t["bid_qty"][0].as_py(), t["ask_qty"][0].as_py()) == (806.0, 5494.0)


def test_gzip_file_parses_like_the_plain_one(real_dir: Path, tmp_path: Path) -> None:
    src = real_dir / "tardis" / "bitmex_trades_XBTUSD.csv"
    gz = tmp_path / "bitmex_trades_2020-03-01_XBTUSD.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert read_tardis_csv(gz).equals(read_tardis_csv(src))
    assert file_exchange(gz) == "bitmex"


# ------------------------------------------------------------------ hand-made formats

DERIV = (
    "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
    "predicted_funding_rate,open_interest,last_price,index_price,mark_price\n"
    "bitmex,XBTUSD,1585699200245000,1585699200355684,1585728000000000,0.0001,0.00012,"
    "1021234.5,6421.5,6420.1,6421.0\n"
    "bitmex,XBTUSD,1585699201000000,1585699201100000,,,,,6422,,\n"
)
LIQ = (
    "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
    "binance-futures,BTCUSDT,1598918403696000,1598918403810979,,sell,11650.5,0.25\n"
    "binance-futures,BTCUSDT,1598918404696000,1598918404810979,abc,buy,11660,1\n"
)


def test_derivative_ticker_with_empty_fields(tmp_path: Path) -> None:
    p = tmp_path / "bitmex_derivative_ticker_2020-04-01_XBTUSD.csv"
    p.write_text(DERIV)
    t = read_tardis_csv(p)
    assert t.schema == schemas.DERIVATIVE_TICKER
    assert ts_us(t, "funding_timestamp").tolist()[0] == 1585728000000000
    assert t["funding_timestamp"][1].as_py() is None
    assert t["funding_rate"].to_pylist() == [0.0001, None]
    assert t["open_interest"][0].as_py() == 1021234.5
    assert t["last_price"].to_pylist() == [6421.5, 6422.0]


def test_liquidations(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text(LIQ)
    t = read_tardis_csv(p, "liquidations")
    assert t.schema == schemas.LIQUIDATIONS
    assert t["id"].to_pylist() == [None, "abc"]
    assert t["side"].to_pylist() == ["sell", "buy"]
    assert t["qty"].to_pylist() == [0.25, 1.0]


def test_integer_trade_ids_go_to_trade_id(tmp_path: Path) -> None:
    p = tmp_path / "binance-futures_trades_2020-09-01_BTCUSDT.csv"
    p.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1,2,183937000,buy,10,2\n"
        "binance-futures,BTCUSDT,3,4,x-1,unknown,10,2\n"
    )
    t = read_tardis_csv(p)
    assert t["trade_id"].to_pylist() == [183937000, None]
    assert t["trade_uid"].to_pylist() == [None, "x-1"]
    assert t["is_buyer_maker"].to_pylist() == [False, None]
    assert t["quote_qty"].to_pylist() == [20.0, 20.0]


def test_errors_name_file_and_column(tmp_path: Path) -> None:
    p = tmp_path / "deribit_trades_2020-04-01_BTC-PERPETUAL.csv"
    p.write_text("exchange,symbol,timestamp,local_timestamp,id,side,amount\nd,B,1,2,a,buy,1\n")
    with pytest.raises(SchemaError, match=r"deribit_trades.*missing column\(s\) \['price'\]"):
        read_tardis_csv(p)
    p.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "d,B,1,2,a,buy,1.5,1\nd,B,1,2,a,buy,oops,1\n"
    )
    with pytest.raises(SchemaError, match=r"deribit_trades.*column 'price'.*oops.* at line 3"):
        read_tardis_csv(p)
    gz = tmp_path / "deribit_trades_2020-04-01_BTC-PERPETUAL.csv.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    with pytest.raises(SchemaError, match=r"at line 3 \(column 'price', value 'oops'\)"):
        read_tardis_csv(gz)
    with pytest.raises(SchemaError, match="unsupported Tardis data type 'options_chain'"):
        read_tardis_csv(p, "options_chain")
    with pytest.raises(SchemaError, match="cannot tell the Tardis data type"):
        read_tardis_csv(tmp_path / "data.csv")
    q = tmp_path / "book_snapshot_5_x.csv"
    q.write_text("exchange,symbol,timestamp,local_timestamp,asks[0].price,asks[0].amount\n")
    with pytest.raises(SchemaError, match=r"needs level columns 0..4; found levels \[0\]"):
        read_tardis_csv(q)


def test_detect_data_type_from_api_paths() -> None:
    assert detect_data_type("/d/deribit/incremental_book_L2/2020/04/01/BTC-PERPETUAL.csv.gz") == (
        "incremental_book_L2"
    )
    assert detect_data_type("binance_book_snapshot_10_2020-01-01_BTCUSDT.csv.gz") == (
        "book_snapshot_10"
    )
    assert dataset_of("book_snapshot_10") == "book_snapshots_10"


def test_ingest_into_store_once(real_dir: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    path = real_dir / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    rep = ingest_tardis_file(store, path)
    assert rep is not None
    assert rep.rows_added == 15
    assert ingest_tardis_file(store, path) is None  # same bytes: nothing done
    back = store.read("depth_updates", exchange="deribit", symbols=["BTC-PERPETUAL"])
    assert back.num_rows == 15
    assert back["price"].to_pylist() == sorted(back["price"].to_pylist())  # sorted by keys
    assert store.partitions("depth_updates")[0].month == "2020-04"


# ------------------------------------------------------------------ downloads (loopback)

KEY = "secret-key-123"


class _Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []
    truncate: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._send(401, b'{"code":401,"message":"Invalid API key"}')
            return
        body = self.files.get(self.path)
        if body is None:
            self._send(404, b'{"code":404,"message":"Not found"}')
            return
        if self.path in self.truncate:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body)
            return
        self._send(200, body)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.files, _Handler.seen, _Handler.truncate = {}, [], set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_download_resume_401_404_and_truncation(
    server: str, tmp_path: Path, real_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = gzip.compress((real_dir / "tardis" / "bitmex_trades_XBTUSD.csv").read_bytes())
    day = dt.date(2020, 3, 1)
    url = dataset_url(server, "bitmex", "trades", day, "XBTUSD")
    assert url.endswith("/v1/bitmex/trades/2020/03/01/XBTUSD.csv.gz")
    _Handler.files["/v1/bitmex/trades/2020/03/01/XBTUSD.csv.gz"] = body
    monkeypatch.setenv("TARDIS_API_KEY", KEY)
    with requests.Session() as sess:
        got = download_file(
            "bitmex", "trades", day, "XBTUSD", tmp_path, session=sess, base_url=server
        )
        assert not got.skipped
        assert got.path.name == local_name("bitmex", "trades", day, "XBTUSD")
        assert got.path.read_bytes() == body
        assert _Handler.seen[-1][1] == f"Bearer {KEY}"
        mtime = got.path.stat().st_mtime_ns
        again = download_file(
            "bitmex", "trades", day, "XBTUSD", tmp_path, session=sess, base_url=server
        )
        assert again.skipped
        assert got.path.stat().st_mtime_ns == mtime
        assert read_tardis_csv(got.path).num_rows == 10
        # missing file -> 404 with the URL, nothing written
        with pytest.raises(RequestRejected, match=r"HTTP 404.*no such Tardis file") as e404:
            download_file(
                "bitmex",
                "trades",
                dt.date(2020, 3, 2),
                "XBTUSD",
                tmp_path,
                session=sess,
                base_url=server,
            )
        assert e404.value.status == 404
        # wrong key -> 401; the key is never in the message
        with pytest.raises(RequestRejected, match="HTTP 401 unauthorized") as e401:
            download_file(
                "bitmex",
                "trades",
                day,
                "XBTUSD",
                tmp_path / "other",
                session=sess,
                base_url=server,
                api_key="wrong-key",
            )
        assert "wrong-key" not in str(e401.value)
        assert KEY not in str(e401.value)
        # truncated body -> SourceError and no partial file
        _Handler.truncate.add("/v1/bitmex/trades/2020/03/01/XBTUSD.csv.gz")
        with pytest.raises(SourceError, match="truncated"):
            download_file(
                "bitmex",
                "trades",
                day,
                "XBTUSD",
                tmp_path / "t",
                session=sess,
                base_url=server,
                timeout_s=5,
            )
        assert list((tmp_path / "t").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [got.path.name]


def test_download_range_fetches_each_day_and_skips_present(server: str, tmp_path: Path) -> None:
    for d in (1, 2):
        _Handler.files[f"/v1/deribit/quotes/2020/05/0{d}/BTC-PERPETUAL.csv.gz"] = gzip.compress(
            f"exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
            f"\nderibit,BTC-PERPETUAL,{d},{d},1,2,1,1\n".encode()
        )
    kw = {"api_key": KEY, "base_url": server}
    first = download_range(
        "deribit",
        ["quotes"],
        ["BTC-PERPETUAL"],
        dt.date(2020, 5, 1),
        dt.date(2020, 5, 2),
        tmp_path,
        **kw,
    )
    assert [f.skipped for f in first] == [False, False]
    second = download_range(
        "deribit",
        ["quotes"],
        ["BTC-PERPETUAL"],
        dt.date(2020, 5, 1),
        dt.date(2020, 5, 2),
        tmp_path,
        **kw,
    )
    assert [f.skipped for f in second] == [True, True]
    assert [read_tardis_csv(f.path)["ts"].cast(pa.int64())[0].as_py() for f in first] == [1, 2]


def test_pull_source_tardis_downloads_and_ingests(
    server: str, tmp_path: Path, real_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alphaforge pull --source tardis`: loopback server, key from the environment (never
    printed), every row of the served files in the store, a rerun adds nothing, a missing
    file exits non-zero naming it."""
    monkeypatch.setenv("TARDIS_API_KEY", KEY)
    runs = (("binance-futures_book_snapshot_5_BTCUSDT.csv", "book_snapshot_5", "BTCUSDT",
             "book_snapshots_5"),
            ("huobi-dm-swap_quotes_BTC-USD.csv", "quotes", "BTC-USD", "book_ticker"))  # fmt: skip
    store = tmp_path / "st"
    for name, dtype, sym, dataset in runs:
        raw = (real_dir / "tardis" / name).read_bytes()
        url = dataset_url(server, "binance-futures", dtype, dt.date(2020, 9, 1), sym)
        _Handler.files[urllib.parse.urlparse(url).path] = gzip.compress(raw)
        args = ["pull", "--source", "tardis", "--exchange", "binance-futures", "--dataset", dtype,
                "--symbols", sym, "--start", "2020-09-01", "--store", str(store),
                "--base-url", server, "--json"]  # fmt: skip
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert KEY not in res.output
        doc = json.loads(res.stdout)
        n_rows = raw.decode().count("\n") - 1
        assert doc["rows_added"] == n_rows == 10
        parts = Store(store).partitions(dataset)
        assert sum(p.rows for p in parts) == n_rows
        again = json.loads(CliRunner().invoke(app, args).output)
        assert again["rows_added"] == 0
    absent = ["pull", "--source", "tardis", "--dataset", "trades", "--symbols", "ETHUSDT",
              "--start", "2020-09-01", "--store", str(store), "--base-url", server,
              "--json"]  # fmt: skip
    missing = CliRunner().invoke(app, absent)
    assert missing.exit_code == 2
    assert "404" in json.loads(missing.output)["error"]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_type_comes_from_the_header_when_the_name_does_not_say(
    real_dir: Path, tmp_path: Path, name: str
) -> None:
    """A renamed Tardis file is still ingested by its header; trades and liquidations share one
    header, so such a file must be named (a clear error, never a guess)."""
    from alphaforge.data.ingest import ingest

    renamed = tmp_path / "download.csv"
    renamed.write_bytes((real_dir / "tardis" / name).read_bytes())
    if SAMPLES[name] in ("trades", "liquidations"):
        with pytest.raises(SchemaError, match="share one header"):
            detect_data_type(renamed)
        return
    assert detect_data_type(renamed) == SAMPLES[name]
    rep = ingest(tmp_path / "st", [renamed])
    assert rep.ok
    assert rep.items[0].rows_added == read_tardis_csv(real_dir / "tardis" / name).num_rows
