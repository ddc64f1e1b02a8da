"""Metrics: golden comparisons against empyrical-reloaded (real and synthetic returns), edge
fixtures and properties."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.engine import metrics as m
from alphaforge.engine.errors import OptionError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import empyrical as ep

PPY_1M = 365 * 24 * 60
RTOL = 1e-10


def _real_returns(real_dir: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("AVAXUSDT-1m-2026-02", "LINKUSDT-1m-2023-02", "DOTUSDT-1m-2024-11"):
        df = pd.read_csv(real_dir / "binance_futures_klines" / f"{name}.csv.gz")
        close = df["close"].to_numpy(dtype=float)
        out[name] = close[1:] / close[:-1] - 1.0
    return out


def _synthetic_returns() -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.standard_t(4, size=(5000, 3)) * 0.002 + 0.0001


def _cases(real_dir: Path | None) -> list[tuple[str, np.ndarray]]:
    cases = [("synthetic", _synthetic_returns())]
    if real_dir is not None:
        cases += list(_real_returns(real_dir).items())
    return cases


GOLDEN = [
    (
        "sharpe",
        lambda r: m.sharpe_ratio(r, PPY_1M),
        lambda r: ep.sharpe_ratio(r, annualization=PPY_1M),
    ),
    (
        "sortino",
        lambda r: m.sortino_ratio(r, PPY_1M),
        lambda r: ep.sortino_ratio(r, annualization=PPY_1M),
    ),
    (
        "volatility",
        lambda r: m.annual_volatility(r, PPY_1M),
        lambda r: ep.annual_volatility(r, annualization=PPY_1M),
    ),
    ("max_drawdown", m.max_drawdown, ep.max_drawdown),
    ("cagr", lambda r: m.cagr(r, PPY_1M), lambda r: ep.annual_return(r, annualization=PPY_1M)),
    (
        "calmar",
        lambda r: m.calmar_ratio(r, PPY_1M),
        lambda r: ep.calmar_ratio(r, annualization=PPY_1M),
    ),
    ("total_return", m.total_return, lambda r: ep.cum_returns_final(r)),
    (
        "downside_risk",
        lambda r: m.downside_risk(r, PPY_1M),
        lambda r: ep.downside_risk(r, annualization=PPY_1M),
    ),
]


@pytest.mark.parametrize(("name", "ours", "ref"), GOLDEN, ids=[g[0] for g in GOLDEN])
@pytest.mark.parametrize("dims", [1, 2])
def test_metrics_match_empyrical_on_real_and_synthetic(
    real_dir: Path, name: str, ours, ref, dims: int
) -> None:
    for label, r in _cases(real_dir):
        r2 = r if r.ndim == 2 else r[:, None]
        if dims == 1:
            for j in range(r2.shape[1]):
                got, want = ours(r2[:, j]), ref(r2[:, j])
                assert got == pytest.approx(want, rel=RTOL, abs=1e-14), (label, j)
        else:
            got = np.asarray(ours(r2))
            want = np.array([ref(r2[:, j]) for j in range(r2.shape[1])])
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-14, err_msg=label)


def test_hourly_real_returns_match_empyrical(real_dir: Path) -> None:
    df = pd.read_csv(real_dir / "binance_spot_klines" / "BTCUSDT-1h-2022-01.csv")
    close = df.iloc[:, 4].to_numpy(dtype=float)
    r = close[1:] / close[:-1] - 1
    ppy = 365 * 24
    assert m.sharpe_ratio(r, ppy) == pytest.approx(ep.sharpe_ratio(r, annualization=ppy), rel=RTOL)
    assert m.max_drawdown(r) == pytest.approx(ep.max_drawdown(r), rel=RTOL)


# ---------------------------------------------------------------- edge fixtures
def test_empty_one_row_all_nan_and_constant() -> None:
    empty = np.array([], dtype=float)
    assert math.isnan(m.sharpe_ratio(empty, 365))
    assert math.isnan(m.max_drawdown(empty))
    one = np.array([0.01])
    assert math.isnan(m.sharpe_ratio(one, 365))
    assert math.isnan(m.annual_volatility(one, 365))
    nan = np.full(5, np.nan)
    assert math.isnan(m.sharpe_ratio(nan, 365))
    assert math.isnan(m.total_return(nan))
    const = np.full(10, 0.001)
    assert m.sharpe_ratio(const, 365) == math.inf  # zero variance, positive mean
    assert m.max_drawdown(const) == 0.0
    assert math.isnan(m.calmar_ratio(const, 365))


def test_nan_returns_are_skipped_not_zero_filled() -> None:
    r = np.array([0.01, np.nan, -0.02, 0.03, np.nan, 0.005])
    clean = r[~np.isnan(r)]
    assert m.sharpe_ratio(r, 365) == pytest.approx(m.sharpe_ratio(clean, 365))
    assert m.total_return(r) == pytest.approx(np.prod(1 + clean) - 1)


def test_drawdown_duration_counts_bars_under_water() -> None:
    r = np.array([0.1, -0.05, -0.05, 0.2, -0.01, 0.0])
    # equity 1.1, 1.045, 0.99275, 1.1913, 1.17939, 1.17939 -> under water rows 1-2, then 4-5
    assert m.max_drawdown_duration(r) == 2


def test_annualization_is_explicit() -> None:
    with pytest.raises(OptionError, match="periods_per_year"):
        m.sharpe_ratio(np.ones(3), 0)
    assert m.periods_per_year_from_interval(60_000_000) == PPY_1M
    assert m.periods_per_year_from_interval(3_600_000_000) == 8760


# ---------------------------------------------------------------- properties
returns = st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=3, max_size=200).map(np.array)


@given(returns, st.floats(-0.01, 0.01))
def test_sharpe_is_invariant_to_scale_and_shifts_with_mean(r: np.ndarray, c: float) -> None:
    if np.std(r) < 1e-9:
        return
    assert m.sharpe_ratio(r * 3.0, 365) == pytest.approx(m.sharpe_ratio(r, 365), rel=1e-9)
    shifted = m.sharpe_ratio(r + c, 365)
    expected = (np.mean(r) + c) / np.std(r, ddof=1) * math.sqrt(365)
    assert shifted == pytest.approx(expected, rel=1e-9, abs=1e-9)


@given(returns)
def test_max_drawdown_bounds(r: np.ndarray) -> None:
    mdd = m.max_drawdown(r)
    assert -1.0 <= mdd <= 0.0
    assert mdd <= min(0.0, float(np.min(r))) + 1e-12
