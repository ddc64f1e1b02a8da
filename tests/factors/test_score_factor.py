"""score_factor end to end on synthetic markets with a planted factor of known IC."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from alphaforge.backtests import run_factor_backtest
from alphaforge.data.synthetic import generate_market
from alphaforge.engine.panel import Panel
from alphaforge.engine.portfolio import factor_weights, weights_backtest
from alphaforge.factors import ic
from alphaforge.factors.errors import ExprError, ScoreError
from alphaforge.factors.library import list_factors
from alphaforge.factors.returns import forward_returns
from alphaforge.factors.score import FactorScore, rank_factors, score_factor

PLANTED_IC = 0.05


def synthetic_panel(n_symbols: int, n_bars: int, seed: int, planted_ic: float = PLANTED_IC):
    """(Panel of the synthetic klines indexed by bar close, planted signal (T, N), meta)."""
    m = generate_market(
        n_symbols=n_symbols, n_bars=n_bars, seed=seed, planted_ic=planted_ic, book_levels=0
    )
    step = int(m.meta["parameters"]["interval_us"])
    k = m.klines
    cols = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume")
    table = pa.table(
        {
            "ts": pc.add(k["open_time"].cast(pa.int64()), step),
            "symbol": k["symbol"],
            **{c: k[c] for c in cols},
        }
    )
    panel = Panel.from_arrow(table, interval_us=step, meta={"synthetic": True})
    pl = m.planted
    planted = Panel.from_arrow(
        pa.table({"ts": pl["ts"], "symbol": pl["symbol"], "x": pl["planted_signal"]})
    )
    assert np.array_equal(planted.ts_us, panel.ts_us)
    assert planted.symbols == panel.symbols
    return panel, planted["x"], m.meta


@pytest.fixture(scope="module")
def market():
    return synthetic_panel(30, 2000, seed=3)


@pytest.fixture(scope="module")
def planted_score(market):
    panel, planted, _ = market
    return score_factor(planted, panel, horizons=(1, 5, 15), n_trials=1)


def test_planted_ic_is_recovered_within_its_standard_error(market, planted_score):
    _, _, meta = market
    r = planted_score.rank_ic[1]
    # the generator's contract: expected Spearman IC with the next bar's open-to-close
    # return, which is exactly our h=1, lag=1 forward return (open[t+2] / open[t+1] - 1)
    assert abs(r["mean"] - PLANTED_IC) <= r["se"]
    # and the sample IC the generator measured itself (it breaks ties differently)
    assert r["mean"] == pytest.approx(meta["planted_ic_realized"], abs=0.1 * r["se"])
    assert r["t_stat"] > 5
    # a one-bar oracle: nothing left at longer lags, quantile returns increase
    assert abs(planted_score.decay[5]) < 3 * r["se"]
    assert planted_score.decay[1] == pytest.approx(r["mean"], rel=1e-12)
    q = planted_score.quantile_returns[1]
    assert q[-1] > q[0]
    assert planted_score.spread[1]["mean"] > 0
    assert planted_score.half_life < 5


def test_planted_factor_ranks_first_among_the_library(market):
    panel, planted, _ = market
    lib = {f.name: f.expr for f in list_factors(panel=panel)}
    assert len(lib) >= 40
    ranked = rank_factors({"planted": planted, **lib}, panel, horizon=1)
    assert ranked[0][0] == "planted"
    assert len(ranked) == len(lib) + 1


def test_to_dict_is_strict_json_and_summary_rows_render(planted_score):
    text = json.dumps(planted_score.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["rank_ic"]["1"]["mean"] == planted_score.rank_ic[1]["mean"]
    assert back["horizons"] == [1, 5, 15]
    assert back["dsr"]["n_trials"] == 1
    rows = planted_score.summary_rows()
    assert ("factor", "<array>") in rows
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in rows)


def test_backtest_matches_a_direct_engine_run_and_breakeven_means_zero_net(market, planted_score):
    """score's long-short block is ``alphaforge backtest``'s rank portfolio (engine.portfolio:
    same weights, universe, flattening, funding) with the same defaults."""
    panel, planted, _ = market
    w = factor_weights(planted, panel)
    res = weights_backtest(w, panel)
    assert planted_score.backtest["total_return"] == pytest.approx(res.equity[-1] - 1, rel=1e-12)
    bt = run_factor_backtest(panel, planted)
    assert planted_score.backtest["sharpe"] == pytest.approx(bt.metrics["sharpe"], rel=1e-12)
    assert planted_score.costs["execution"] == bt.settings["execution"]
    # charging exactly the break-even cost leaves (about) zero mean net return
    be = planted_score.costs["breakeven_bps"]
    assert be > 0
    at_be = weights_backtest(w, panel, fee_bps=be, slippage_bps=0.0)
    gross_mean = planted_score.costs["mean_gross_return_per_bar"]
    assert abs(np.mean(at_be.returns)) < 0.05 * gross_mean
    kept = planted_score.costs["edge_kept"]
    assert kept == pytest.approx(1 - 5.0 / be)
    net = planted_score.costs["mean_net_return_per_bar"]
    assert net == pytest.approx(kept * gross_mean, rel=0.05)  # the share of the edge left


def test_split_train_never_sees_test_prices(market):
    panel, planted, _ = market
    s = score_factor(planted, panel, horizons=(1, 5), split=0.6, test=True)
    cut = s.split["train_rows"]
    assert cut == 1200
    assert s.n_rows == 1200
    assert s.test is not None
    assert s.test.n_rows == 800
    # perturb every price from the cut on: the train score must not move
    noisy = {k: v.copy() for k, v in panel.fields.items()}
    for k in ("open", "close", "high", "low"):
        noisy[k][cut:] *= 1.5
    s2 = score_factor(planted, panel.with_fields(**noisy), horizons=(1, 5), split=0.6)
    assert s2.rank_ic == s.rank_ic
    assert s2.quantile_returns == s.quantile_returns
    assert s2.backtest["sharpe"] == s.backtest["sharpe"]
    iso = pd.Timestamp(int(panel.ts_us[cut]), unit="us", tz="UTC").isoformat()
    assert score_factor(planted, panel, horizons=(1,), split=iso).split["train_rows"] == cut


def test_expression_and_library_name_give_the_same_score(market):
    panel, _, _ = market
    lib = list_factors(panel=panel)[0]
    a = score_factor(lib.name, panel, horizons=(1, 5))
    b = score_factor(lib.expr, panel, horizons=(1, 5))
    assert isinstance(a, FactorScore)
    assert a.name == lib.name
    assert a.expression == b.expression
    assert a.rank_ic == b.rank_ic


def test_redundancy_finds_the_factor_itself(market):
    panel, _, _ = market
    f = list_factors(panel=panel)[0]
    s = score_factor(
        f.expr, panel, horizons=(1,), redundancy={"same": f.name, "neg": f"-({f.expr})"}
    )
    assert s.redundancy["same"] == pytest.approx(1.0)
    assert s.redundancy["neg"] == pytest.approx(-1.0)


def test_horizons_are_truncated_to_the_panel_and_noted(market):
    panel, planted, _ = market
    s = score_factor(planted, panel, horizons=(1, 5, 15, 60, 240, 1440, 5000))
    # kept when T - (h + lag) >= max(20, h): 2000 - 241 >= 240, but 2000 - 1441 < 1440
    assert s.horizons == (1, 5, 15, 60, 240)
    assert any("[1440, 5000]" in n for n in s.notes)


def test_ts_ic_matches_pandas_per_asset(market):
    panel, planted, _ = market
    fwd = forward_returns(panel, (1,), 1)[0]
    ours = ic.ts_ic(planted, fwd, "spearman")
    fdf, rdf = pd.DataFrame(planted), pd.DataFrame(fwd)
    ref = [fdf[j].corr(rdf[j], method="spearman") for j in range(panel.N)]
    np.testing.assert_allclose(ours, ref, rtol=1e-9)
    roll = ic.rolling_ts_ic(planted, fwd, 50)
    ref_roll = fdf[2].rolling(50).corr(rdf[2]).to_numpy()
    np.testing.assert_allclose(roll[:, 2], ref_roll, rtol=1e-7, atol=1e-10)


def test_half_life_of_an_exact_exponential_and_edge_cases():
    h = np.array([1, 5, 15, 60])
    assert ic.half_life(h, 0.08 * np.exp(-math.log(2) / 10 * h)) == pytest.approx(10, rel=1e-6)
    assert ic.half_life(h, [0.05, 0.05, 0.05, 0.05]) == math.inf
    assert math.isnan(ic.half_life([1], [0.1]))
    assert math.isnan(ic.half_life(h, [0, 0, 0, 0]))


def test_bad_inputs_raise_clear_errors(market):
    panel, planted, _ = market
    with pytest.raises(ScoreError, match="shape"):
        score_factor(planted[:, :3], panel)
    with pytest.raises(ScoreError, match="no horizon"):
        score_factor(planted, panel, horizons=(5000,))
    with pytest.raises(ScoreError, match="split"):
        score_factor(planted, panel, split="not a date")
    with pytest.raises(ScoreError, match="row"):
        score_factor(planted, panel, split="1990-01-01")
    with pytest.raises(ExprError, match="ts_pct_change"):
        score_factor("ts_pct_chang(close, 5)", panel)


def test_single_asset_panel_gives_time_series_ic_and_a_note(market):
    panel, planted, _ = market
    one = panel.select([panel.symbols[0]])
    s = score_factor(planted[:, :1], one, horizons=(1, 5))
    assert math.isnan(s.rank_ic[1]["mean"])
    assert any("time-series" in n for n in s.notes)
    fwd = forward_returns(one, (1,), 1)[0][:, 0]
    ref = pd.Series(planted[:, 0]).corr(pd.Series(fwd), method="spearman")
    assert s.ts_rank_ic[panel.symbols[0]] == pytest.approx(ref, rel=1e-9)
    assert any(k.startswith("time-series RankIC") for k, _ in s.summary_rows())


def test_symbols_outside_the_universe_are_never_ranked() -> None:
    """resolve_factor (behind score, backtest, sweep and the API) blanks untradable cells."""
    from alphaforge.factors.resolve import resolve_factor
    from alphaforge.panels import synthetic_panel

    p = synthetic_panel(n_symbols=5, n_bars=300, seed=1).panel
    tradable = np.ones((p.T, p.N))
    tradable[150:, 2] = 0.0  # delisted half-way
    q = p.with_fields(tradable=tradable)
    values = resolve_factor("mom_20", q).values
    assert np.isnan(values[150:, 2]).all()
    full = resolve_factor("mom_20", p).values
    np.testing.assert_array_equal(values[:150], full[:150])
    scored = score_factor("mom_20", q, horizons=(1,))
    assert scored.rank_ic[1]["n"] <= score_factor("mom_20", p, horizons=(1,)).rank_ic[1]["n"]
