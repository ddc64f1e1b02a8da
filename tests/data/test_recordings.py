"""Tests of data.recordings on the real Binance recordings in ../shared/data/real, plus
hypothesis properties of the line parser (valid messages round-trip, garbage names its line)."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.data import schemas
from alphaforge.data.errors import SchemaError
from alphaforge.data.recordings import RecordingTables, parse_hftbacktest_lines, read_cryptofeed
from alphaforge.data.recordings import read_hftbacktest as _read_hft

HFT = "binance_ws_hftbacktest"
CF = "binance_ws_cryptofeed"
# file -> (lines, first local time, last local time) as documented in the data README
README_FILES = {
    "spot/btcusdt_20240808.gz": (41_249, "2024-08-08 23:54:13", "2024-08-08 23:59:59"),
    "spot/btcusdt_20240809.gz": (58_325, "2024-08-09 00:00:00", "2024-08-09 00:05:04"),
    "usdm/btcusdt_20240808.gz": (93_954, "2024-08-08 23:54:15", "2024-08-08 23:59:59"),
    "cm/btcusd_perp_20240808.gz": (48_270, "2024-08-08 23:54:16", "2024-08-08 23:59:59"),
    "cm/btcusd_perp_20240809.gz": (50_116, "2024-08-09 00:00:00", "2024-08-09 00:05:03"),
    "usdm/btcusdt_20230404.dat.gz": (13_384, "2023-04-04 23:58:20", "2023-04-04 23:59:59"),
    "usdm/btcusdt_20230405.dat.gz": (60_381, "2023-04-05 00:00:00", "2023-04-05 00:06:54"),
    "spot/btcusdt_20230405.dat.gz": (15_088, "2023-04-05 00:00:00", "2023-04-05 00:06:54"),
    "spot/nexousdt_20240723.dat.gz": (1_804, "2024-07-23 15:39:42", "2024-07-23 15:59:59"),
    "spot/nexousdt_20240724.dat.gz": (112_274, "2024-07-23 16:00:01", "2024-07-24 15:59:59"),
}
FIRST_FILES = {
    "spot/btcusdt_20240808.gz",
    "usdm/btcusdt_20240808.gz",
    "cm/btcusd_perp_20240808.gz",
    "usdm/btcusdt_20230404.dat.gz",
    "spot/nexousdt_20240723.dat.gz",
}
RECORDINGS = [  # (files in order, spot?)
    (["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"], True),
    (["usdm/btcusdt_20240808.gz"], False),
    (["cm/btcusd_perp_20240808.gz", "cm/btcusd_perp_20240809.gz"], False),
    (["usdm/btcusdt_20230404.dat.gz", "usdm/btcusdt_20230405.dat.gz"], False),
    (["spot/btcusdt_20230405.dat.gz"], True),
    (["spot/nexousdt_20240723.dat.gz", "spot/nexousdt_20240724.dat.gz"], True),
]
_CACHE: dict[tuple[str, ...], RecordingTables] = {}


def read_hft(real_dir: Path, *names: str) -> RecordingTables:
    """read_hftbacktest, cached per test session (each file is read once per combination)."""
    if names not in _CACHE:
        _CACHE[names] = _read_hft([real_dir / HFT / n for n in names])
    return _CACHE[names]


def _raw_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def _us(when: str) -> int:
    return int(datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()) * 1_000_000


def _i64(col: pa.ChunkedArray) -> np.ndarray:
    return col.cast(pa.int64()).to_numpy()


def _diff_messages(depth: pa.Table) -> dict[str, np.ndarray]:
    """One entry per depth diff message (its rows are contiguous): U, u, pu arrays."""
    d = depth.filter(pc.invert(depth["is_snapshot"]))
    u = _i64(d["last_update_id"])
    start = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    pu = d["prev_update_id"].to_numpy(zero_copy_only=False)
    return {"U": _i64(d["first_update_id"])[start], "u": u[start], "pu": pu[start]}


@pytest.mark.parametrize("name", sorted(README_FILES))
def test_rows_and_times_match_the_readme(real_dir: Path, name: str) -> None:
    lines, first, last = README_FILES[name]
    r = read_hft(real_dir, name)
    text = "\n".join(_raw_lines(real_dir / HFT / name))
    assert r.meta["files"][0]["lines"] == lines
    assert sum(r.meta["counts"].values()) == lines
    assert r.trades.num_rows == r.meta["counts"]["trade"] == text.count('@trade"')
    assert r.book_ticker.num_rows == text.count('@bookTicker"')
    assert r.mark_price.num_rows == text.count('@markPrice@1s"')
    assert r.meta["counts"]["depth"] == text.count("@depth@")
    for name_, dataset in (
        ("depth_updates", "depth_updates"),
        ("trades", "trades"),
        ("book_ticker", "book_ticker"),
        ("mark_price", "derivative_ticker"),
    ):
        assert getattr(r, name_).schema.equals(schemas.DATASETS[dataset])  # fmt: skip
    local = _i64(r.depth_updates["local_ts"])
    assert local.min() >= _us(first)
    assert local.max() < _us(last) + 1_000_000
    assert r.meta["files"][0]["local_ts_unit"] == ("ns" if "2024-08" in first else "us")
    event = _i64(r.trades["ts"])
    assert (event >= _us(first) - 5_000_000).all()
    assert (event < _us(last) + 6_000_000).all()


def test_depth_rows_equal_the_levels_of_every_message(real_dir: Path) -> None:
    name = "spot/nexousdt_20240723.dat.gz"
    r = read_hft(real_dir, name)
    bids, asks, snapshot = [], [], None
    for line in _raw_lines(real_dir / HFT / name):
        msg = json.loads(line.split(" ", 1)[1])
        if "stream" not in msg:
            snapshot = msg
            bids += msg["bids"]
            asks += msg["asks"]
        elif "@depth" in msg["stream"]:
            bids += msg["data"]["b"]
            asks += msg["data"]["a"]
    d = r.depth_updates
    is_bid = d["is_bid"].to_numpy(zero_copy_only=False)
    assert d.num_rows == len(bids) + len(asks)
    np.testing.assert_array_equal(
        d["price"].to_numpy()[is_bid], np.array([float(p) for p, _ in bids])
    )
    np.testing.assert_array_equal(
        d["qty"].to_numpy()[~is_bid], np.array([float(q) for _, q in asks])
    )
    # the python-reserialised snapshot (spaces after separators) parses, symbol from the name
    snap = d.filter(d["is_snapshot"])
    assert snapshot is not None
    assert snap.num_rows == len(snapshot["bids"]) + len(snapshot["asks"])
    assert set(snap["symbol"].to_pylist()) == {"NEXOUSDT"}
    assert set(snap["last_update_id"].to_pylist()) == {snapshot["lastUpdateId"]}
    assert snap["price"][0].as_py() == float(snapshot["bids"][0][0])
    assert set(d["symbol"].to_pylist()) == {"NEXOUSDT"}


@pytest.mark.parametrize("name", sorted(README_FILES))
def test_snapshot_present_exactly_in_the_first_files(real_dir: Path, name: str) -> None:
    r = read_hft(real_dir, name)
    snap = r.depth_updates.filter(r.depth_updates["is_snapshot"])
    if name not in FIRST_FILES:
        assert snap.num_rows == 0
        assert "snapshot" not in r.meta["counts"]
        return
    assert r.meta["counts"]["snapshot"] == 1
    raw = next(ln for ln in _raw_lines(real_dir / HFT / name) if '"stream"' not in ln)
    body = json.loads(raw.split(" ", 1)[1])
    assert set(snap["last_update_id"].to_pylist()) == {body["lastUpdateId"]}
    assert snap.num_rows == len(body["bids"]) + len(body["asks"])
    assert snap["first_update_id"].null_count == snap.num_rows
    if "E" in body:  # futures snapshots carry an event time
        assert set(_i64(snap["ts"])) == {body["E"] * 1000}


@pytest.mark.parametrize(("names", "spot"), RECORDINGS, ids=lambda v: str(v))
def test_depth_sequence_and_trade_ids_are_continuous(
    real_dir: Path, names: list[str], spot: bool
) -> None:
    r = read_hft(real_dir, *names)
    m = _diff_messages(r.depth_updates)
    assert m["u"].size > 100
    if spot:
        assert np.isnan(m["pu"].astype(float)).all()
        np.testing.assert_array_equal(m["U"][1:], m["u"][:-1] + 1)
    else:
        np.testing.assert_array_equal(m["pu"][1:].astype(np.int64), m["u"][:-1])
    assert (m["U"] <= m["u"]).all()
    ids = r.trades["trade_id"].to_numpy()
    np.testing.assert_array_equal(np.diff(ids), 1)
    if len(names) == 2:  # the continuation really was appended
        alone = read_hft(real_dir, names[0])
        assert r.trades.num_rows > alone.trades.num_rows
        assert r.trades.slice(0, alone.trades.num_rows).equals(alone.trades)
        second = read_hft(real_dir, names[1])
        assert [f["counts"] for f in r.meta["files"]] == [
            alone.meta["counts"],
            second.meta["counts"],
        ]
        assert r.trades.num_rows == alone.trades.num_rows + second.trades.num_rows


@pytest.mark.parametrize(
    ("name", "lo", "hi"),
    [
        ("spot/btcusdt_20240808.gz", 61_000, 62_500),
        ("usdm/btcusdt_20240808.gz", 61_000, 62_500),
        ("cm/btcusd_perp_20240808.gz", 61_000, 62_500),
        ("spot/btcusdt_20230405.dat.gz", 27_800, 28_400),
        ("usdm/btcusdt_20230405.dat.gz", 27_800, 28_400),
    ],
)
def test_prices_are_those_of_the_day(real_dir: Path, name: str, lo: float, hi: float) -> None:
    r = read_hft(real_dir, name)
    px = r.trades["price"].to_numpy()
    q_lo, q_hi = np.quantile(px, [0.001, 0.999])  # USD-M prints a few insurance-fund trades
    assert lo < q_lo <= q_hi < hi
    bt = r.book_ticker
    assert (bt["bid_px"].to_numpy() < bt["ask_px"].to_numpy()).all()
    assert lo < np.median(bt["bid_px"].to_numpy()) < hi
    np.testing.assert_allclose(
        r.trades["quote_qty"].to_numpy(), px * r.trades["qty"].to_numpy(), rtol=1e-15
    )


def test_mark_price_and_funding_from_the_2023_usdm_recording(real_dir: Path) -> None:
    name = "usdm/btcusdt_20230404.dat.gz"
    r = read_hft(real_dir, name)
    marks = [
        json.loads(ln.split(" ", 1)[1])["data"]
        for ln in _raw_lines(real_dir / HFT / name)
        if "@markPrice" in ln
    ]
    assert r.mark_price.num_rows == len(marks)
    assert r.mark_price.schema.equals(schemas.DERIVATIVE_TICKER)
    np.testing.assert_array_equal(r.mark_price["mark_price"].to_numpy(),
                                  [float(m["p"]) for m in marks])  # fmt: skip
    np.testing.assert_array_equal(_i64(r.mark_price["funding_timestamp"]),
                                  [m["T"] * 1000 for m in marks])  # fmt: skip
    assert r.funding.schema.equals(schemas.FUNDING)
    assert r.funding.num_rows == 1
    row = r.funding.to_pylist()[0]
    last = max((m for m in marks if m["E"] <= m["T"]), key=lambda m: m["E"])
    assert row["funding_time"] == datetime(2023, 4, 5, tzinfo=UTC)
    assert row["funding_rate"] == float(last["r"])
    assert row["mark_price"] == float(last["p"])
    both = read_hft(real_dir, name, "usdm/btcusdt_20230405.dat.gz")
    assert both.funding.equals(r.funding)  # 08:00 is never reached: no forecast rows


def test_cryptofeed_spot_and_futures(real_dir: Path) -> None:
    spot = read_cryptofeed(real_dir / CF / "BINANCE")
    fut = read_cryptofeed(real_dir / CF / "BINANCE_FUTURES")
    assert spot.exchange_info is not None
    assert fut.exchange_info is not None
    assert len(spot.exchange_info["symbols"]) == 1695
    assert len(fut.exchange_info["symbols"]) == 122
    assert spot.meta["configuration"]["l2_book"] == ["NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"]
    for rec, ws_file, syms in (
        (spot, "BINANCE.ws.1.0", {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}),
        (fut, "BINANCE_FUTURES.ws.1.0.gz", {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}),
    ):
        raw = (real_dir / CF / ws_file).read_bytes()
        text = (gzip.decompress(raw) if ws_file.endswith(".gz") else raw).decode()
        ws_lines = sum(1 for ln in text.splitlines() if ln.strip()) - 1  # minus the url header
        counts = dict(rec.meta["counts"])
        assert counts.pop("snapshot") == 4
        assert sum(counts.values()) == ws_lines
        d = rec.depth_updates
        assert set(d.filter(d["is_snapshot"])["symbol"].to_pylist()) == syms
        assert (np.diff(_i64(d["local_ts"])) >= 0).all()  # snapshots merged by receive time
        assert rec.agg_trades.num_rows == counts["aggTrade"]
        assert rec.kline_updates.num_rows == counts["kline_1m"]
        assert rec.agg_trades.schema.equals(schemas.AGG_TRADES)
        assert rec.klines.schema.equals(schemas.KLINES)
        for sym in syms:
            m = _diff_messages(d.filter(pc.equal(d["symbol"], sym)))
            if rec is spot:
                np.testing.assert_array_equal(m["U"][1:], m["u"][:-1] + 1)
            else:
                np.testing.assert_array_equal(m["pu"][1:].astype(np.int64), m["u"][:-1])
    closed = fut.klines
    assert closed.num_rows == 4  # the 22:25 bar of each symbol closed inside the 30 s
    assert set(_i64(closed["open_time"])) == {_us("2021-07-22 22:25:00")}
    assert (_i64(closed["close_time"]) == _us("2021-07-22 22:25:00") + 59_999_000).all()
    k = closed.to_pandas()
    assert ((k.low <= k[["open", "close"]].min(axis=1)) & (k.high >= k.close)).all()
    assert spot.klines.num_rows == 0
    assert (spot.agg_trades["price"].to_numpy() > 0).all()


def test_cryptofeed_accepts_explicit_paths_and_gzip(real_dir: Path) -> None:
    paths = sorted((real_dir / CF).glob("BINANCE_FUTURES.*"))
    assert any(p.suffix == ".gz" for p in paths)
    a = read_cryptofeed(paths)
    b = read_cryptofeed(real_dir / CF / "BINANCE_FUTURES")
    assert a.depth_updates.equals(b.depth_updates)
    assert a.exchange_info == b.exchange_info


def test_unreadable_or_missing_inputs_raise_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no files match"):
        read_cryptofeed(tmp_path / "NOPE")
    bad = tmp_path / "x_20240101.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(SchemaError, match=r"x_20240101\.gz"):
        _read_hft(bad)
    mixed = tmp_path / "y_20240101"
    mixed.write_text(
        '1723161253937085768 {"stream":"y@trade","data":{"s":"Y","t":1,"p":"1","q":"1",'
        '"T":1723161255342,"m":true}}\n1723161253937085 {"lastUpdateId":1,"bids":[],"asks":[]}\n'
    )
    with pytest.raises(SchemaError, match=r"y_20240101:2: .*changes unit"):
        _read_hft(mixed)


# ---------------------------------------------------------------- line-parser properties
LOCAL_NS = 1_723_161_253_937_085_768
_ms = st.integers(1_500_000_000_000, 1_800_000_000_000)
_ids = st.integers(0, 2**62)
_dec = st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False).map(str)
_levels = st.lists(st.tuples(_dec, _dec).map(list), max_size=4)


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(kind, message) of a random valid message of the hftbacktest collector."""
    kind = draw(st.sampled_from(["spot_depth", "fut_depth", "trade", "ticker", "mark", "snap"]))
    s = "XUSDT"
    if kind == "snap":
        body = {"lastUpdateId": draw(_ids), "bids": draw(_levels), "asks": draw(_levels)}
        if draw(st.booleans()):
            body |= {"E": draw(_ms), "T": draw(_ms)}
        return kind, body
    if kind in ("spot_depth", "fut_depth"):
        data = {"e": "depthUpdate", "E": draw(_ms), "s": s, "U": draw(_ids), "u": draw(_ids),
                "b": draw(_levels), "a": draw(_levels)}  # fmt: skip
        if kind == "fut_depth":
            data |= {"T": draw(_ms), "pu": draw(_ids)}
        stream = "xusdt@depth@100ms" if kind == "spot_depth" else "xusdt@depth@0ms"
    elif kind == "trade":
        data = {"e": "trade", "E": draw(_ms), "s": s, "t": draw(_ids), "p": draw(_dec),
                "q": draw(_dec), "T": draw(_ms), "m": draw(st.booleans())}  # fmt: skip
        stream = "xusdt@trade"
    elif kind == "ticker":
        data = {"u": draw(_ids), "s": s, "b": draw(_dec), "B": draw(_dec), "a": draw(_dec),
                "A": draw(_dec)}  # fmt: skip
        if draw(st.booleans()):
            data |= {"E": draw(_ms), "T": draw(_ms)}
        stream = "xusdt@bookTicker"
    else:
        data = {"e": "markPriceUpdate", "E": draw(_ms), "s": s, "p": draw(_dec),
                "i": draw(_dec), "P": draw(_dec), "r": draw(_dec), "T": draw(_ms)}  # fmt: skip
        stream = "xusdt@markPrice@1s"
    return kind, {"stream": stream, "data": data}


