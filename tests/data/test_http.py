"""HTTP layer against the loopback fake Binance: retries, 429/418, timeouts, weights."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest

from alphaforge.data.binance_weights import (
    endpoint_weight,
    futures_depth_weight,
    futures_klines_weight,
    spot_depth_weight,
)
from alphaforge.data.errors import IPBanned, RateLimited, RequestRejected, SourceError
from alphaforge.data.http import HttpClient, RetryPolicy, WeightLimiter
from tests.data.fake_binance import FakeBinance

ROWS = [
    [
        1_700_000_000_000 + i * 60_000,
        "1.0",
        "2.0",
        "0.5",
        "1.5",
        "10",
        1_700_000_059_999 + i * 60_000,
        "15",
        3,
        "5",
        "7.5",
        "0",
    ]
    for i in range(20)
]


class FakeClock:
    """Injectable clock whose sleep advances time instantly and records the waits."""

    def __init__(self, t0: float = 1_700_000_000.0) -> None:
        self.now = t0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    f = FakeBinance()
    f.add_klines("usdm", "BTCUSDT", "1m", ROWS)
    with f:
        yield f


def client(fake: FakeBinance, clock: FakeClock, **kw: object) -> HttpClient:
    kw.setdefault("retry", RetryPolicy(max_retries=4, backoff_base_s=0.5, backoff_cap_s=8))
    return HttpClient(fake.url, sleep=clock.sleep, clock=clock, rng=random.Random(7), **kw)


PARAMS = {"symbol": "BTCUSDT", "interval": "1m", "limit": 5}


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_5xx_is_retried_with_growing_jittered_backoff(fake: FakeBinance, status: str) -> None:
    clock = FakeClock()
    fake.add_fault("/fapi/v1/klines", status, count=3)
    body = client(fake, clock).get_json("/fapi/v1/klines", PARAMS, weight=1)
    assert [r[0] for r in body] == [r[0] for r in ROWS[-5:]]
    assert len(fake.requests_to("/fapi/v1/klines")) == 4
    assert len(clock.sleeps) == 3
    for k, s in enumerate(clock.sleeps):  # base * 2**k * U(0.5, 1)
        assert 0.5 * 0.5 * 2**k <= s <= 0.5 * 2**k


def test_5xx_past_budget_raises_source_error(fake: FakeBinance) -> None:
    clock = FakeClock()
    fake.add_fault("/fapi/v1/klines", "503", count=10)
    with pytest.raises(SourceError, match=r"gave up after 5 attempt\(s\); last failure: HTTP 503"):
        client(fake, clock).get_json("/fapi/v1/klines", PARAMS)
    assert len(fake.requests_to("/fapi/v1/klines")) == 5


def test_429_honours_retry_after_then_succeeds(fake: FakeBinance) -> None:
    clock = FakeClock()
    fake.add_fault("/fapi/v1/klines", "429", retry_after=7)
    c = client(fake, clock, limiter=WeightLimiter(2400, clock=clock, sleep=clock.sleep))
    assert len(c.get_json("/fapi/v1/klines", PARAMS)) == 5
    assert clock.sleeps == [7.0]
    assert c.state().retries == 1


def test_429_past_budget_raises_rate_limited(fake: FakeBinance) -> None:
    clock = FakeClock()
    fake.add_fault("/fapi/v1/klines", "429", count=10, retry_after=3)
    with pytest.raises(RateLimited) as ei:
        client(fake, clock, retry=RetryPolicy(max_retries=2)).get_json("/fapi/v1/klines", PARAMS)
    assert ei.value.retry_after_s == 3.0
    assert len(fake.requests_to("/fapi/v1/klines")) == 3


def test_418_stops_at_once_and_names_until_when(fake: FakeBinance) -> None:
    clock = FakeClock(t0=1_700_000_000.0)
    fake.add_fault("/fapi/v1/klines", "418", retry_after=120)
    with pytest.raises(IPBanned, match=r"banned until 2023-11-14 22:15:20 UTC") as ei:
        client(fake, clock).get_json("/fapi/v1/klines", PARAMS)
    assert ei.value.until_ms == (1_700_000_000 + 120) * 1000
    assert len(fake.requests_to("/fapi/v1/klines")) == 1
    assert clock.sleeps == []
    c = client(fake, clock)
    fake.add_fault("/fapi/v1/klines", "418", retry_after=120)
    with pytest.raises(IPBanned):
        c.get_json("/fapi/v1/klines", PARAMS)
    with pytest.raises(IPBanned, match="not sent"):  # the ban holds: nothing reaches the server
        c.get_json("/fapi/v1/klines", PARAMS)
    assert len(fake.requests_to("/fapi/v1/klines")) == 2
    clock.now += 121
    assert len(c.get_json("/fapi/v1/klines", PARAMS)) == 5


@pytest.mark.parametrize("kind", ["slow", "truncate"])
def test_timeout_and_truncated_body_are_retried(fake: FakeBinance, kind: str) -> None:
    clock = FakeClock()
    fake.add_fault("/fapi/v1/klines", kind, delay_s=0.6)
    c = client(fake, clock, timeout_s=(2.0, 0.25))
    assert len(c.get_json("/fapi/v1/klines", PARAMS)) == 5
    assert len(fake.requests_to("/fapi/v1/klines")) == 2


def test_4xx_is_not_retried_and_carries_binance_code(fake: FakeBinance) -> None:
    clock = FakeClock()
    with pytest.raises(RequestRejected, match="Invalid symbol") as ei:
        client(fake, clock).get_json("/fapi/v1/klines", dict(PARAMS, symbol="NOPEUSDT"))
    assert (ei.value.status, ei.value.code) == (400, -1121)
    assert len(fake.requests_to("/fapi/v1/klines")) == 1


def test_limiter_follows_server_used_weight_header(fake: FakeBinance) -> None:
    clock = FakeClock(t0=1_700_000_050.0)  # 10 s into a minute window
    lim = WeightLimiter(2400, headroom=0.9, clock=clock, sleep=clock.sleep)
    c = client(fake, clock, limiter=lim)
    c.get_json("/fapi/v1/klines", PARAMS, weight=1)
    st = c.state()
    assert (st.used_weight, st.limit) == (1, 2400)
    fake.used_weight_override = 2159  # someone else on this IP used almost all of the budget
    c.get_json("/fapi/v1/klines", PARAMS, weight=1)
    assert c.state().used_weight == 2159
    assert clock.sleeps == []
    c.get_json("/fapi/v1/klines", PARAMS, weight=5)  # 2159 + 5 > 2160: wait for next window
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] == pytest.approx(50.01)


def test_weight_limiter_budget_within_a_window() -> None:
    clock = FakeClock(t0=600.0)
    lim = WeightLimiter(100, headroom=0.5, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        lim.acquire(5)
        lim.release(5, None)
    assert clock.sleeps == []
    lim.acquire(5)
    assert clock.sleeps == [pytest.approx(60.01)]
    assert lim.state()[0] == 0  # new window


def test_concurrency_is_bounded(fake: FakeBinance) -> None:
    c = HttpClient(fake.url, max_concurrency=2, timeout_s=(2.0, 5.0))
    for _ in range(6):
        fake.add_fault("/fapi/v1/klines", "slow", delay_s=0.15)
    threads = [
        threading.Thread(target=c.get_json, args=("/fapi/v1/klines", PARAMS)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake.requests_to("/fapi/v1/klines")) == 6
    assert fake.max_in_flight == 2


def test_documented_weights() -> None:
    assert [futures_klines_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == [
        1,
        1,
        2,
        2,
        5,
        5,
        10,
        10,
    ]
    assert [spot_depth_weight(n) for n in (5, 100, 101, 500, 1000, 5000)] == [5, 5, 25, 25, 50, 250]
    assert [futures_depth_weight(n) for n in (5, 50, 100, 500, 1000)] == [2, 2, 5, 10, 20]
    assert endpoint_weight("/api/v3/klines", {"limit": 1000}) == 2
    assert endpoint_weight("/fapi/v1/markPriceKlines", {"limit": 1500}) == 10
    assert endpoint_weight("/fapi/v1/klines") == 5  # default limit 500
    assert endpoint_weight("/api/v3/exchangeInfo") == 20
    assert endpoint_weight("/fapi/v1/aggTrades", {"limit": 1000}) == 20


def test_download_streams_and_hashes(fake: FakeBinance) -> None:
    import hashlib
    import io

    from tests.data.fake_binance import build_zip

    fake.add_archive_file("data/futures/um/monthly/klines/X/1m/X-1m-2024-01.zip", b"1,2,3\n")
    fake.add_fault("/data/", "truncate")
    clock = FakeClock()
    buf = io.BytesIO()
    sha = client(fake, clock).download("/data/futures/um/monthly/klines/X/1m/X-1m-2024-01.zip", buf)
    blob = build_zip("X-1m-2024-01.csv", b"1,2,3\n")
    assert buf.getvalue() == blob
    assert sha == hashlib.sha256(blob).hexdigest()
    with pytest.raises(RequestRejected) as ei:
        client(fake, clock).download("/data/nope.zip", io.BytesIO())
    assert ei.value.status == 404
