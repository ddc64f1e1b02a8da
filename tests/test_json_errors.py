"""With --json, a command that fails prints JSON on stdout ({"ok": false, "error": ...}) and
exits non-zero; the plain-text error still goes to stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphaforge.cli import app

CASES = {
    "backtest": ["backtest", "no_such_factor", "--bars", "300"],
    "score": ["score", "close +", "--bars", "300"],
    "sweep": ["sweep", "--grid", "bogus=1", "--bars", "300"],
    "walkforward": ["walkforward", "--factors", "mom_20,rev_1", "--bars", "300", "--purge", "0"],
    "report": ["report", "mom_20", "--store", "{tmp}/empty"],
    "validate": ["validate", "--store", "{tmp}/empty"],
    "sql": ["sql", "select * from nowhere", "--store", "{tmp}/empty"],
    "leaderboard": ["leaderboard", "--ledger", "{tmp}/none.sqlite"],
    "gap": ["gap", "--orders", "{tmp}/none.csv", "--fills", "{tmp}/none.csv"],
    "pull": [
        "pull",
        "--symbols",
        "BTCUSDT",
        "--dataset",
        "nope",
        "--store",
        "{tmp}/s",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_errors(name: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in CASES[name]]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code != 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is False
    assert doc["error"]
    assert "error:" in res.stderr