REQUIRED = {
    "spot_depth": ["E", "s", "U", "u", "b", "a"],
    "fut_depth": ["E", "s", "U", "u", "pu", "b", "a"],
    "trade": ["s", "t", "p", "q", "T", "m"],
    "ticker": ["u", "s", "b", "B", "a", "A"],
    "mark": ["E", "s", "p", "i", "r", "T"],
    "snap": ["lastUpdateId", "bids", "asks"],
}


def _expected(kind: str, msg: dict[str, Any], local_us: int) -> tuple[str, list[dict[str, Any]]]:
    """The rows a message must produce (written from the Binance docs, not from the code)."""
    d = msg.get("data", msg)
    f = float
    if kind in ("spot_depth", "fut_depth", "snap"):
        snap = kind == "snap"
        base = {
            "symbol": "XUSDT",
            "ts": d["E"] * 1000 if "E" in d else local_us,
            "local_ts": local_us,
            "first_update_id": None if snap else d["U"],
            "last_update_id": d["lastUpdateId"] if snap else d["u"],
            "prev_update_id": d.get("pu"),
            "is_snapshot": snap,
        }
        levels = [(True, lv) for lv in d["bids" if snap else "b"]]
        levels += [(False, lv) for lv in d["asks" if snap else "a"]]
        rows = [base | {"is_bid": b, "price": f(p), "qty": f(q)} for b, (p, q) in levels]
        return "depth_updates", rows
    if kind == "trade":
        return "trades", [{"symbol": "XUSDT", "trade_id": d["t"], "trade_uid": None,
                           "price": f(d["p"]), "qty": f(d["q"]),
                           "quote_qty": f(d["p"]) * f(d["q"]), "ts": d["T"] * 1000,
                           "is_buyer_maker": d["m"]}]  # fmt: skip
    if kind == "ticker":
        return "book_ticker", [{"symbol": "XUSDT", "update_id": d["u"],
                                "ts": d["E"] * 1000 if "E" in d else local_us,
                                "bid_px": f(d["b"]), "bid_qty": f(d["B"]), "ask_px": f(d["a"]),
                                "ask_qty": f(d["A"])}]  # fmt: skip
    return "mark_price", [{"symbol": "XUSDT", "ts": d["E"] * 1000, "local_ts": local_us,
                           "funding_timestamp": d["T"] * 1000, "funding_rate": f(d["r"]),
                           "predicted_funding_rate": None, "open_interest": None,
                           "last_price": None, "index_price": f(d["i"]),
                           "mark_price": f(d["p"])}]  # fmt: skip


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    out = []
    for row in table.to_pylist():
        out.append({k: int(v.timestamp() * 1e6) if isinstance(v, datetime) else v
                    for k, v in row.items()})  # fmt: skip
    return out


