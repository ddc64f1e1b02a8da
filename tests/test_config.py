"""alphaforge.toml: values reach their command (flags and environment win), and a misspelt
table or key is an error naming the file and the closest valid name (never silently ignored)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import run_cli


def test_config_values_apply_and_flags_win(tmp_path: Path) -> None:
    (tmp_path / "alphaforge.toml").write_text("[backtest]\nfee_bps = 50.0\nbars = 400\n")
    doc = json.loads(run_cli(["backtest", "--json"], tmp_path).stdout)
    assert doc["settings"]["fee_bps"] == 50.0
    assert doc["data"]["bars"] == 400
    flag = json.loads(run_cli(["backtest", "--fee-bps", "2", "--json"], tmp_path).stdout)
    assert flag["settings"]["fee_bps"] == 2.0
    env = json.loads(run_cli(["backtest", "--json"], tmp_path,
                             env={"ALPHAFORGE_BACKTEST_FEE_BPS": "7"}).stdout)  # fmt: skip
    assert env["settings"]["fee_bps"] == 7.0


def test_misspelt_keys_and_tables_are_errors(tmp_path: Path) -> None:
    cases = {
        "[backtest]\nfee_bp = 5.0\n": "unknown option fee_bp in [backtest]; did you mean 'fee_bps'",
        "[backtst]\nfee_bps = 5.0\n": "unknown command [backtst]; did you mean 'backtest'",
        "[store.lss]\nstore = 'x'\n": "unknown command [store.lss]; did you mean 'ls'",
    }
    for text, message in cases.items():
        (tmp_path / "alphaforge.toml").write_text(text)
        proc = run_cli(["backtest", "--bars", "300"], tmp_path, check=False)
        assert proc.returncode == 2, text
        assert f"alphaforge.toml: {message}" in proc.stderr, proc.stderr
    (tmp_path / "alphaforge.toml").write_text("[store.ls]\nstore = 'st'\n")
    (tmp_path / "st").mkdir()
    assert run_cli(["store", "ls", "--json"], tmp_path).returncode == 0
