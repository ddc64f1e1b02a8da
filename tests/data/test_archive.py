"""Binance bulk-archive reader: real files, header/no header, ms/µs, zip/gz/bytes, bad input."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.data import schemas
from alphaforge.data.archive import read_archive_csv, read_archive_path
from alphaforge.data.errors import SchemaError

KLINE_COLS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]
FLOAT_MAP = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "quote_volume": "quote_volume",
    "taker_buy_volume": "taker_buy_volume",
    "taker_buy_quote_volume": "taker_buy_quote_volume",
}


def _plain_parse(path: Path) -> pd.DataFrame:
    """Reference parse with pandas (correctly rounded floats), header decided by hand."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        first = fh.readline()
    header = 0 if not first[0].isdigit() else None
    df = pd.read_csv(path, header=header)
    df.columns = KLINE_COLS
    return df


def assert_klines_equal(table: pa.Table, ref: pd.DataFrame, symbol: str) -> None:
    assert table.schema == schemas.KLINES
    assert table.num_rows == len(ref)
    assert set(table.column("symbol").to_pylist()) == {symbol}
    ot = table.column("open_time").cast(pa.int64()).to_numpy()
    ct = table.column("close_time").cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(ot, ref["open_time"].to_numpy(np.int64) * 1000)
    np.testing.assert_array_equal(ct, ref["close_time"].to_numpy(np.int64) * 1000)
    np.testing.assert_array_equal(table.column("trades").to_numpy(), ref["count"].to_numpy())
    for src, dst in FLOAT_MAP.items():
        np.testing.assert_array_equal(
            table.column(dst).to_numpy(), ref[src].to_numpy(np.float64), err_msg=dst
        )


@pytest.mark.shared
def test_zip_bytes_filelike_and_header_variants_agree(real_dir: Path) -> None:
    path = real_dir / "binance_futures_klines" / "AVAXUSDT-1m-2026-07.csv.gz"
    text = b"\n".join(gzip.decompress(path.read_bytes()).split(b"\n")[:3001]) + b"\n"
    header, body = text.split(b"\n", 1)
    assert header.startswith(b"open_time")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("AVAXUSDT-1m-2026-07.csv", body)  # spot style: no header
    ref = read_archive_csv(text, "klines", "AVAXUSDT")
    assert ref.num_rows == 3000
    assert ref.equals(read_archive_path(path, "klines_1m").slice(0, 3000))
    for variant in (text, body, buf.getvalue(), io.BytesIO(buf.getvalue()), gzip.compress(body)):
        assert read_archive_csv(variant, "klines", "AVAXUSDT").equals(ref)


@pytest.mark.shared
def test_microsecond_file_is_detected(real_dir: Path) -> None:
    """Spot archive files from 2025 carry µs: same instants as the ms rendering."""
    path = real_dir / "binance_spot_klines" / "ADABTC-1m-2021-11-27.csv"
    lines = path.read_bytes().decode().splitlines()
    micro = []
    for line in lines:
        f = line.split(",")
        f[0] = str(int(f[0]) * 1000)
        f[6] = str(int(f[6]) * 1000 + 999)  # µs close time ends in ...999999
        micro.append(",".join(f))
    got = read_archive_csv("\n".join(micro).encode(), "klines", "ADABTC")
    ref = read_archive_csv(path, "klines", "ADABTC")
    assert got.column("open_time").equals(ref.column("open_time"))
    ct_ref = ref.column("close_time").cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(
        got.column("close_time").cast(pa.int64()).to_numpy(), ct_ref + 999
    )
    assert got.column("open_time")[0].as_py().isoformat() == "2021-11-27T00:00:00+00:00"


def test_mixed_units_in_one_file_is_an_error() -> None:
    rows = b"1637971200000,1,1,1,1,1,1637971259999,1,1,1,1,0\n"
    rows += b"1637971260000000,1,1,1,1,1,1637971319999999,1,1,1,1,0\n"
    with pytest.raises(SchemaError, match="mixes millisecond and microsecond"):
        read_archive_csv(rows, "klines", "X")


def test_bad_value_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "BTCUSDT-1m-2024-01.csv"
    bad.write_bytes(b"1704067200000,1,1,1,oops,1,1704067259999,1,1,1,1,0\n")
    with pytest.raises(SchemaError, match=r"BTCUSDT-1m-2024-01\.csv"):
        read_archive_csv(bad, "klines", "BTCUSDT")


def test_wrong_column_count_and_unknown_dataset() -> None:
    with pytest.raises(SchemaError, match="3 columns"):
        read_archive_csv(b"1,2,3\n", "klines", "X")
    with pytest.raises(SchemaError, match="unknown archive dataset"):
        read_archive_csv(b"1,2,3\n", "orderbook", "X")


def test_empty_file_gives_empty_table() -> None:
    assert read_archive_csv(b"", "agg_trades", "X").equals(schemas.AGG_TRADES.empty_table())


