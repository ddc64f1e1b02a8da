"""Binance REST client against the loopback fake serving real recorded rows."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.data import schemas
from alphaforge.data.archive import read_archive_csv
from alphaforge.data.binance_rest import STALE_RETRIES, BinanceRest
from alphaforge.data.errors import SchemaError, SourceError, UnknownSymbol
from alphaforge.data.http import RetryPolicy
from tests.data.fake_binance import FakeBinance, kline_rows_from_csv, read_text


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1_000_000)


FUT = "binance_futures_klines/AVAXUSDT-1m-2026-07.csv.gz"
SPOT = "binance_spot_klines/BTCUSDT-1h-2022-01.csv"
NOW = 2_000_000_000.0  # a clock after every recorded bar


def slice_time(t: pa.Table, col: str, lo: int, hi: int) -> pa.Table:
    ts = t.column(col).cast(pa.int64())
    return t.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))


@pytest.fixture(scope="module")
def fake(real_dir: Path) -> Iterator[FakeBinance]:
    f = FakeBinance()
    f.add_klines("usdm", "AVAXUSDT", "1m", kline_rows_from_csv(read_text(real_dir / FUT)))
    f.add_klines("usdm_mark", "AVAXUSDT", "1m", kline_rows_from_csv(read_text(real_dir / FUT)))
    f.add_klines("usdm_index", "AVAXUSDT", "1m", kline_rows_from_csv(read_text(real_dir / FUT)))
    f.add_klines("spot", "BTCUSDT", "1h", kline_rows_from_csv(read_text(real_dir / SPOT)))
    rest = real_dir / "rest_responses/nautilus_binance_spot"
    f.add_klines(
        "spot", "BTCUSDT", "1m", json.loads((rest / "http_spot_market_klines.json").read_text())
    )
    f.depth[("spot", "BTCUSDT")] = json.loads((rest / "http_spot_market_depth.json").read_text())
    xrp = json.loads(
        gzip.decompress((real_dir / "freqtrade_binance/XRP_OLD-trades.json.gz").read_bytes())
    )
    f.agg_trades[("spot", "XRPETH")] = [t["info"] for t in xrp]
    funding = json.loads(
        (real_dir / "freqtrade_binance/futures/XRP_USDT-8h-funding_rate.json").read_text()
    )
    f.funding["XRPUSDT"] = [
        {"symbol": "XRPUSDT", "fundingTime": r[0], "fundingRate": f"{r[1]:.8f}", "markPrice": ""}
        for r in funding
    ]
    with f:
        yield f


def rest(fake: FakeBinance, market: str, **kw: object) -> BinanceRest:
    kw.setdefault("clock", lambda: NOW)
    return BinanceRest(
        market,
        base_url=fake.url,
        retry=RetryPolicy(backoff_base_s=0.001),
        rng=random.Random(1),
        **kw,
    )


@pytest.mark.shared
def test_usdm_klines_pages_of_1500_without_holes_or_duplicates(
    fake: FakeBinance, real_dir: Path
) -> None:
    fake.log.clear()
    lo, hi = us("2026-07-03T00:00"), us("2026-07-06T00:00")
    got = rest(fake, "usdm").klines("AVAXUSDT", "1m", lo, hi)
    ref = slice_time(read_archive_csv(real_dir / FUT, "klines", "AVAXUSDT"), "open_time", lo, hi)
    assert got.num_rows == 3 * 1440
    assert got.equals(ref)
    reqs = fake.requests_to("/fapi/v1/klines")
    assert [int(q["limit"]) for _, q, _ in reqs] == [1500, 1500, 1500]
    assert int(reqs[1][1]["startTime"]) == int(reqs[0][1]["startTime"]) + 1500 * 60_000 - 60_000 + 1


@pytest.mark.shared
@pytest.mark.parametrize(
    "fault", ["overlap", "short_overlap", "stale", "repeat", "500", "truncate", "429"]
)
def test_klines_with_faults_equal_clean(fake: FakeBinance, real_dir: Path, fault: str) -> None:
    lo, hi = us("2026-07-10T00:00"), us("2026-07-10T10:00")
    clean = rest(fake, "usdm", page_limit=100).klines("AVAXUSDT", "1m", lo, hi)
    fake.add_fault("/fapi/v1/klines", fault, count=3, retry_after=0.01)
    faulty = rest(fake, "usdm", page_limit=100).klines("AVAXUSDT", "1m", lo, hi)
    assert clean.num_rows == 600
    assert faulty.equals(clean)
    assert not fake.faults


@pytest.mark.shared
def test_persistently_stale_pages_fail_loudly(fake: FakeBinance) -> None:
    lo, hi = us("2026-07-10T00:00"), us("2026-07-10T10:00")
    fake.add_fault("/fapi/v1/klines", "stale", count=2 + STALE_RETRIES)
    client = rest(fake, "usdm", page_limit=100)
    with pytest.raises(SourceError, match="stale pages"):
        client.klines("AVAXUSDT", "1m", lo, hi)
    fake.faults.clear()


@pytest.mark.shared
def test_spot_klines_page_limit_and_values(fake: FakeBinance, real_dir: Path) -> None:
    fake.log.clear()
    got = rest(fake, "spot").klines("BTCUSDT", "1h", us("2021-12-01T00:00"), us("2022-03-01"))
    ref = read_archive_csv(real_dir / SPOT, "klines", "BTCUSDT")
    assert got.equals(ref)
    # the short page (744 bars < 1000) is not taken as the end of the data: one more request,
    # answered empty, ends the range
    assert [int(q["limit"]) for _, q, _ in fake.requests_to("/api/v3/klines")] == [1000, 1000]
    paged = rest(fake, "spot", page_limit=100).klines("BTCUSDT", "1h", 0, us("2022-03-01"))
    assert paged.equals(ref)


@pytest.mark.shared
def test_real_rest_kline_response_converts_exactly(fake: FakeBinance, real_dir: Path) -> None:
    raw = json.loads(
        (real_dir / "rest_responses/nautilus_binance_spot/http_spot_market_klines.json").read_text()
    )
    got = rest(fake, "spot").klines("BTCUSDT", "1m", 0, us("2030-01-01"))
    assert got.schema == schemas.KLINES
    assert got.column("open_time").cast(pa.int64()).to_pylist() == [r[0] * 1000 for r in raw]
    assert got.column("close_time").cast(pa.int64()).to_pylist() == [r[6] * 1000 for r in raw]
    assert got.column("close").to_pylist() == [float(r[4]) for r in raw]
    assert got.column("taker_buy_quote_volume").to_pylist() == [float(r[10]) for r in raw]
    assert got.column("trades").to_pylist() == [r[8] for r in raw]


@pytest.mark.shared
def test_unclosed_bar_is_dropped(fake: FakeBinance) -> None:
    now = us("2026-07-10T00:30") / 1e6 + 10  # 10 s into the 00:30 bar
    got = rest(fake, "usdm", clock=lambda: now).klines(
        "AVAXUSDT", "1m", us("2026-07-10T00:00"), us("2026-07-11T00:00")
    )
    assert got.num_rows == 30
    assert got.column("open_time")[-1].as_py() == datetime(2026, 7, 10, 0, 29, tzinfo=UTC)


@pytest.mark.shared
def test_empty_range_and_unknown_symbol(fake: FakeBinance) -> None:
    fake.log.clear()
    empty = rest(fake, "usdm").klines("AVAXUSDT", "1m", us("2020-01-01"), us("2020-01-02"))
    assert empty.num_rows == 0
    assert empty.schema == schemas.KLINES
    assert len(fake.requests_to("/fapi/v1/klines")) == 1
    with pytest.raises(UnknownSymbol, match=r"usdm does not know symbol 'NOPEUSDT'.*-1121"):
        rest(fake, "usdm").klines("NOPEUSDT", "1m", us("2026-07-01"), us("2026-07-02"))
    with pytest.raises(SchemaError, match="not served by Binance spot"):
        rest(fake, "spot").klines("BTCUSDT", "1m", 0, 1, kind="mark_klines")


@pytest.mark.shared
def test_mark_and_index_klines_use_their_endpoints(fake: FakeBinance) -> None:
    fake.log.clear()
    lo, hi = us("2026-07-10T00:00"), us("2026-07-10T01:00")
    c = rest(fake, "usdm")
    mark = c.klines("AVAXUSDT", "1m", lo, hi, kind="mark_klines")
    index = c.klines("AVAXUSDT", "1m", lo, hi, kind="index_klines")
    assert mark.num_rows == index.num_rows == 60
    assert fake.requests_to("/fapi/v1/indexPriceKlines")[0][1]["pair"] == "AVAXUSDT"
    assert fake.requests_to("/fapi/v1/markPriceKlines")[0][1]["symbol"] == "AVAXUSDT"


@pytest.mark.shared
@pytest.mark.parametrize("fault", ["", "overlap", "short_overlap", "stale", "repeat", "502"])
def test_agg_trades_by_from_id_match_the_recording(
    fake: FakeBinance, real_dir: Path, fault: str
) -> None:
    xrp = [
        t["info"]
        for t in json.loads(
            gzip.decompress((real_dir / "freqtrade_binance/XRP_OLD-trades.json.gz").read_bytes())
        )
    ]
    lo, hi = us("2019-10-11T06:30"), us("2019-10-12T12:00")
    want = [t for t in xrp if lo <= t["T"] * 1000 < hi]
    if fault:
        fake.add_fault("/api/v3/aggTrades", fault, count=2)
    fake.log.clear()
    got = rest(fake, "spot").agg_trades("XRPETH", lo, hi)
    assert got.schema == schemas.AGG_TRADES
    assert got.column("agg_trade_id").to_pylist() == [t["a"] for t in want]
    assert got.column("price").to_pylist() == [float(t["p"]) for t in want]
    assert got.column("ts").cast(pa.int64()).to_pylist() == [t["T"] * 1000 for t in want]
    assert got.column("is_buyer_maker").to_pylist() == [t["m"] for t in want]
    pages = [q for _, q, _ in fake.requests_to("/api/v3/aggTrades") if "fromId" in q]
    assert all(q["limit"] == "1000" for q in pages)
    assert len(pages) >= len(want) // 1000


@pytest.mark.shared
def test_funding_pages(fake: FakeBinance, real_dir: Path) -> None:
    raw = json.loads(
        (real_dir / "freqtrade_binance/futures/XRP_USDT-8h-funding_rate.json").read_text()
    )
    got = rest(fake, "usdm", page_limit=30).funding("XRPUSDT", 0, us("2030-01-01"))
    assert got.column("funding_time").cast(pa.int64()).to_pylist() == [r[0] * 1000 for r in raw]
    assert got.column("funding_rate").to_pylist() == [float(f"{r[1]:.8f}") for r in raw]
    assert got.column("mark_price").null_count == len(raw)
    assert len(fake.requests_to("/fapi/v1/fundingRate")) >= 4


@pytest.mark.shared
def test_depth_snapshot(fake: FakeBinance, real_dir: Path) -> None:
    raw = json.loads(
        (real_dir / "rest_responses/nautilus_binance_spot/http_spot_market_depth.json").read_text()
    )
    t = rest(fake, "spot").depth("BTCUSDT", limit=5)
    assert t.schema == schemas.BOOK_SNAPSHOTS
    assert t.column("update_id").to_pylist() == [raw["lastUpdateId"]]
    assert t.column("bid_px").to_pylist() == [[float(p) for p, _ in raw["bids"][:5]]]
    assert t.column("ask_qty").to_pylist() == [[float(q) for _, q in raw["asks"][:5]]]


@pytest.mark.shared
def test_real_futures_depth_snapshots(real_dir: Path) -> None:
    """Real /fapi/v1/depth bodies (cryptofeed recording): ts is the transaction time T."""
    text = (real_dir / "binance_ws_cryptofeed/BINANCE_FUTURES.http.0.0").read_text()
    bodies = {}
    for line in text.splitlines():
        if " -> " in line:
            url, rest_ = line.split(" -> ", 1)
            sym = url.split("symbol=")[1].split("&")[0]
            bodies[sym] = json.loads(rest_.split(": ", 1)[1])
    assert len(bodies) >= 4
    with FakeBinance() as f:
        for sym, body in bodies.items():
            f.depth[("usdm", sym)] = body
        c = rest(f, "usdm")
        for sym, body in bodies.items():
            t = c.depth(sym, limit=1000)
            assert t.column("ts").cast(pa.int64()).to_pylist() == [body["T"] * 1000]
            assert t.column("update_id").to_pylist() == [body["lastUpdateId"]]
            bids = t.column("bid_px").to_pylist()[0]
            asks = t.column("ask_px").to_pylist()[0]
            assert bids == [float(p) for p, _ in body["bids"]]
            assert bids == sorted(bids, reverse=True)
            assert asks == sorted(asks)
            assert bids[0] < asks[0]
        assert f.requests_to("/fapi/v1/depth")[0][1]["limit"] == "1000"


@pytest.mark.shared
@settings(max_examples=15)
@given(
    start_min=st.integers(0, 43_000),
    span_min=st.integers(0, 1_500),
    page_limit=st.integers(40, 800),
    faults=st.lists(st.sampled_from(["overlap", "repeat", "500", "truncate"]), max_size=4),
)
def test_pagination_property_no_holes_no_duplicates(
    fake: FakeBinance, real_dir: Path, start_min: int, span_min: int, page_limit: int,
    faults: list[str],
) -> None:  # fmt: skip
    """Any window, any page size, any fault mix: exactly the recorded bars of the window."""
    ref = _july(real_dir)
    lo = us("2026-07-01") + start_min * 60_000_000
    hi = lo + span_min * 60_000_000 + random.Random(start_min).randint(0, 59_999_999)
    fake.faults.clear()
    for kind in faults:
        fake.add_fault("/fapi/v1/klines", kind)
    got = rest(fake, "usdm", page_limit=page_limit).klines("AVAXUSDT", "1m", lo, hi)
    fake.faults.clear()  # unused faults must not leak into other tests
    assert got.equals(slice_time(ref, "open_time", lo, hi))


_JULY: dict[str, pa.Table] = {}


def _july(real_dir: Path) -> pa.Table:
    if "t" not in _JULY:
        _JULY["t"] = read_archive_csv(real_dir / FUT, "klines", "AVAXUSDT")
    return _JULY["t"]


@pytest.mark.shared
def test_agg_trades_pull_fills_the_front_and_inner_holes(fake: FakeBinance,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """aggTrades resume at the first id the store lacks, not after the last stored one: an
    earlier-starting pull fills the front, a hole in the ids is fetched again, and the
    completeness ledger is empty once the store is whole."""
    from alphaforge.data.pull import pull
    from alphaforge.data.store import Store

    lo, mid, hi = us("2019-10-11T06:30"), us("2019-10-11T12:00"), us("2019-10-12T12:00")

    def run(store: Store, start: int) -> object:
        return pull(store, source="rest", market="spot", dataset="agg_trades",
                    symbols=["XRPETH"], start=start, end=hi, rest=rest(fake, "spot"))  # fmt: skip

    clean = Store(tmp_path / "clean")
    assert run(clean, lo).missing == []
    want = clean.read("agg_trades", market="spot")
    store = Store(tmp_path / "st")
    run(store, mid)
    rep = run(store, lo)  # starts earlier than what is stored
    assert rep.missing == []
    assert store.read("agg_trades", market="spot").equals(want)
    holed = Store(tmp_path / "holed")
    n = want.num_rows
    holed.write(want.slice(0, n // 3).combine_chunks(), "agg_trades", market="spot")
    holed.write(want.slice(n // 2).combine_chunks(), "agg_trades", market="spot")
    rep = run(holed, lo)
    assert rep.missing == []
    assert holed.read("agg_trades", market="spot").equals(want)
