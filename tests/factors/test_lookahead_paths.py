"""Lookahead on every path (score, backtest, the API, the CLI) and the detector's blind spots.

Each realistic leak class is planted in a Python callable and run on real Binance USD-M klines
loaded through the product's own store (ingest -> Store.panel): a leak through which values are
missing, a warm-up back-filled from later rows, a leak on 1 % of the rows, and a factor that
ignores its panel. Clean factors (library, long windows, NaN-heavy, numerically jittery) raise
no alarm. Timing leaks (lag 0, no open) are warned about in every output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alphaforge as af
from alphaforge.engine.panel import Panel
from alphaforge.factors.errors import LookaheadError
from alphaforge.factors.lookahead import check_lookahead, plan_cuts
from tests.e2e.conftest import run_cli

KLINES = ("ALGOUSDT", "AVAXUSDT", "DOTUSDT", "LINKUSDT")


@pytest.fixture(scope="module")
def real(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Panel:
    """Four real perpetuals, February 2026, 15-minute bars (2,688 rows), via ingest + panel."""
    store = af.Store(tmp_path_factory.mktemp("store") / "store")
    folder = real_dir / "binance_futures_klines"
    assert store.ingest(*(folder / f"{s}-1m-2026-02.csv.gz" for s in KLINES), market="usdm").ok
    return store.panel(list(KLINES), interval="15m", fields=["open", "close", "volume"])


def _next(a: np.ndarray) -> np.ndarray:
    return np.vstack([a[1:], np.full((1, a.shape[1]), np.nan)])


def _returns(p: Panel) -> np.ndarray:
    c = p["close"]
    return np.vstack([np.full((1, p.N), np.nan), c[1:] / c[:-1] - 1.0])


def _rank(x: np.ndarray) -> np.ndarray:
    return pd.DataFrame(x).rank(axis=1).to_numpy()


def test_missingness_leak_ranking_only_assets_that_trade_next_bar(real: Panel) -> None:
    def active_tomorrow(p: Panel) -> np.ndarray:
        vol = p["volume"]
        busy = _next(vol) > np.nanmedian(vol, axis=0)  # which assets trade a lot next bar
        return np.where(busy, _rank(-_returns(p)), np.nan)

    report = check_lookahead(active_tomorrow, real)
    assert report.leaks
    assert report.largest is not None
    assert "appeared or vanished" in report.describe("active_tomorrow")
    with pytest.raises(LookaheadError, match="<active_tomorrow> reads future data"):
        af.score(active_tomorrow, real)


def test_missingness_leak_on_a_delisted_symbol(real: Panel) -> None:
    # DOT stops trading two thirds of the way in (the product's own from_pandas on the store's
    # rows, cut); the factor ranks only the symbols that still have a price next bar
    long = real.to_pandas().reset_index()
    cut = real.ts_us[2 * real.T // 3]
    ts_us = long["ts"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    gone = (long["symbol"] == "DOTUSDT") & (ts_us > cut)
    p = af.Panel.from_pandas(long[~gone].drop(columns=["tradable"]), interval_us=real.interval_us)

    def survivors(q: Panel) -> np.ndarray:
        return np.where(np.isfinite(_next(q["close"])), _rank(_returns(q)), np.nan)

    report = check_lookahead(survivors, p)
    assert report.leaks
    assert report.largest is not None
    assert np.isinf(report.largest.size)


def test_warm_up_back_filled_from_later_rows(real: Panel) -> None:
    def backfilled(p: Panel) -> np.ndarray:
        return p.to_pandas("close").rolling(20).mean().bfill().to_numpy()

    report = check_lookahead(backfilled, real)
    assert report.leaks
    assert report.first_leak_ts_us is not None
    assert report.first_leak_ts_us < real.ts_us[19]  # caught inside the warm-up
    assert report.largest is not None
    assert report.largest.row < 19


def test_leak_on_one_percent_of_rows(real: Panel) -> None:
    rows = np.random.default_rng(11).random(real.T) < 0.01
    assert 15 <= rows.sum() <= 40

    def sometimes_peeks(p: Panel) -> np.ndarray:
        r = _returns(p)
        return np.where(rows[: p.T, None], _next(r), r)

    report = check_lookahead(sometimes_peeks, real)
    assert report.leaks
    hit_rows = {d.cut for d in report.details if d.n_changed}
    assert hit_rows <= set(np.flatnonzero(rows))  # only the leaking rows ever changed
    # the old four perturbation cuts missed it
    assert not check_lookahead(sometimes_peeks, real, n_cuts=4).leaks


def test_a_callable_returning_stored_values_cannot_pass(real: Panel) -> None:
    stored = _next(_returns(real))
    with pytest.raises(LookaheadError, match="computed from the panel it is given"):
        af.score(lambda p: stored, real)


def _trailing_mean_jitter(p: Panel) -> np.ndarray:
    # causal, but summation order moves the last bits from one call to the next
    c = p["close"]
    cs = np.cumsum(np.nan_to_num(c), axis=0)
    out = np.full_like(c, np.nan)
    out[48:] = (cs[48:] - cs[:-48]) / 48.0
    jitter = 1.0 + np.random.default_rng().normal(0.0, 2e-15, out.shape)
    return out * jitter


@pytest.mark.parametrize("name", ["mom_20", "vol_20", "rsi_14", "alpha003", "mom_240"])
def test_clean_library_factors_raise_no_alarm(real: Panel, name: str) -> None:
    report = check_lookahead(af.factor(name), real)
    assert not report.leaks, report.describe(name)
    assert report.n_cuts >= 500  # early, dense and spread cuts all ran


def test_clean_nan_heavy_and_jittery_callables_raise_no_alarm(real: Panel) -> None:
    late = real["close"].copy()
    late[: real.T // 2, 0] = np.nan  # ALGO listed halfway through
    heavy = real.with_fields(close=late)

    def long_window(p: Panel) -> np.ndarray:
        return p.to_pandas("close").rolling(480, min_periods=400).std().to_numpy()

    for fn in (long_window, _trailing_mean_jitter):
        report = check_lookahead(fn, heavy)
        assert not report.leaks, report.describe(fn.__name__)
    res = af.score(_trailing_mean_jitter, heavy, horizons=(1, 4))
    assert res.lookahead["status"] == "checked"
    assert "no value changed" in res.lookahead["detail"]


def test_plan_starts_at_row_zero_and_covers_a_dense_window() -> None:
    plan = plan_cuts(3_000, first_valid=200)
    assert list(plan)[:32] == list(range(32))
    assert set(range(200, 712)) <= set(plan)
    assert plan[2_998] == ("truncate", "perturb")
    assert sum(len(v) == 2 for v in plan.values()) == 16


def test_verdicts_on_every_path(real: Panel, tmp_path: Path) -> None:
    expr = af.score("mom_20", real, horizons=(1,))
    assert expr.lookahead["status"] == "safe"
    assert expr.warnings == []
    values = af.factor("mom_20").evaluate(real)
    bare = af.score(values, real, horizons=(1,))
    assert bare.lookahead["status"] == "unverified"
    assert any("UNVERIFIED" in w for w in bare.warnings)
    assert ("WARNING", bare.warnings[0]) in bare.raw.summary_rows()
    ok = af.score(values, real, horizons=(1,), available_us=real.ts_us)
    assert ok.lookahead["status"] == "checked"
    assert ok.warnings == []
    assert bare.rank_ic.equals(ok.rank_ic)  # the same numbers, a different verdict
    late = real.ts_us.copy()
    late[30] += 1
    with pytest.raises(LookaheadError, match=r"row 30 .*became available"):
        af.score(values, real, available_us=late)
    # backtest: a callable is checked, a leak refused
    run = af.backtest(lambda p: af.factor("mom_20").evaluate(p), real)
    assert run.settings["lookahead"].startswith("checked")
    with pytest.raises(LookaheadError):
        af.backtest(lambda p: _next(_returns(p)), real)
    unverified = af.backtest(values, real)
    assert any("UNVERIFIED" in w for w in unverified.warnings)
    report = json.loads(unverified.report(tmp_path / "rep").json.read_text())
    assert any("UNVERIFIED" in w for w in report["warnings"])


def test_timing_leaks_are_warned_everywhere(real: Panel, tmp_path: Path) -> None:
    at_close = af.backtest("rev_1", real, lag=0)
    assert any(w.startswith("TIMING: lag 0") for w in at_close.warnings)
    no_open = Panel(real.ts_us, real.symbols, {"close": real["close"]},
                    interval_us=real.interval_us)  # fmt: skip
    assert any("no 'open'" in w for w in af.backtest("rev_1", no_open).warnings)
    assert any("no 'open'" in w for w in af.score("rev_1", no_open, horizons=(1,)).warnings)
    assert af.backtest("rev_1", real).warnings == []
    html = at_close.report(tmp_path / "rep").html.read_text()
    assert "WARNING: TIMING: lag 0" in html
    out = run_cli(["backtest", "rev_1", "--lag", "0", "--bars", "600", "--json"], tmp_path)
    assert json.loads(out.stdout)["warnings"][0].startswith("TIMING: lag 0")
    text = run_cli(["score", "rev_1", "--lag", "0", "--bars", "600"], tmp_path).stdout
    assert "TIMING: lag 0" in text