def _line(i: int, msg: dict[str, Any]) -> str:
    return f"{LOCAL_NS + i * 1_000_000} {json.dumps(msg)}"


@given(st.lists(messages(), min_size=1, max_size=12))
def test_valid_messages_round_trip_to_their_declared_rows(
    msgs: list[tuple[str, dict[str, Any]]],
) -> None:
    lines = [_line(i, m) for i, (_, m) in enumerate(msgs)]
    tables = parse_hftbacktest_lines(lines, symbol="XUSDT")
    want: dict[str, list[dict[str, Any]]] = {}
    for i, (kind, m) in enumerate(msgs):
        name, rows = _expected(kind, m, (LOCAL_NS + i * 1_000_000) // 1000)
        want.setdefault(name, []).extend(rows)
    for name in ("depth_updates", "trades", "book_ticker", "mark_price"):
        table = getattr(tables, name)
        assert table.schema.equals(schemas.DATASETS.get(name, schemas.DERIVATIVE_TICKER))
        got = _rows(table)
        assert len(got) == len(want.get(name, []))
        for g, w in zip(got, want.get(name, []), strict=True):
            assert g == w


BAD_VALUES = [None, "x", "", 1.5, True, [], {}, [["1"]], 2**70, -1]


@given(
    st.lists(messages(), min_size=1, max_size=6),
    st.data(),
)
def test_garbage_lines_raise_schema_error_naming_file_and_line(
    msgs: list[tuple[str, dict[str, Any]]], data: st.DataObject
) -> None:
    lines = [_line(i, m) for i, (_, m) in enumerate(msgs)]
    at = data.draw(st.integers(0, len(lines) - 1))
    kind, msg = msgs[at]
    how = data.draw(st.sampled_from(["drop", "retype", "truncate", "text"]))
    bad = copy.deepcopy(msg)
    body = bad.get("data", bad)
    key = data.draw(st.sampled_from(REQUIRED[kind]))
    if how == "drop":
        del body[key]
        lines[at] = _line(at, bad)
    elif how == "retype":
        value = data.draw(st.sampled_from(BAD_VALUES))
        valid_for_key = (
            (key in ("b", "a", "bids", "asks") and value == [])
            or (key in ("U", "u", "pu", "t", "lastUpdateId") and value == -1)
            or (key == "m" and value is True)
            or (key == "r" and value == "")  # Binance sends "" when there is no rate
        )
        body[key] = [["1"]] if valid_for_key else value
        lines[at] = _line(at, bad)
    elif how == "truncate":
        cut = data.draw(st.integers(1, len(lines[at]) - 1))
        lines[at] = lines[at][:cut]
        if lines[at].strip() == "" or (lines[at].endswith("}") and _parses(lines[at])):
            return
    else:
        lines[at] = data.draw(st.text(min_size=1).filter(lambda s: s.strip() and "\n" not in s
                                                        and "\r" not in s))  # fmt: skip
    with pytest.raises(SchemaError, match=rf"^rec\.gz:{at + 1}: "):
        parse_hftbacktest_lines(lines, source="rec.gz", symbol="XUSDT")


def _parses(line: str) -> bool:
    try:
        parse_hftbacktest_lines([line], symbol="XUSDT")
    except SchemaError:
        return False
    return True
