"""Ranking the library in one call: each row is what ``score`` says of that factor alone, a
factor the data cannot feed is listed with the dataset it needs, every factor is a trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.cli.score_library import read_expressions
from alphaforge.factors.errors import ExprError, ScoreError, UnknownFactor
from alphaforge.factors.library import LIBRARY
from alphaforge.factors.rank_library import rank_library
from alphaforge.factors.registry import Registry
from alphaforge.factors.score import score_factor
from tests.factors.panels import make_panel

PANEL = make_panel(n_bars=600, n_assets=8, seed=5, nan_frac=0.01)


@pytest.fixture(scope="module")
def ranking():
    return rank_library(PANEL, {"mine": "-ts_mean(returns, 3)"})


def test_every_factor_is_ranked_or_skipped_with_a_reason(ranking) -> None:
    names = {r["name"] for r in ranking.rows}
    assert names == set(LIBRARY) | {"mine"}  # the product-built panel feeds every field
    assert ranking.skipped == []
    spot = rank_library(make_panel(n_bars=300, n_assets=5, seed=2, book_levels=0,
                                   perpetual=False))  # fmt: skip
    skipped = {s["name"]: s["needs"] for s in spot.skipped}
    assert {r["name"] for r in spot.rows} | set(skipped) == set(LIBRARY)
    assert "fundingRate archive files" in skipped["funding_carry"]
    assert "recorded depth" in skipped["book_imbalance"]
    ts = [abs(r["t_stat"]) for r in ranking.rows if np.isfinite(r["t_stat"])]
    assert ts == sorted(ts, reverse=True)
    assert [r["rank"] for r in ranking.rows] == list(range(1, len(ranking.rows) + 1))


@pytest.mark.parametrize("name", ["mom_20", "rev_1", "alpha003", "funding_carry", "mine"])
def test_a_row_is_what_score_says_of_the_factor_alone(ranking, name: str) -> None:
    row = next(r for r in ranking.rows if r["name"] == name)
    s = score_factor(row["expression"], PANEL, horizons=(1,), n_trials=1)
    assert row["rank_ic"] == pytest.approx(s.rank_ic[1]["mean"], rel=1e-9, abs=1e-15)
    assert row["t_stat"] == pytest.approx(s.rank_ic[1]["t_stat"], rel=1e-9)
    assert row["sharpe"] == pytest.approx(s.backtest["sharpe"], rel=1e-9)
    assert row["gross_sharpe"] == pytest.approx(s.backtest["gross_sharpe"], rel=1e-9)
    assert row["breakeven_bps"] == pytest.approx(s.costs["breakeven_bps"], rel=1e-9)


def test_every_ranked_factor_is_a_trial_once(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "ledger.sqlite")
    first = rank_library(PANEL, registry=reg)
    assert first.trials["n_trials"] == len(first.rows)
    again = rank_library(PANEL, registry=reg)
    assert again.trials["n_trials"] == len(first.rows)  # the same trials, not new ones
    s = score_factor("mom_20", PANEL, horizons=(1,), registry=reg)
    assert s.trials["n_trials"] == len(first.rows)  # score counts the ranked factor as seen


def test_bad_expressions_are_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(UnknownFactor, match="'mom_2x'"):
        rank_library(PANEL, {"a": "mom_2x"})
    with pytest.raises(ExprError, match="unknown name 'nope'"):
        rank_library(PANEL, {"a": "close / nope"})
    with pytest.raises(ScoreError, match="library factor's name"):
        rank_library(PANEL, {"mom_20": "close"})
    f = tmp_path / "mine.txt"
    f.write_text("a = close / open\n\n# note\nts_rank(volume, 10)\na = close\n")
    with pytest.raises(ScoreError, match=r"mine.txt:5: the name 'a' is used twice"):
        read_expressions(f)
    f.write_text("a = close / open   # ratio\nts_rank(volume, 10)\nb = rank(close) == 1\n")
    assert read_expressions(f) == {"a": "close / open", "expr2": "ts_rank(volume, 10)",
                                   "b": "rank(close) == 1"}  # fmt: skip


def test_cli_ranks_with_progress_and_json(tmp_path: Path) -> None:
    f = tmp_path / "mine.txt"
    f.write_text("rev3 = -ts_mean(returns, 3)\n")
    env = {"ALPHAFORGE_LEDGER": str(tmp_path / "l.sqlite")}
    res = CliRunner().invoke(app, ["score", "--library", "--file", str(f), "--bars", "600",
                                   "--json"], env=env)  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["n_factors"] == len(doc["rows"]) >= 50
    assert any(r["name"] == "rev3" and r["group"] == "user" for r in doc["rows"])
    assert doc["trials"]["n_trials"] == doc["n_factors"]
    assert f"[{doc['n_factors']}/{doc['n_factors']}]" in res.stderr  # progress
    bad = tmp_path / "bad.txt"
    bad.write_text("x = close / nope\n")
    res = CliRunner().invoke(app, ["score", "--library", "--file", str(bad), "--json"], env=env)
    assert res.exit_code == 2
    assert json.loads(res.stdout)["error"].startswith(f"{bad}: x: unknown name 'nope'")
    assert "[" not in res.stderr  # refused before the data was loaded or anything ranked
    res = CliRunner().invoke(app, ["score", "--json"], env=env)
    assert res.exit_code == 2
    assert "--library" in json.loads(res.stdout)["error"]


def test_api_rank_library_is_a_dataframe_equal_to_the_cli(tmp_path: Path) -> None:
    import alphaforge as af

    panel = af.synthetic_panel(n_bars=600)
    df = af.rank_library(panel, {"rev3": "-ts_mean(returns, 3)"}, ledger=tmp_path / "a.sqlite")
    assert df.index[0] == df["t_stat"].abs().idxmax()
    assert df.loc["rev3", "group"] == "user"
    assert df.attrs["ranking"]["trials"]["n_trials"] == len(df)
    f = tmp_path / "mine.txt"
    f.write_text("rev3 = -ts_mean(returns, 3)\n")
    res = CliRunner().invoke(
        app,
        ["score", "--library", "--file", str(f), "--bars", "600", "--json"],
        env={"ALPHAFORGE_LEDGER": str(tmp_path / "b.sqlite")},
    )
    rows = {r["name"]: r for r in json.loads(res.stdout)["rows"]}
    assert set(rows) == set(df.index)
    for name in ("mom_20", "rev3", "alpha003"):
        assert rows[name]["sharpe"] == pytest.approx(df.loc[name, "sharpe"], rel=1e-12)
        assert rows[name]["rank"] == df.loc[name, "rank"]
