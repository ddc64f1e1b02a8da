"""Universe: listings from the store, exchangeInfo and REST; the (T, N) tradable mask."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from alphaforge.data.archive import read_archive_csv
from alphaforge.data.binance_rest import BinanceRest
from alphaforge.data.errors import SchemaError
from alphaforge.data.http import RetryPolicy
from alphaforge.data.store import Store
from alphaforge.data.universe import (
    Listing,
    fetch_listings,
    listings_from_exchange_info,
    listings_from_store,
    merge_listings,
    tradable_mask,
)
from tests.data.fake_binance import FakeBinance, kline_rows_from_csv, read_text

MIN = 60_000_000


def real_futures_exchange_info(real_dir: Path) -> dict:
    line = (real_dir / "binance_ws_cryptofeed/BINANCE_FUTURES.0").read_text().splitlines()[0]
    return json.loads(line[line.index(": {") + 2 :])


def test_mask_by_hand() -> None:
    listings = {
        "A": Listing("A", first_us=100, last_us=300, status="TRADING", interval_us=10),
        "B": Listing("B", first_us=200, last_us=300, status="BREAK", interval_us=10),
        "C": Listing("C", onboard_us=150, delivery_us=250),
    }
    ts = np.array([50, 100, 150, 200, 249, 250, 309, 310, 400])
    got = tradable_mask(ts, ["A", "B", "C", "D"], listings)
    want = np.array(
        [
            # A  B  C  D(unknown)
            [0, 0, 0, 0],
            [1, 0, 0, 0],
            [1, 0, 1, 0],
            [1, 1, 1, 0],
            [1, 1, 1, 0],
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [1, 0, 0, 0],
            [1, 0, 0, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(got, want)
    assert got.shape == (9, 4)
    with pytest.raises(SchemaError, match="1-D int64"):
        tradable_mask(np.zeros((2, 2), dtype=np.int64), ["A"], listings)


@pytest.mark.shared
def test_real_exchange_info(real_dir: Path) -> None:
    info = listings_from_exchange_info(real_futures_exchange_info(real_dir))
    assert len(info) == 122
    btc = info["BTCUSDT"]
    assert btc.status == "TRADING"
    assert btc.onboard_us == 1_569_398_400_000_000
    assert btc.delivery_us is None  # perpetual
    assert info["BTCUSDT_210924"].delivery_us == 1_632_470_400_000_000
    assert info["BTCSTUSDT"].status == "PENDING_TRADING"
    ts = np.array([1_569_398_399_999_999, 1_569_398_400_000_000, 1_632_470_400_000_000])
    m = tradable_mask(ts, ["BTCUSDT", "BTCUSDT_210924", "BTCSTUSDT"], info)
    np.testing.assert_array_equal(m[:, 0], [False, True, True])
    assert not m[:, 2].any()  # not trading and no bar ever seen
    on, dl = 1_623_830_400_000_000, 1_632_470_400_000_000  # quarterly: onboard .. delivery
    q = tradable_mask(np.array([on - 1, on, dl - 1, dl]), ["BTCUSDT_210924"], info)
    np.testing.assert_array_equal(q[:, 0], [False, True, True, False])


@pytest.mark.shared
def test_store_listings_and_delisting(real_dir: Path, tmp_path: Path) -> None:
    store = Store(tmp_path)
    k = real_dir / "binance_futures_klines"
    for name in ("ALGOUSDT-1m-2023-02.csv.gz", "AVAXUSDT-1m-2026-06.csv.gz",
                 "AVAXUSDT-1m-2026-07.csv.gz"):  # fmt: skip
        store.write(read_archive_csv(k / name, "klines", name.split("-")[0]), "klines_1m")
    seen = listings_from_store(store, "klines_1m", interval_us=MIN)
    algo, avax = seen["ALGOUSDT"], seen["AVAXUSDT"]
    assert algo.first_us == 1_675_209_600_000_000  # 2023-02-01 00:00 UTC
    assert algo.last_us == 1_677_628_740_000_000  # 2023-02-28 23:59 UTC
    assert avax.first_us == 1_780_272_000_000_000  # 2026-06-01
    # without the exchange's word, bars ending before the end of the data mean a delisting
    assert algo.delisted_at_us == algo.last_us + MIN
    assert avax.delisted_at_us is None
    exchange = {"AVAXUSDT": Listing("AVAXUSDT", status="TRADING")}  # ALGO no longer listed
    merged = merge_listings(seen, exchange)
    assert merged["ALGOUSDT"].status == ""
    assert merged["ALGOUSDT"].delisted_at_us == algo.last_us + MIN
    ts = np.array([algo.first_us - 1, algo.first_us, algo.last_us, algo.last_us + MIN,
                   avax.first_us, 2_000_000_000_000_000])  # fmt: skip
    m = tradable_mask(ts, ["ALGOUSDT", "AVAXUSDT"], merged)
    np.testing.assert_array_equal(m[:, 0], [False, True, True, False, False, False])
    np.testing.assert_array_equal(m[:, 1], [False, False, False, False, True, True])


@pytest.mark.shared
def test_fetch_listings_over_rest(real_dir: Path) -> None:
    rows = kline_rows_from_csv(read_text(real_dir / "binance_futures_klines/DOTUSDT-1m-2024-11"
                                                    ".csv.gz"))  # fmt: skip
    with FakeBinance() as fake:
        fake.add_klines("usdm", "AVAXUSDT", "1m", rows)
        fake.add_klines("usdm", "DOTUSDT", "1m", rows)
        fake.add_symbol("usdm", "AVAXUSDT", onboardDate=1600819200000)
        fake.add_symbol("usdm", "DOTUSDT", status="SETTLING", onboardDate=1597042800000)
        rest = BinanceRest("usdm", base_url=fake.url, retry=RetryPolicy(backoff_base_s=0.001),
                           rng=random.Random(0))  # fmt: skip
        got = fetch_listings(rest, ["AVAXUSDT", "DOTUSDT", "GONEUSDT"], interval="1m")
    assert got["AVAXUSDT"].first_us == rows[0][0] * 1000
    assert got["AVAXUSDT"].last_us is None  # still trading: open-ended
    assert got["AVAXUSDT"].delisted_at_us is None
    assert got["DOTUSDT"].last_us == rows[-1][0] * 1000
    assert got["DOTUSDT"].delisted_at_us == rows[-1][0] * 1000 + MIN
    assert got["GONEUSDT"].listed_from_us is None
    m = tradable_mask(np.array([rows[0][0] * 1000]), ["AVAXUSDT", "DOTUSDT", "GONEUSDT"], got)
    np.testing.assert_array_equal(m[0], [True, True, False])
