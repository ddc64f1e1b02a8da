"""`alphaforge factors list` and `alphaforge score` through the real CLI app (typer runner)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.cli.score import parse_horizons, render_factor_list
from alphaforge.factors.library import LIBRARY

runner = CliRunner()


def test_factors_list_json_and_group_filter():
    res = runner.invoke(app, ["factors", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == len(LIBRARY)
    assert {r["name"] for r in rows} == set(LIBRARY)
    res = runner.invoke(app, ["factors", "list", "--group", "momentum", "--json"])
    assert res.exit_code == 0
    assert {r["group"] for r in json.loads(res.stdout)} == {"momentum"}
    table = render_factor_list(False, "momentum")
    assert "momentum" in table
    assert "ts_pct_change" in table


def test_factors_list_unknown_group_is_a_clean_error():
    res = runner.invoke(app, ["factors", "list", "--group", "momentm"])
    assert res.exit_code == 2
    assert "momentum" in res.stderr
    assert "Traceback" not in res.output


def test_score_json_on_the_synthetic_market():
    args = ["score", "rev_1", "--synthetic", "--bars", "600", "--horizons", "1,5", "--json",
            "--no-redundancy", "--trials", "3"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["name"] == "rev_1"
    assert d["n_rows"] == 600
    assert set(d["rank_ic"]) == {"1", "5"}
    assert d["dsr"]["n_trials"] == 3
    assert -1 <= d["rank_ic"]["1"]["mean"] <= 1


def test_score_table_with_split_and_test():
    args = ["score", "cs_rank(-ts_pct_change(close, 5))", "--synthetic", "--bars", "600",
            "--horizons", "1,5", "--split", "0.5", "--test", "--no-redundancy"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "RankIC h=1" in res.stdout
    assert "train/test rows" in res.stdout
    assert "300 / 300" in res.stdout


def test_score_bad_expression_names_the_token_and_suggests():
    res = runner.invoke(app, ["score", "ts_pct_chang(close, 5)", "--synthetic", "--bars", "300"])
    assert res.exit_code == 2
    assert "ts_pct_change" in res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize("bad", ["1,x", "0", ","])
def test_bad_horizons_are_rejected(bad):
    res = runner.invoke(app, ["score", "rev_1", "--synthetic", "--horizons", bad])
    assert res.exit_code == 2
    with pytest.raises(Exception, match="horizon"):
        parse_horizons(bad)
