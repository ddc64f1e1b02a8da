"""resample_panel: the exchange's kline aggregation, checked against pandas on real 1m klines,
with partial bars flagged (hypothesis: any set of missing minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.engine.errors import PanelError
from alphaforge.engine.panel import Panel
from alphaforge.engine.resample import resample_panel

MIN = 60_000_000
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
       "quote_volume": "sum", "trades": "sum"}  # fmt: skip


@pytest.fixture(scope="module")
def minute(real_dir: Path) -> Panel:
    f = real_dir / "binance_futures_klines" / "DOTUSDT-1m-2025-11.csv.gz"
    df = pd.read_csv(f, header=None, usecols=range(9), names=["open_time", "open", "high",
                     "low", "close", "volume", "close_time", "quote_volume", "trades"])  # fmt: skip
    if not str(df["open_time"].iloc[0]).isdigit():
        df = df.iloc[1:].astype(float)
    ts = (df["open_time"].astype(np.int64).to_numpy() + 60_000) * 1000
    fields = {k: df[[k]].to_numpy(dtype=float) for k in AGG}
    return Panel(ts, ("DOTUSDT",), fields, interval_us=MIN)


@pytest.mark.parametrize("minutes", [5, 15, 60, 240, 1440])
def test_matches_pandas_on_real_minutes(minute: Panel, minutes: int) -> None:
    out = resample_panel(minute, minutes * MIN)
    idx = pd.to_datetime(minute.ts_us, unit="us", utc=True)
    frame = pd.DataFrame({k: minute[k][:, 0] for k in AGG}, index=idx)
    ref = frame.resample(f"{minutes}min", label="right", closed="right").agg(AGG)
    got = pd.DataFrame({k: out[k][:, 0] for k in AGG},
                       index=pd.to_datetime(out.ts_us, unit="us", utc=True))  # fmt: skip
    full = out["partial"][:, 0] == 0
    assert full.sum() >= (minute.T // minutes) - 1
    pd.testing.assert_frame_equal(got[full], ref.loc[got.index[full]], check_freq=False,
                                  rtol=1e-12)  # fmt: skip
    vwap = out["vwap"][:, 0]
    np.testing.assert_allclose(vwap[full], ref["quote_volume"][full] / ref["volume"][full])


@given(st.lists(st.integers(0, 299), max_size=40), st.sampled_from([5, 15, 60]))
def test_missing_minutes_make_partial_untradable_bars(drop: list[int], minutes: int) -> None:
    rng = np.random.default_rng(len(drop))
    close = 100 + np.cumsum(rng.normal(0, 0.1, (300, 2)), axis=0)
    close[drop, 0] = np.nan
    ts = (28_000_000 + np.arange(1, 301, dtype=np.int64)) * MIN
    p = Panel(ts, ("A", "B"), {"close": close, "open": close.copy()}, interval_us=MIN)
    out = resample_panel(p, minutes * MIN)
    bucket = (ts + minutes * MIN - 1) // (minutes * MIN)
    for i, b in enumerate(np.unique(bucket)):
        rows = bucket == b
        n_have = np.isfinite(close[rows, 0]).sum()
        want_partial = rows.sum() < minutes or n_have < minutes
        if n_have == 0:
            assert np.isnan(out["close"][i, 0])
            assert out["tradable"][i, 0] == 0
        else:
            assert out["partial"][i, 0] == float(want_partial)
            assert out["tradable"][i, 0] == float(not want_partial)
            assert out["close"][i, 0] == close[rows, 0][np.isfinite(close[rows, 0])][-1]


def test_rejects_intervals_it_cannot_build(minute: Panel) -> None:
    with pytest.raises(PanelError, match="cannot resample"):
        resample_panel(minute, 90 * 1_000_000)
    with pytest.raises(PanelError, match="up to 1d"):
        resample_panel(minute, 7 * 86_400_000_000)
