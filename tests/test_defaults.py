"""One set of execution defaults for every command that backtests (engine.defaults): stated in
each command's --help, used by each, and carried in each output."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import alphaforge as af
from alphaforge.cli import app
from alphaforge.engine.defaults import DEFAULTS, HELP, describe
from alphaforge.factors.propose import StudyConfig
from tests.e2e.conftest import run_cli

BACKTESTING = ("backtest", "report", "score", "sweep", "walkforward", "propose", "demo")


@pytest.mark.parametrize("command", BACKTESTING)
def test_help_states_the_shared_defaults(command: str) -> None:
    out = CliRunner().invoke(app, [command, "--help"], terminal_width=400).output
    flat = " ".join(out.split())
    assert " ".join(HELP.split()) in flat


def test_every_entry_point_defaults_to_the_same_settings() -> None:
    for fn in (af.backtest, af.score):
        params = inspect.signature(fn).parameters
        for name in ("lag", "fee_bps", "slippage_bps", "rebalance_every"):
            assert params[name].default == getattr(DEFAULTS, name), (fn.__name__, name)
    cfg = StudyConfig()
    for name in ("lag", "fee_bps", "slippage_bps", "rebalance_every"):
        assert getattr(cfg, name) == getattr(DEFAULTS, name), name
    assert "fee 4 bps + slippage 1 bps" in describe()
    assert "rebalanced every bar" in describe()


def test_backtest_report_and_score_agree_at_their_defaults(tmp_path: Path) -> None:
    """The same factor on the same data: backtest, report and score's long-short block give
    the same Sharpe, and each output states the execution it used."""
    bt = json.loads(run_cli(["backtest", "mom_20", "--json"], tmp_path).stdout)
    rep = json.loads(run_cli(["report", "mom_20", "--out", "rep", "--json"], tmp_path).stdout)
    sc = json.loads(run_cli(["score", "mom_20", "--horizons", "1", "--no-redundancy", "--json"],
                            tmp_path).stdout)  # fmt: skip
    assert bt["data"]["bars"] == 4000
    assert rep["metrics"]["sharpe"] == pytest.approx(bt["metrics"]["sharpe"], rel=1e-12)
    assert sc["backtest"]["sharpe"] == pytest.approx(bt["metrics"]["sharpe"], rel=1e-12)
    assert bt["settings"]["execution"] == rep["execution"] == sc["costs"]["execution"]
    text = run_cli(["backtest", "mom_20"], tmp_path).stdout
    assert f"execution: {describe()}" in text
