"""Factor scoring: forward returns, IC / RankIC, quantiles, turnover (factors.returns, factors.ic).

Golden references: scipy.stats (per-row Spearman / Pearson), pandas.qcut (bins) and
alphalens-reloaded (IC, quantile returns, rank autocorrelation, turnover) on real Binance
USD-M 1m klines resampled to 15m and on synthetic panels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.engine.panel import Panel
from alphaforge.factors import ic
from alphaforge.factors.errors import ScoreError
from alphaforge.factors.returns import execution_prices, forward_returns, nan_tail_rows

RTOL = 1e-10  # float64 round-off between two exact implementations of the same formula


# ---------------------------------------------------------------- helpers
def _panel(close: np.ndarray, open_: np.ndarray | None = None, step: int = 60_000_000) -> Panel:
    t, _ = close.shape
    fields = {"close": close} if open_ is None else {"close": close, "open": open_}
    syms = tuple(f"S{j}" for j in range(close.shape[1]))
    return Panel(np.arange(1, t + 1, dtype=np.int64) * step, syms, fields, interval_us=step)


def _rowwise(f: np.ndarray, r: np.ndarray, fn) -> np.ndarray:
    out = np.full(f.shape[0], np.nan)
    for t in range(f.shape[0]):
        m = np.isfinite(f[t]) & np.isfinite(r[t])
        if m.sum() >= 3 and np.ptp(f[t][m]) > 0 and np.ptp(r[t][m]) > 0:
            out[t] = fn(f[t][m], r[t][m])[0]
    return out


def real_panel(real_dir: Path, minutes: int = 15) -> Panel:
    """ALGO, AVAX, DOT, LINK USD-M 1m klines of 2026-02 resampled to ``minutes`` bars.

    Bars are indexed by their close time (open_time + interval), as the Panel convention says.
    """
    folder = real_dir / "binance_futures_klines"
    opens, closes = {}, {}
    for sym in ("ALGOUSDT", "AVAXUSDT", "DOTUSDT", "LINKUSDT"):
        df = pd.read_csv(folder / f"{sym}-1m-2026-02.csv.gz")
        df.index = pd.to_datetime(df["open_time"], unit="ms", utc=True)
        g = df.resample(f"{minutes}min", label="left")
        opens[sym], closes[sym] = g["open"].first(), g["close"].last()
    o, c = pd.DataFrame(opens), pd.DataFrame(closes)
    o.index = c.index = o.index + pd.Timedelta(minutes=minutes)
    return Panel.from_pandas({"open": o, "close": c}, interval_us=minutes * 60_000_000)


def alphalens_factor_data(factor: np.ndarray, panel: Panel, periods, quantiles, lag=1):
    """alphalens' clean factor data from the same factor and the engine's execution prices."""
    import alphalens as al

    idx = pd.to_datetime(panel.ts_us, unit="us", utc=True)
    fac = pd.DataFrame(factor, index=idx, columns=list(panel.symbols)).stack()
    fac.index.names = ["date", "asset"]
    px = pd.DataFrame(execution_prices(panel, lag), index=idx, columns=list(panel.symbols))
    # alphalens' pct_change forward-fills a missing price; hand it only rows with a trade
    # price, so its forward returns end where ours do (no stale exit price in the tail)
    px = px.dropna(how="all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return al.utils.get_clean_factor_and_forward_returns(
            fac, px, periods=periods, quantiles=quantiles, filter_zscore=None, max_loss=1.0
        )


# ---------------------------------------------------------------- forward returns
def test_forward_returns_hand_example_with_open():
    close = np.array([[10.0], [11.0], [12.0], [13.0], [14.0]])
    open_ = np.array([[9.5], [10.5], [11.5], [12.5], [13.5]])
    p = _panel(close, open_)
    # decision at row t trades at open[t+1]; h=1 exits at open[t+2]
    fwd = forward_returns(p, (1, 2), lag=1)
    np.testing.assert_allclose(fwd[0, :3, 0], [11.5 / 10.5 - 1, 12.5 / 11.5 - 1, 13.5 / 12.5 - 1])
    assert np.isnan(fwd[0, 3:, 0]).all()  # NaN tail = h + lag = 2 rows
    np.testing.assert_allclose(fwd[1, :2, 0], [12.5 / 10.5 - 1, 13.5 / 11.5 - 1])
    assert np.isnan(fwd[1, 2:, 0]).all()
    assert nan_tail_rows(p, 1, 1) == 2
    assert nan_tail_rows(p, 2, 1) == 3


def test_forward_returns_close_only_and_lag_zero():
    close = np.array([[10.0], [11.0], [12.0], [13.0]])
    p = _panel(close)
    # no open: lag 1 trades at close[t]; lag 2 at close[t+1]; lag 0 at close[t]
    np.testing.assert_allclose(forward_returns(p, (1,), 1)[0, :3, 0], [0.1, 1 / 11, 1 / 12])
    np.testing.assert_allclose(forward_returns(p, (1,), 0)[0, :3, 0], [0.1, 1 / 11, 1 / 12])
    f2 = forward_returns(p, (1,), 2)[0, :, 0]
    np.testing.assert_allclose(f2[:2], [1 / 11, 1 / 12])
    assert np.isnan(f2[2:]).all()
    assert nan_tail_rows(p, 1, 2) == 2
    po = _panel(close, close)
    assert nan_tail_rows(po, 3, 0) == 3


def test_forward_returns_nan_and_nonpositive_prices_give_nan():
    close = np.array([[10.0, 5.0], [np.nan, 5.0], [12.0, 0.0], [13.0, 6.0]])
    fwd = forward_returns(_panel(close), (1,), 0)[0]
    assert np.isnan(fwd[0, 0])
    assert np.isnan(fwd[1, 0])
    assert np.isnan(fwd[1, 1])
    assert np.isnan(fwd[2, 1])
    assert fwd[0, 1] == 0.0


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_bad_lag_and_horizon_raise_score_error(bad):
    p = _panel(np.ones((4, 2)))
    with pytest.raises(ScoreError, match="lag"):
        forward_returns(p, (1,), bad)
    with pytest.raises(ScoreError, match="horizon"):
        forward_returns(p, (0,), 1)


def test_forward_returns_without_close_names_the_field():
    p = Panel(np.arange(3, dtype=np.int64), ("A",), {"open": np.ones((3, 1))})
    with pytest.raises(ScoreError, match="'close'"):
        forward_returns(p)


# ---------------------------------------------------------------- IC kernels: unit examples
def test_ic_hand_example():
    f = np.array([[1.0, 2.0, 3.0, 4.0]])
    r = np.array([[0.1, 0.3, 0.2, 0.4]])
    # ranks (1,2,3,4) vs (1,3,2,4): d^2 = 0+1+1+0 = 2 -> rho = 1 - 6*2/(4*15) = 0.8
    assert ic.cs_ic(f, r, "spearman")[0] == pytest.approx(0.8, rel=1e-12)
    assert ic.cs_ic(f, r, "pearson")[0] == pytest.approx(ss.pearsonr(f[0], r[0])[0], rel=1e-12)


def test_ic_edge_rows_empty_all_nan_constant_too_few():
    f = np.array([[np.nan, np.nan, np.nan], [1.0, 1.0, 1.0], [1.0, 2.0, np.nan], [1.0, 2.0, 3.0]])
    r = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    out = ic.cs_ic(f, r, "spearman", min_obs=3)
    assert np.isnan(out[:3]).all()
    assert out[3] == pytest.approx(-1.0)
    assert ic.cs_ic(np.empty((0, 3)), np.empty((0, 3))).shape == (0,)


def test_ic_shape_and_option_errors():
    with pytest.raises(ScoreError, match="shape"):
        ic.cs_ic(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ScoreError, match="dimensions"):
        ic.cs_ic(np.ones(3), np.ones(3))
    with pytest.raises(ScoreError, match="method"):
        ic.cs_ic(np.ones((3, 2)), np.ones((3, 2)), "kendall")  # type: ignore[arg-type]
    with pytest.raises(ScoreError, match="quantiles"):
        ic.quantile_bins(np.ones((3, 2)), 1)


# ---------------------------------------------------------------- IC kernels: properties
@st.composite
def panels_with_nans_and_ties(draw):
    """(factor, returns) of small shape with NaNs and many ties (values on a coarse grid)."""
    t = draw(st.integers(1, 6))
    n = draw(st.integers(2, 12))
    cell = st.one_of(st.just(np.nan), st.integers(-3, 3).map(float), st.floats(-2, 2))
    grid = st.lists(cell, min_size=t * n, max_size=t * n)
    f = np.array(draw(grid)).reshape(t, n)
    r = np.array(draw(grid)).reshape(t, n)
    return f, r


@given(panels_with_nans_and_ties())
def test_rank_ic_matches_scipy_spearmanr_with_nans_and_ties(fr):
    f, r = fr
    ours = ic.cs_ic(f, r, "spearman", min_obs=3)
    ref = _rowwise(f, r, ss.spearmanr)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-12)


@given(panels_with_nans_and_ties())
def test_pearson_ic_matches_scipy_pearsonr_with_nans(fr):
    f, r = fr
    ours = ic.cs_ic(f, r, "pearson", min_obs=3)
    ref = _rowwise(f, r, ss.pearsonr)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


@given(
    st.integers(2, 40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sampled_from(["normal", "integers", "ties"]),
            st.integers(2, 10),
            st.integers(0, 2**31 - 1),
        )
    )
)
def test_quantile_bins_match_pandas_qcut(args):
    n, kind, q, seed = args
    rng = np.random.default_rng(seed)
    x = {
        "normal": rng.normal(size=n),
        "integers": rng.permutation(n).astype(float),  # edges land exactly on data values
        "ties": rng.integers(0, 4, size=n).astype(float),
    }[kind]
    ours = ic.quantile_bins(x[None, :], q, min_obs=2)[0]
    try:
        ref = pd.qcut(x, q, labels=False)
    except ValueError:  # pandas: "Bin edges must be unique"
        assert (ours == -1).all()
        return
    np.testing.assert_array_equal(ours, ref)


@given(panels_with_nans_and_ties(), st.integers(2, 4))
def test_cross_section_matches_scipy_and_qcut_with_nans_and_ties(fr, q):
    f, r = fr
    cs = ic.cross_section(f, r[None], quantiles=q, min_obs=3)
    np.testing.assert_allclose(cs.rank_ic[0], _rowwise(f, r, ss.spearmanr), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(cs.ic[0], _rowwise(f, r, ss.pearsonr), rtol=1e-9, atol=1e-12)
    for t in range(f.shape[0]):
        m = np.isfinite(f[t]) & np.isfinite(r[t])
        try:
            bins = pd.qcut(f[t][m], q, labels=False) if m.sum() >= 3 else None
        except ValueError:  # non-unique edges: pandas refuses, we give NaN
            bins = None
        if bins is None:
            assert np.isnan(cs.qmean[0, t]).all()
            continue
        ref = pd.Series(r[t][m]).groupby(bins).mean().reindex(range(q)).to_numpy()
        np.testing.assert_allclose(cs.qmean[0, t], ref, rtol=1e-12, atol=1e-15)


def test_cross_section_agrees_with_single_kernels():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(50, 9))
    r = 0.2 * f[None] + rng.normal(size=(2, 50, 9))
    f[rng.random(f.shape) < 0.15] = np.nan
    cs = ic.cross_section(f, r, quantiles=3)
    for h in range(2):
        np.testing.assert_allclose(cs.rank_ic[h], ic.cs_ic(f, r[h], "spearman"), rtol=RTOL)
        np.testing.assert_allclose(cs.ic[h], ic.cs_ic(f, r[h], "pearson"), rtol=RTOL)
    # bins of rows where every forward return is finite equal the factor-only bins
    bins = ic.quantile_bins(f, 3)
    t = 7
    m = bins[t] >= 0
    for k in range(3):
        assert cs.qmean[0, t, k] == pytest.approx(r[0, t][m & (bins[t] == k)].mean(), rel=1e-12)


# ---------------------------------------------------------------- golden: alphalens-reloaded
def _check_against_alphalens(factor, panel, periods, quantiles, lag=1):
    import alphalens as al

    fd = alphalens_factor_data(factor, panel, periods, quantiles, lag)
    dates = fd.index.get_level_values("date").unique()
    rows = np.searchsorted(pd.to_datetime(panel.ts_us, unit="us", utc=True), dates)
    # alphalens drops an (asset, date) when ANY horizon's forward return is NaN; do the same
    fwd = forward_returns(panel, periods, lag)
    keep = np.isfinite(fwd).all(axis=0) & np.isfinite(factor)
    f = np.where(keep, factor, np.nan)
    fwd = np.where(keep[None], fwd, np.nan)
    cs = ic.cross_section(f, fwd, quantiles=quantiles, min_obs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        al_ic = al.performance.factor_information_coefficient(fd)
        q_raw, _ = al.performance.mean_return_by_quantile(fd, by_date=True, demeaned=False)
        q_dm, _ = al.performance.mean_return_by_quantile(fd, by_date=True, demeaned=True)
        al_ac = al.performance.factor_rank_autocorrelation(fd, period=1)
        al_to = al.performance.quantile_turnover(fd["factor_quantile"], quantiles, period=1)
    cs_dm = ic.cross_section(f, fwd, quantiles=quantiles, min_obs=2, demean=True)
    for i, col in enumerate(al_ic.columns):
        np.testing.assert_allclose(
            cs.rank_ic[i, rows], al_ic[col].to_numpy(), rtol=1e-9, atol=1e-12
        )
        for k in range(quantiles):
            ref = q_raw[col].xs(k + 1, level="factor_quantile").reindex(dates).to_numpy()
            np.testing.assert_allclose(cs.qmean[i, rows, k], ref, rtol=1e-9, atol=1e-15)
            ref = q_dm[col].xs(k + 1, level="factor_quantile").reindex(dates).to_numpy()
            np.testing.assert_allclose(cs_dm.qmean[i, rows, k], ref, rtol=1e-9, atol=1e-15)
    # rank autocorrelation and top-bin turnover (alphalens works on its kept dates only)
    f_kept = np.full_like(f, np.nan)
    f_kept[rows] = f[rows]
    ours_ac = ic.rank_autocorrelation(f_kept[rows], 1, min_obs=2)
    np.testing.assert_allclose(ours_ac[1:], al_ac.to_numpy()[1:], rtol=1e-9)
    bins = ic.quantile_bins(f[rows], quantiles, min_obs=2)
    ours_to = ic.quantile_turnover(bins, quantiles - 1, 1)
    np.testing.assert_allclose(ours_to[1:], al_to.to_numpy()[1:], rtol=1e-12)
    # Pearson IC: alphalens has none; pandas corrwith on the same kept rows
    fwd_df = pd.DataFrame(fwd[0][rows])
    ref = pd.DataFrame(f[rows]).corrwith(fwd_df, axis=1).to_numpy()
    np.testing.assert_allclose(cs.ic[0, rows], ref, rtol=1e-9)
    return cs


@pytest.mark.shared
def test_ic_rank_ic_quantiles_match_alphalens_on_real_klines(real_dir):
    panel = real_panel(real_dir, 15)
    close = panel["close"]
    momentum = np.full_like(close, np.nan)
    momentum[4:] = close[4:] / close[:-4] - 1.0  # 1h momentum at 15m bars
    cs = _check_against_alphalens(-momentum, panel, (1, 4, 16), quantiles=2)
    assert np.isfinite(cs.rank_ic).sum() > 2000


def test_ic_rank_ic_quantiles_match_alphalens_on_synthetic():
    rng = np.random.default_rng(11)
    t, n = 400, 25
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((t, n)), axis=0))
    open_ = np.roll(close, 1, axis=0)
    open_[0] = close[0]
    panel = _panel(close, open_)
    factor = rng.standard_normal((t, n))
    factor[rng.random((t, n)) < 0.05] = np.nan
    _check_against_alphalens(factor, panel, (1, 3, 10), quantiles=5)


@pytest.mark.shared
def test_score_factor_end_to_end_on_real_klines(real_dir):
    from alphaforge.factors.expr import parse
    from alphaforge.factors.score import score_factor

    panel = real_panel(real_dir, 15)
    s = score_factor("rev_1", panel, horizons=(1, 4), quantiles=2)
    assert s.n_rows == 2688
    assert s.n_assets == 4
    assert s.expression == str(parse("-returns"))  # canonical printed form
    # library factor rev_1 = minus the last close-to-close return; recompute by hand
    close = panel["close"]
    rev = np.full_like(close, np.nan)
    rev[1:] = -(close[1:] / close[:-1] - 1.0)
    fwd = forward_returns(panel, (1, 4), 1)
    ref = np.nanmean(ic.cs_ic(rev, fwd[0], "spearman"))
    assert s.rank_ic[1]["mean"] == pytest.approx(ref, rel=1e-9)
    for j, sym in enumerate(panel.symbols):
        m = np.isfinite(rev[:, j]) & np.isfinite(fwd[0, :, j])
        want = ss.spearmanr(rev[m, j], fwd[0, m, j])[0]
        assert s.ts_rank_ic[sym] == pytest.approx(want, rel=1e-9)
    assert np.isfinite(s.backtest["sharpe"])
    assert np.isfinite(s.costs["breakeven_bps"])
    assert 0.0 <= s.dsr["psr"] <= 1.0
