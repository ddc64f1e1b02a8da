"""The factor library: every factor parses and evaluates; a sample matches references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphaforge.factors.errors import UnknownFactor
from alphaforge.factors.expr import evaluate, parse
from alphaforge.factors.expr.compile import evaluate_many
from alphaforge.factors.library import GROUPS, LIBRARY, Factor, get_factor, list_factors
from tests.factors.panels import make_panel

PANEL = make_panel(n_bars=500, n_assets=6, seed=4, nan_frac=0.002)
CLEAN = make_panel(n_bars=300, n_assets=5, seed=8, nan_frac=0.0)


def test_library_size_and_groups() -> None:
    assert len(LIBRARY) >= 40
    assert sum(f.group == "alpha101" for f in LIBRARY.values()) >= 15
    assert {f.group for f in LIBRARY.values()} == set(GROUPS)
    assert all(f.doc and f.name == name for name, f in LIBRARY.items())


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_every_factor_parses_and_evaluates(name: str) -> None:
    f = LIBRARY[name]
    node = parse(f.expr)
    assert parse(str(node)) == node
    assert set(f.needs) == node.fields()
    values = evaluate(f.expr, PANEL)
    assert values.shape == (PANEL.T, PANEL.N)
    # finite somewhere after the warm-up (rank correlations over 3 bars are often undefined:
    # ranks of slowly moving prices do not change, as in pandas)
    assert np.isfinite(values[f.lookback :]).mean() > (0.01 if name == "alpha015" else 0.3)


def test_library_canonical_forms_are_distinct() -> None:
    forms = [f.canonical for f in LIBRARY.values()]
    assert len(set(forms)) == len(forms)


def test_evaluating_the_whole_library_in_one_plan_matches() -> None:
    names = sorted(LIBRARY)
    joint = evaluate_many([LIBRARY[n].expr for n in names], PANEL)
    for name, got in zip(names, joint, strict=True):
        np.testing.assert_array_equal(got, evaluate(LIBRARY[name].expr, PANEL), err_msg=name)


def test_get_factor_and_suggestions() -> None:
    assert get_factor("rsi_14").group == "oscillator"
    with pytest.raises(UnknownFactor, match="did you mean 'rsi_14'"):
        get_factor("rsi14")
    with pytest.raises(KeyError):
        get_factor("nope_nothing")
    with pytest.raises(UnknownFactor, match="did you mean 'momentum'"):
        list_factors(group="momentun")


def test_list_factors_filters_by_what_a_panel_can_feed() -> None:
    spot = make_panel(n_bars=50, n_assets=3, book_levels=0, perpetual=False)
    names = {f.name for f in list_factors(panel=spot)}
    assert "mom_20" in names
    assert "alpha101" in names
    assert "vwap_dev" in names
    assert not names & {f.name for f in list_factors("carry")}
    assert not names & {f.name for f in list_factors("book")}
    assert len(list_factors(panel=PANEL)) == len(LIBRARY)
    assert get_factor("funding_carry").needs == ("funding_rate",)
    assert get_factor("book_imbalance").needs == ("depth_imbalance",)


def test_factor_validates_its_needs() -> None:
    with pytest.raises(ValueError, match="reads"):
        Factor("x", "close / open", "momentum", "doc", needs=("close",))


# ------------------------------------------------------------------ independent references


def _df(name: str) -> pd.DataFrame:
    return CLEAN.to_pandas(name).reset_index(drop=True)


def _check(name: str, ref: pd.DataFrame, rtol: float = 1e-9) -> None:
    got = evaluate(get_factor(name).expr, CLEAN)
    want = ref.to_numpy(dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12, err_msg=name)


def test_rsi_matches_wilder() -> None:
    d = _df("close").diff()
    up = d.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=27).mean()
    down = (-d).clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=27).mean()
    _check("rsi_14", 100 - 100 / (1 + up / down), rtol=1e-8)


def test_bollinger_and_obv_match_pandas() -> None:
    c = _df("close")
    m, s = c.rolling(20).mean(), c.rolling(20).std()
    _check("boll_pos_20", (c - m) / (2 * s), rtol=1e-8)
    r = c / c.shift(1) - 1
    v = _df("volume")
    _check("obv_20", (np.sign(r) * v).rolling(20).sum() / v.rolling(20).sum())


def test_amihud_and_taker_imbalance_match_pandas() -> None:
    c, qv = _df("close"), _df("quote_volume")
    r = c / c.shift(1) - 1
    _check("amihud_20", (r.abs() / qv).rolling(20).mean() * 1e6)
    _check("taker_imbalance", 2 * _df("taker_buy_volume") / _df("volume") - 1)


def test_alpha003_and_alpha101_match_the_paper_formulas() -> None:
    o, v, c, h, lo = (_df(k) for k in ("open", "volume", "close", "high", "low"))
    rank_o, rank_v = o.rank(axis=1, pct=True), v.rank(axis=1, pct=True)
    _check("alpha003", -rank_o.rolling(10).corr(rank_v), rtol=1e-7)
    _check("alpha101", (c - o) / ((h - lo) + 0.001))
    _check("alpha012", np.sign(v.diff(1)) * -c.diff(1))


def test_alpha001_argmax_convention() -> None:
    c = _df("close")
    r = c / c.shift(1) - 1
    inner = np.where(r < 0, r.rolling(20).std(), c)
    inner = pd.DataFrame(np.where(r.isna(), np.nan, inner))
    sp = np.sign(inner) * inner.abs() ** 2
    argmax = sp.rolling(5).apply(np.argmax, raw=True) + 1
    _check("alpha001", argmax.rank(axis=1, pct=True) - 0.5)
