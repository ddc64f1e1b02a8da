"""The proposal loop's once-per-study shortcuts equal the plain computations they replace, and
regressions: a study on a Panel with missing bars, a library factor proposed verbatim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import alphaforge as af
from alphaforge.engine.panel import Panel
from alphaforge.factors import ic
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.lookahead import check_lookahead
from alphaforge.factors.propose import Gate, Study, StudyConfig, score_train
from alphaforge.factors.propose_score import (
    RankSet,
    ScoreContext,
    TailLookahead,
    rank_rows,
    score_with,
)
from tests.factors.panels import make_panel

# small value alphabet: many ties; NaN and inf as missing
CELLS = st.sampled_from([np.nan, np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, -2.5])


@st.composite
def factor_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    t = draw(st.integers(1, 12))
    n = draw(st.integers(1, 9))
    a = draw(arrays(np.float64, (t, n), elements=CELLS))
    b = draw(arrays(np.float64, (t, n), elements=CELLS))
    return a, b


@settings(max_examples=200, deadline=None)
@given(factor_pairs())
def test_rank_correlation_from_ranks_equals_cs_ic(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    want = ic.cs_ic(a, b, "spearman", 3)
    rs = RankSet()
    from alphaforge.factors.propose_score import rank_corr_rows

    ra, rb = rs.ranks(a), rs.ranks(b)
    got = rank_corr_rows(ra, rb, 3)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_rank_set_means_and_first_hit_match_mean_rank_corr() -> None:
    from alphaforge.factors.propose import mean_rank_corr

    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 7))
    base[rng.random(base.shape) < 0.05] = np.nan
    members = {"noise": rng.normal(size=base.shape),
               "close": base + 0.1 * rng.normal(size=base.shape),
               "flipped": -base, "ties": np.round(base)}  # fmt: skip
    members["noise"][:20] = np.nan
    rs = RankSet(capacity=2)  # grows past its capacity
    for name, v in members.items():
        rs.add(name, rs.ranks(v))
    z = rs.ranks(base)
    want = [mean_rank_corr(base, v) for v in members.values()]
    np.testing.assert_allclose(rs.corrs(z), want, rtol=1e-12, atol=1e-12)
    assert list(rs) == list(members)
    for batch in (1, 3, 8):
        hit = rs.first_above(z, 0.9, batch)
        assert hit is not None
        assert hit[0] == "close"
        assert rs.first_above(z, 1.0, batch) is None
    np.testing.assert_allclose(rs.corrs(z, 1, 3), want[1:3], rtol=1e-12)


def test_ranks_are_scipy_average_ranks() -> None:
    from scipy import stats

    x = np.array([[3.0, np.nan, 1.0, 3.0, -np.inf, 2.0]])
    r, scale = rank_rows(x)
    finite = np.isfinite(x[0])
    np.testing.assert_array_equal(r[0][finite], stats.rankdata(x[0][finite]))
    assert np.isnan(r[0][~finite]).all()
    centred = stats.rankdata(x[0][finite]) - 2.5
    assert scale[0] == 1.0 / np.sqrt((centred**2).sum())


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 300),
    st.sampled_from([0.0, 0.1, 0.6]),
    st.sampled_from([2, 5, 1000]),
    st.integers(0, 2**32 - 1),
)
def test_counted_ranks_equal_sorted_ranks(t: int, n: int, nan_frac: float, levels: int,
                                          seed: int) -> None:  # fmt: skip
    """Rows of up to COUNT_ROW values are ranked by counting, longer ones from a sort: on any
    row (ties, NaN, infinities) both kernels give the same ranks and scales, bit for bit."""
    from alphaforge.factors import propose_nb

    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (t, n)).astype(np.float64)  # few levels: many ties
    x[rng.random((t, n)) < nan_frac] = np.nan
    x[rng.random((t, n)) < 0.05] = np.inf
    x[rng.random((t, n)) < 0.05] = -np.inf
    got = (np.empty((t, n), np.float32), np.empty(t))
    want = (np.empty((t, n), np.float32), np.empty(t))
    propose_nb.ranks_by_count(x, 3, got[0], got[1], 0, t)
    propose_nb.ranks_from_order(x, ic.argsort_rows(x), 3, want[0], want[1], 0, t)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    r, scale = rank_rows(x, 3)  # whichever path the width selects
    np.testing.assert_array_equal(r, want[0])
    np.testing.assert_array_equal(scale, want[1])


def test_score_with_a_context_equals_the_plain_score_and_the_backtest(tmp_path: Path) -> None:
    """The gate's lean score: the RankIC of ``cs_ic`` and the Sharpe of ``alphaforge backtest``
    (rank scheme, same settings, universe, funding) of the sign-aligned values."""
    panel = make_panel(600, 8, seed=4, book_levels=0, nan_frac=0.01)
    cfg = StudyConfig(rebalance_every=7)
    values = np.asarray(np.random.default_rng(1).normal(size=(panel.T, panel.N)))
    values[:10] = np.nan
    from alphaforge.engine.tradable import universe_values
    from alphaforge.factors.returns import forward_returns

    values = universe_values(values, panel)  # what propose scores (factors.resolve)
    ctx = ScoreContext.build(panel, cfg)
    fast = score_with(values, ctx, cfg)

    fwd = forward_returns(panel, (1,), 1)[0]
    summ = ic.ic_summary(ic.cs_ic(values, fwd, "spearman", 3), 1)
    assert fast["rank_ic"] == np.float64(summ["mean"]) or np.isclose(
        fast["rank_ic"], summ["mean"], rtol=1e-12
    )
    np.testing.assert_allclose(fast["t_stat"], summ["t_stat"], rtol=1e-10)
    assert "funding_paid" in panel
    run = af.backtest(np.sign(summ["mean"]) * values, panel, rebalance_every=7,
                      ledger=tmp_path / "l.sqlite")  # fmt: skip
    np.testing.assert_allclose(fast["sharpe"], run.metrics["sharpe"], rtol=1e-12)
    assert score_train(values, panel, cfg) == fast


def test_cached_lookahead_agrees_with_check_lookahead() -> None:
    panel = make_panel(500, 6, seed=2, book_levels=0)
    la = TailLookahead(panel, seed=3)
    tail = la.tail

    def peek(p: Panel) -> np.ndarray:  # reads the next row: a leak
        return np.vstack([p["close"][1:], p["close"][-1:]])

    def causal(p: Panel) -> np.ndarray:
        return p["close"] / p["open"]

    for fn in (peek, causal):
        want = check_lookahead(fn, tail, n_cuts=2, seed=3)
        assert la.leak(fn) == want.first_leak_ts_us
    assert la.leak(peek) is not None
    assert la.leak(causal) is None


def _gappy_panel() -> Panel:
    panel = make_panel(700, 8, seed=7, book_levels=0, nan_frac=0.02)
    return panel


def test_study_runs_on_a_panel_with_missing_bars(tmp_path: Path) -> None:
    """Regression: a position held into a missing bar raised engine InputError ("price is
    NaN while a position is held") out of the whole study."""
    panel = _gappy_panel()
    assert np.isnan(panel["close"][panel.T // 2 :]).any()
    ledger = Ledger(tmp_path / "l.sqlite")
    cfg = StudyConfig(rounds=1, per_round=6, library_check=False,
                      gate=Gate(min_abs_t=0.0, min_sharpe=-1e9))  # fmt: skip
    res = Study(panel, cfg, ledger).run()
    scored = [r for r in ledger.rows("default") if r.train]
    assert scored, res.counts
    assert all(np.isfinite(r.train["sharpe"]) for r in scored)


def test_a_library_factor_proposed_verbatim_is_a_canonical_duplicate(tmp_path: Path) -> None:
    """Regression: the library was keyed by its raw text, so "-returns" (canonical
    "(-returns)") slipped past the same-canonical-form check."""
    from alphaforge.factors.propose_parse import Candidate

    panel = make_panel(500, 6, seed=1, book_levels=0, nan_frac=0.0)
    ledger = Ledger(tmp_path / "lib.sqlite")
    study = Study(panel, StudyConfig(rounds=1), ledger)
    assert study.evaluate(Candidate("dup", "-returns", ""), {}) == "duplicate"
    row = ledger.rows("default")[-1]
    assert row.reason == "same canonical form"
    assert row.canonical == "(-returns)"