@pytest.mark.shared
def test_agg_trades_spot_and_futures_layouts(real_dir: Path) -> None:
    """Real REST aggTrades rendered as spot (8 cols, no header) and USD-M (7 cols, header)."""
    import json

    raw = json.loads(
        (
            real_dir / "rest_responses/nautilus_binance_spot/http_spot_market_agg_trades.json"
        ).read_text()
    )
    spot = "".join(
        f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{t['T']},{t['m']},{t['M']}\n" for t in raw
    )
    fut = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
    fut += "".join(
        f"{t['a']},{t['p']},{t['q']},{t['f']},{t['l']},{t['T']},{str(t['m']).lower()}\n"
        for t in raw
    )
    a = read_archive_csv(spot.encode(), "agg_trades", "BTCUSDT")
    b = read_archive_csv(fut.encode(), "agg_trades", "BTCUSDT")
    assert a.equals(b)
    assert a.schema == schemas.AGG_TRADES
    assert a.column("agg_trade_id").to_pylist() == [t["a"] for t in raw]
    assert a.column("price").to_pylist() == [float(t["p"]) for t in raw]
    assert a.column("is_buyer_maker").to_pylist() == [t["m"] for t in raw]
    assert a.column("ts").cast(pa.int64()).to_pylist() == [t["T"] * 1000 for t in raw]


@pytest.mark.shared
def test_book_ticker_real_file(real_dir: Path) -> None:
    path = real_dir / "binance_bookticker" / "BTCUSDT-bookTicker-2023-10-02-short.csv.gz"
    t = read_archive_csv(path, "book_ticker", "BTCUSDT")
    ref = pd.read_csv(path)
    assert t.num_rows == len(ref) == 9_999
    np.testing.assert_array_equal(t.column("update_id").to_numpy(), ref["update_id"].to_numpy())
    np.testing.assert_array_equal(t.column("bid_px").to_numpy(), ref["best_bid_price"].to_numpy())
    np.testing.assert_array_equal(t.column("ask_qty").to_numpy(), ref["best_ask_qty"].to_numpy())
    np.testing.assert_array_equal(
        t.column("ts").cast(pa.int64()).to_numpy(), ref["transaction_time"].to_numpy() * 1000
    )


def test_funding_and_trades_layouts() -> None:
    fund = b"calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,0.00037409\n"
    f = read_archive_csv(fund, "funding", "BTCUSDT")
    assert f.schema == schemas.FUNDING
    assert f.column("funding_rate").to_pylist() == [0.00037409]
    assert f.column("mark_price").null_count == 1
    assert f.column("funding_time").cast(pa.int64()).to_pylist() == [1704067200000 * 1000]
    spot = b"100,42000.5,0.01,420.005,1735689600123456,True,True\n"  # 2025 spot: µs
    fut = (
        b"id,price,qty,quote_qty,time,is_buyer_maker\n100,42000.5,0.01,420.005,1735689600123,true\n"
    )
    ts = read_archive_csv(spot, "trades", "BTCUSDT")
    tf = read_archive_csv(fut, "trades", "BTCUSDT")
    assert ts.column("ts").cast(pa.int64()).to_pylist() == [1735689600123456]
    assert tf.column("ts").cast(pa.int64()).to_pylist() == [1735689600123000]
    assert ts.drop_columns(["ts"]).equals(tf.drop_columns(["ts"]))


_price = st.decimals(min_value="0.00000001", max_value="99999", places=8).map(str)


@given(
    rows=st.lists(
        st.tuples(st.integers(1_500_000_000, 2_000_000_000), _price, _price, st.integers(0, 10**6)),
        min_size=1,
        max_size=30,
    ),
    header=st.booleans(),
    micros=st.booleans(),
    crlf=st.booleans(),
)
def test_parser_property_matches_python(
    rows: list[tuple[int, str, str, int]], header: bool, micros: bool, crlf: bool
) -> None:
    """Any well-formed kline CSV parses to exactly the values Python's float/int give."""
    scale = 1_000_000 if micros else 1_000
    nl = "\r\n" if crlf else "\n"
    lines = [",".join(KLINE_COLS)] if header else []
    for sec, px, vol, n in rows:
        t = sec * scale
        lines.append(f"{t},{px},{px},{px},{px},{vol},{t + 59 * scale},{vol},{n},{vol},{vol},0")
    table = read_archive_csv((nl.join(lines) + nl).encode(), "klines", "SYM")
    assert table.column("open_time").cast(pa.int64()).to_pylist() == [r[0] * 10**6 for r in rows]
    assert table.column("open").to_pylist() == [float(r[1]) for r in rows]
    assert table.column("volume").to_pylist() == [float(r[2]) for r in rows]
    assert table.column("trades").to_pylist() == [r[3] for r in rows]


@pytest.mark.shared
@settings(max_examples=25)
@given(row=st.integers(1, 2_000), how=st.sampled_from(["value", "columns"]),
       packed=st.sampled_from(["csv", "gz", "zip"]))  # fmt: skip
def test_a_parse_error_names_the_line(real_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                                      row: int, how: str, packed: str) -> None:  # fmt: skip
    """A bad value or a short line anywhere in a real month is reported with its line."""
    import gzip as gz
    import zipfile as zf

    from alphaforge.data.errors import SchemaError

    path = real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz"
    with gz.open(path) as fh:
        lines = fh.read().splitlines()[:2_001]  # the header and 2,000 rows
    lines[row] = lines[row].replace(b",", b",oops", 1) if how == "value" else b"1,2,3"
    text = b"\n".join(lines) + b"\n"
    out = tmp_path_factory.mktemp("bad") / f"DOTUSDT-1m-2026-02.{packed}"
    if packed == "zip":
        with zf.ZipFile(out, "w") as z:
            z.writestr("DOTUSDT-1m-2026-02.csv", text)
    else:
        out.write_bytes(gz.compress(text) if packed == "gz" else text)
    with pytest.raises(SchemaError, match=rf"at line {row + 1}\b"):
        read_archive_csv(out, "klines", "DOTUSDT")
