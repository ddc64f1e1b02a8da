"""Tests of data.synthetic: determinism, schemas, bar invariants, planted IC, stylized facts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from alphaforge.data import schemas
from alphaforge.data.errors import ParameterError
from alphaforge.data.synthetic import PLANTED, SyntheticMarket, generate_market

MIN_US = 60_000_000
H8_US = 8 * 3_600_000_000


def _us(col: pa.ChunkedArray) -> np.ndarray:
    return col.cast(pa.int64()).to_numpy()


def _grid(table: pa.Table, name: str, n: int) -> np.ndarray:
    """Column ``name`` of a symbol-major table as (N, T)."""
    return table[name].to_numpy().reshape(n, -1)


@pytest.fixture(scope="module")
def small() -> SyntheticMarket:
    return generate_market(n_symbols=4, n_bars=3000, seed=11, book_levels=6, book_every=2)


def test_same_seed_identical_tables_and_other_seed_differs() -> None:
    kw = {"n_symbols": 3, "n_bars": 500, "book_levels": 4, "book_every": 3}
    a, b = generate_market(seed=5, **kw), generate_market(seed=5, **kw)
    for name in ("klines", "funding", "books", "planted"):
        assert getattr(a, name).equals(getattr(b, name)), name
    c = generate_market(seed=6, **kw)
    assert not a.klines.equals(c.klines)
    assert not a.planted.equals(c.planted)
    assert not np.array_equal(a.books["bid_qty"].to_pylist(), c.books["bid_qty"].to_pylist())


def test_a_symbol_does_not_depend_on_how_many_others_are_generated() -> None:
    few = generate_market(n_symbols=2, n_bars=400, seed=9, book_levels=0, planted_ic=0.0)
    many = generate_market(n_symbols=5, n_bars=400, seed=9, book_levels=0, planted_ic=0.0)
    assert many.klines.slice(0, 800).equals(few.klines)


def test_schemas_equal_the_declared_ones_and_are_labelled(small: SyntheticMarket) -> None:
    pairs = [
        (small.klines, schemas.KLINES),
        (small.funding, schemas.FUNDING),
        (small.books, schemas.BOOK_SNAPSHOTS),
        (small.planted, PLANTED),
    ]
    for table, schema in pairs:
        assert table.schema.equals(schema), (table.schema, schema)
        assert table.schema.metadata[b"alphaforge.synthetic"] == b"true"
        assert table.num_rows > 0
    assert schemas.conform(small.klines, "klines").equals(small.klines)
    assert small.meta["synthetic"] is True
    assert small.meta["seed"] == 11
    assert small.meta["planted_ic"] == 0.05
    assert small.meta["parameters"]["book_levels"] == 6
    assert set(small.meta["symbols"]) == {f"SYN{i:03d}USDT" for i in range(4)}


def test_spot_has_no_funding_and_no_books_when_levels_zero() -> None:
    m = generate_market(n_symbols=2, n_bars=100, market="spot", book_levels=0)
    assert m.funding.num_rows == 0
    assert m.funding.schema.equals(schemas.FUNDING)
    assert m.books.num_rows == 0
    assert m.books.schema.equals(schemas.BOOK_SNAPSHOTS)
    assert m.books.schema.metadata[b"alphaforge.synthetic"] == b"true"


def _check_klines(m: SyntheticMarket, n: int, t: int, step: int) -> None:
    k = m.klines
    assert k.num_rows == n * t
    assert k["symbol"].to_pylist()[::t] == [f"SYN{i:03d}USDT" for i in range(n)]
    o, h, lo, c = (_grid(k, x, n) for x in ("open", "high", "low", "close"))
    vol, qv = _grid(k, "volume", n), _grid(k, "quote_volume", n)
    tbv, tbq = _grid(k, "taker_buy_volume", n), _grid(k, "taker_buy_quote_volume", n)
    assert (lo > 0).all()
    assert (lo <= np.minimum(o, c)).all()
    assert (h >= np.maximum(o, c)).all()
    assert (vol > 0).all()
    assert ((tbv >= 0) & (tbv <= vol)).all()
    assert ((qv >= lo * vol) & (qv <= h * vol)).all()
    assert ((tbq >= lo * tbv) & (tbq <= h * tbv) & (tbq <= qv)).all()
    assert (_grid(k, "trades", n) >= 1).all()
    ot = _us(k["open_time"]).reshape(n, t)
    assert (np.diff(ot, axis=1) == step).all()  # monotone, no gaps
    assert (ot % step == 0).all()
    assert (_us(k["close_time"]).reshape(n, t) == ot + step - 1000).all()
    assert (_us(m.planted["ts"]).reshape(n, t) == ot + step).all()


def _check_books(m: SyntheticMarket, levels: int, every: int, step: int) -> None:
    b = m.books
    n, t = len(m.meta["symbols"]), m.meta["parameters"]["n_bars"]
    assert b.num_rows == n * (t // every)
    bid = np.array(b["bid_px"].to_pylist())
    ask = np.array(b["ask_px"].to_pylist())
    assert bid.shape == (b.num_rows, levels)
    assert (bid[:, :-1] > bid[:, 1:]).all()  # strictly descending
    assert (ask[:, :-1] < ask[:, 1:]).all()  # strictly ascending
    assert (bid[:, 0] < ask[:, 0]).all()  # never crossed or locked
    assert (bid > 0).all()
    assert (np.array(b["bid_qty"].to_pylist()) > 0).all()
    ticks = np.repeat([s["tick_size"] for s in m.meta["symbols"].values()], t // every)
    units = np.concatenate([bid, ask], axis=1) / ticks[:, None]
    np.testing.assert_allclose(units, np.rint(units), rtol=0, atol=1e-6)
    ts = _us(b["ts"]).reshape(n, -1)
    ot = _us(m.klines["open_time"]).reshape(n, t)
    np.testing.assert_array_equal(ts, ot[:, every - 1 :: every] + step)
    assert (np.diff(b["update_id"].to_numpy().reshape(n, -1), axis=1) > 0).all()


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 5),
    t=st.integers(2, 300),
    interval=st.sampled_from(["1m", "5m", "1h", "1d"]),
    levels=st.integers(0, 6),
    every=st.integers(1, 3),
)
def test_bar_and_book_invariants(
    seed: int, n: int, t: int, interval: str, levels: int, every: int
) -> None:
    step = schemas.INTERVAL_US[interval]
    m = generate_market(
        n_symbols=n, n_bars=t, interval=interval, seed=seed, book_levels=levels,
        book_every=every, planted_ic=0.05 if n > 1 else 0.0,
    )  # fmt: skip
    _check_klines(m, n, t, step)
    if levels:
        _check_books(m, levels, every, step)
    else:
        assert m.books.num_rows == 0


def _mean_rank_ic(m: SyntheticMarket, n: int) -> tuple[float, float]:
    """Mean and standard error of the per-bar Spearman of planted[t] vs return of bar t+1."""
    sig = _grid(m.planted, "planted_signal", n).T  # (T, N)
    ret = (_grid(m.klines, "close", n) / _grid(m.klines, "open", n) - 1.0).T
    rs = stats.rankdata(sig[:-1], axis=1)
    rr = stats.rankdata(ret[1:], axis=1)
    rs -= rs.mean(axis=1, keepdims=True)
    rr -= rr.mean(axis=1, keepdims=True)
    ic = (rs * rr).sum(axis=1) / np.sqrt((rs**2).sum(axis=1) * (rr**2).sum(axis=1))
    assert np.isnan(sig[-1]).all()  # no next bar for the last one
    return float(ic.mean()), float(ic.std(ddof=1) / np.sqrt(ic.size))


@pytest.mark.parametrize(("n", "ic"), [(30, 0.05), (5, 0.1), (12, -0.08), (20, 0.0)])
def test_planted_ic_is_recovered_within_three_standard_errors(n: int, ic: float) -> None:
    m = generate_market(n_symbols=n, n_bars=6000, seed=21, planted_ic=ic, book_levels=0)
    mean, se = _mean_rank_ic(m, n)
    assert abs(mean - ic) < 3 * se, (mean, se, ic)
    assert abs(m.meta["planted_ic_realized"] - mean) < 0.2 * se + 1e-3


def test_planted_ic_is_detectably_nonzero_when_planted() -> None:
    mean, se = _mean_rank_ic(generate_market(n_symbols=20, n_bars=6000, book_levels=0), 20)
    assert mean / se > 5


def test_volatility_clusters_and_tails_are_fat() -> None:
    n, t = 3, 20_000
    m = generate_market(n_symbols=n, n_bars=t, interval="5m", seed=4, book_levels=0)
    r = np.log(_grid(m.klines, "close", n) / _grid(m.klines, "open", n))
    for x in r:
        a = np.abs(x - x.mean())
        acf = [np.corrcoef(a[:-lag], a[lag:])[0, 1] for lag in (1, 5, 20)]
        assert min(acf) > 4 / np.sqrt(t), acf
        assert stats.kurtosis(x, fisher=False) > 4.0
        assert np.corrcoef(x[:-1], x[1:])[0, 1] < 0.05  # returns themselves barely autocorrelated


def test_volume_has_an_intraday_season_and_follows_absolute_returns() -> None:
    n, t = 4, 14_400
    m = generate_market(n_symbols=n, n_bars=t, seed=8, book_levels=0)
    vol = _grid(m.klines, "quote_volume", n)
    hour = (_us(m.klines["open_time"])[:t] // 3_600_000_000) % 24
    by_hour = np.array([vol[:, hour == h].mean() for h in range(24)])
    assert by_hour[13:17].mean() > 1.8 * by_hour[1:5].mean()
    r = np.abs(np.log(_grid(m.klines, "close", n) / _grid(m.klines, "open", n)))
    for i in range(n):
        assert stats.spearmanr(r[i], vol[i]).statistic > 0.2


def test_funding_every_eight_hours_exactly(small: SyntheticMarket) -> None:
    f = small.funding
    n = 4
    ft = _us(f["funding_time"]).reshape(n, -1)
    assert (np.diff(ft, axis=1) == H8_US).all()
    assert (ft % H8_US == 0).all()
    ot = _us(small.klines["open_time"]).reshape(n, -1)
    assert ft[0, 0] >= ot[0, 0]
    assert ft[0, -1] < ot[0, -1] + MIN_US
    assert ft.shape[1] == 7  # 3000 minutes from midnight: 00, 08, 16, 00, 08, 16, 00 h
    rate = f["funding_rate"].to_numpy()
    assert (np.abs(rate) <= 0.003).all()
    np.testing.assert_allclose(rate, np.round(rate, 8), rtol=0, atol=1e-15)
    col = (ft[0] - ot[0, 0]) // MIN_US
    np.testing.assert_array_equal(
        f["mark_price"].to_numpy().reshape(n, -1), _grid(small.klines, "open", n)[:, col]
    )
    eight_h = generate_market(n_symbols=2, n_bars=40, interval="1h", funding_interval_h=4)
    assert (np.diff(_us(eight_h.funding["funding_time"])[:10]) == 4 * 3_600_000_000).all()


def test_book_depth_follows_volume_and_sits_around_the_close(small: SyntheticMarket) -> None:
    b, n = small.books, 4
    bid_px = np.array(b["bid_px"].to_pylist())
    ask_px = np.array(b["ask_px"].to_pylist())
    close = _grid(small.klines, "close", n)[:, 1::2].ravel()
    assert (bid_px[:, 0] <= close).all()
    assert (ask_px[:, 0] > close).all()
    spread_bps = (ask_px[:, 0] - bid_px[:, 0]) / close * 1e4
    assert 0.05 < np.median(spread_bps) < 10
    depth = np.array(b["bid_qty"].to_pylist()).sum(1) + np.array(b["ask_qty"].to_pylist()).sum(1)
    vol = _grid(small.klines, "volume", n)[:, 1::2]
    for i, d in enumerate(depth.reshape(n, -1)):
        res = stats.spearmanr(d, vol[i])
        assert res.statistic > 0.3
        assert res.pvalue < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_symbols": 0}, "n_symbols"),
        ({"n_bars": 1}, "n_bars"),
        ({"interval": "7m"}, "interval"),
        ({"start": "2024-01-01T00:00:30"}, "start"),
        ({"start": "not a date"}, "start"),
        ({"planted_ic": 1.5}, "planted_ic"),
        ({"n_symbols": 1, "planted_ic": 0.1}, "n_symbols"),
        ({"market": "coinm"}, "market"),
        ({"book_every": 0}, "book_every"),
        ({"n_symbols": 100, "n_bars": 1_000_000}, "max_book_bytes"),
    ],
)
def test_bad_parameters_raise_parameter_error_naming_them(kwargs: dict, needle: str) -> None:
    with pytest.raises(ParameterError, match=needle):
        generate_market(**kwargs)


def test_market_record_refuses_unlabelled_meta(small: SyntheticMarket) -> None:
    with pytest.raises(ParameterError, match="synthetic"):
        SyntheticMarket(small.klines, small.funding, small.books, small.planted, meta={})
