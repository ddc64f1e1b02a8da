"""Reconciliation: klines vs aggTrades, archive vs REST-like tables, spot vs futures basis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from alphaforge.data.archive import read_archive_path
from alphaforge.data.cdd import read_cdd_csv
from alphaforge.data.schemas import KLINES
from alphaforge.data.validate import basis_outliers, reconcile_klines_agg_trades, reconcile_tables
from alphaforge.data.validate_reconcile import rebuild_klines
from tests.data.test_validate_streams import _agg

IV = 60_000_000


def _pandas_klines(agg: pa.Table) -> pd.DataFrame:
    df = agg.to_pandas()
    df["n"] = df["last_trade_id"] - df["first_trade_id"] + 1
    g = df.set_index("ts").resample("1min")
    out = pd.DataFrame(
        {
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["qty"].sum(),
            "trades": g["n"].sum(),
        }
    )
    return out[g["price"].count() > 0]


@pytest.mark.shared
def test_rebuild_klines_equals_pandas_resample(real_dir: Path) -> None:
    agg = _agg(real_dir)
    rb = rebuild_klines(agg, IV)
    ref = _pandas_klines(agg)
    assert rb["open_us"].tolist() == (ref.index.as_unit("us").asi8).tolist()
    for k in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(rb[k], ref[k].to_numpy())
    np.testing.assert_allclose(rb["volume"], ref["volume"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(rb["trades"], ref["trades"].to_numpy())


def _klines_from(ref: pd.DataFrame) -> pa.Table:
    n = len(ref)
    ot = ref.index.as_unit("us").asi8
    return pa.table(
        {
            "symbol": ["XRPETH"] * n,
            "open_time": pa.array(ot).cast(KLINES.field("open_time").type),
            "open": ref["open"].to_numpy(),
            "high": ref["high"].to_numpy(),
            "low": ref["low"].to_numpy(),
            "close": ref["close"].to_numpy(),
            "volume": ref["volume"].to_numpy(),
            "close_time": pa.array(ot + IV - 1000).cast(KLINES.field("close_time").type),
            "quote_volume": np.full(n, np.nan),
            "trades": ref["trades"].to_numpy().astype(np.int64),
            "taker_buy_volume": np.full(n, np.nan),
            "taker_buy_quote_volume": np.full(n, np.nan),
        }
    ).cast(KLINES)


@pytest.mark.shared
def test_klines_vs_agg_trades_clean_then_planted(real_dir: Path) -> None:
    agg = _agg(real_dir)
    kl = _klines_from(_pandas_klines(agg))
    clean = reconcile_klines_agg_trades(kl, agg, IV)
    assert clean.worst_severity is None, clean.to_json()
    assert clean.expected == kl.num_rows - 2  # first and last bar may be partial
    high = np.asarray(kl["high"]).copy()
    vol = np.asarray(kl["volume"]).copy()
    trades = np.asarray(kl["trades"]).copy()
    high[100] += 1e-8
    vol[200] *= 1.01
    trades[300] += 1
    bad = kl.set_column(3, "high", pa.array(high)).set_column(6, "volume", pa.array(vol))
    bad = bad.set_column(9, "trades", pa.array(trades))
    # one bar's trades removed from the aggTrades: the kline has no trades behind it
    ts = np.asarray(agg["ts"].cast(pa.int64()))
    bar = int(np.asarray(kl["open_time"].cast(pa.int64()))[400])
    agg2 = agg.filter(pa.array((ts < bar) | (ts >= bar + IV)))
    rep = reconcile_klines_agg_trades(bad, agg2, IV)
    assert set(rep.check("recon_ohlc_mismatch").row_index.tolist()) == {100}
    assert set(rep.check("recon_volume_mismatch").row_index.tolist()) == {200}
    assert set(rep.check("recon_trades_mismatch").row_index.tolist()) == {300}
    assert set(rep.check("recon_bar_without_trades").row_index.tolist()) == {400}
    assert rep.check("recon_trades_without_bar").count == 0
    rep2 = reconcile_klines_agg_trades(kl.filter(pa.array(np.arange(kl.num_rows) != 500)), agg, IV)
    assert rep2.check("recon_trades_without_bar").count == 1


@pytest.mark.shared
def test_archive_vs_rest_overlap(real_dir: Path) -> None:
    arch = read_archive_path(
        real_dir / "binance_spot_klines" / "BTCUSDT-1h-2022-01.csv", "klines_1h"
    )
    rest = arch.slice(100, 300)  # the REST pull covers part of the month
    clean = reconcile_tables(arch, rest, "klines")
    assert clean.worst_severity is None
    assert clean.expected == 300
    close = np.asarray(rest["close"]).copy()
    close[50] += 0.01
    rest2 = rest.set_column(5, "close", pa.array(close))
    rest2 = rest2.filter(pa.array(np.arange(rest2.num_rows) != 120))
    extra = arch.slice(0, 1).set_column(
        1,
        "open_time",
        pa.array([arch["open_time"][150].value + 1_800_000_000]).cast(
            KLINES.field("open_time").type
        ),
    )
    rest2 = pa.concat_tables([rest2, extra.cast(KLINES)])
    rep = reconcile_tables(arch, rest2, "klines")
    assert set(rep.check("value_mismatch").row_index.tolist()) == {150}
    assert rep.check("value_mismatch").details[0]["columns"] == "close"
    assert set(rep.check("only_in_a").row_index.tolist()) == {220}
    assert set(rep.check("only_in_b").row_index.tolist()) == {rest2.num_rows - 1}


@pytest.mark.shared
def test_spot_futures_basis_outlier(real_dir: Path) -> None:
    spot = read_cdd_csv(real_dir / "cryptodatadownload" / "Binance_BTCUSDT_1h.csv.gz")
    spot = spot.filter(pa.compute.equal(spot["layout"], "current"))
    fut = read_cdd_csv(real_dir / "cryptodatadownload" / "BTCUSDT_Binance_futures_data_hour.csv.gz")
    clean = basis_outliers(spot, fut, window=240)
    base = set(clean.check("basis_outlier").row_index.tolist())
    close = np.asarray(fut["close"]).copy()
    close[2000] *= 1.03  # 300 bp basis jump on one bar
    rep = basis_outliers(
        spot,
        fut.set_column(fut.schema.get_field_index("close"), "close", pa.array(close)),
        window=240,
    )
    found = set(rep.check("basis_outlier").row_index.tolist())
    assert found - base == {2000}
    assert base - found == set()
    assert clean.expected > 3000
