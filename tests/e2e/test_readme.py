"""Every command README.md shows is run here, so the README cannot go stale."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section_commands(title: str) -> list[str]:
    body = README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_readme_has_exactly_one_setup_run_and_test_command() -> None:
    assert len(_section_commands("Set up")) == 1
    assert _section_commands("Run") == ["alphaforge demo"]
    (test_cmd,) = _section_commands("Test")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci, "the README test command must be the one .ci/run runs"


def test_readme_run_command_produces_the_report(tmp_path: Path) -> None:
    (cmd,) = _section_commands("Run")
    proc = run_cli(cmd.split()[1:], tmp_path)
    assert "SYNTHETIC" in proc.stdout
    assert "report: alphaforge-out/report.html" in proc.stdout
    html = (tmp_path / "alphaforge-out" / "report.html").read_text(encoding="utf-8")
    assert html.count("<figure id=") >= 8
    summary = json.loads((tmp_path / "alphaforge-out" / "report.json").read_text())
    assert "SYNTHETIC market" in " ".join(summary["notes"])
    for step in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6"):
        assert step in proc.stderr  # progress lines


def _table_commands() -> list[str]:
    return sorted(set(re.findall(r"^\| `alphaforge ([a-z-]+)", README, flags=re.M)))


def test_commands_table_lists_registered_commands() -> None:
    """The README's table names exactly the commands the CLI registers (no subprocess)."""
    import typer.main

    from alphaforge.cli import app

    group = typer.main.get_command(app)
    registered = set(group.commands)  # type: ignore[attr-defined]
    assert set(_table_commands()) == registered
    for name in _table_commands():  # every command documents --json
        cmd = group.commands[name]  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", {name: cmd})
        for sub in subs.values():
            assert any("--json" in p.opts for p in sub.params), f"{name} {sub.name} has no --json"


def test_commands_run_with_json(tmp_path: Path, real_dir: Path) -> None:
    """Each command of the table on real files or the synthetic market, with real outcomes."""
    from click.testing import CliRunner
    from typer.main import get_command

    from alphaforge.cli import app
    from alphaforge.factors.library import LIBRARY

    cli = get_command(app)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        res = runner.invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert res.exit_code == code, res.output
        return json.loads(res.stdout)

    assert {f["name"] for f in run("factors", "list")} == set(LIBRARY)
    folder = real_dir / "binance_futures_klines"
    kl = folder / "LINKUSDT-1m-2023-02.csv.gz"
    store = str(tmp_path / "st")
    ing = run("ingest", str(kl), str(folder / "ALGOUSDT-1m-2023-02.csv.gz"), "--store", store,
              "--market", "usdm")  # fmt: skip
    assert ing["rows_added"] == 2 * 40_320
    (ls,) = run("store", "ls", "--store", store)["datasets"]
    assert (ls["dataset"], ls["symbols"], ls["rows"]) == ("klines_1m", 2, 2 * 40_320)
    val = run("validate", str(kl))  # a clean real month: exit 0, nothing above info
    assert val["reports"][0]["worst_severity"] in (None, "info")
    assert val["reports"][0]["completeness"] == 1.0
    bt = run("backtest", "mom_20", "--store", store, "--rebalance-every", "60")
    assert bt["data"]["bars"] == 40_320
    assert bt["data"]["synthetic"] is False
    assert bt["metrics"]["n_fills"] > 0
    sc = run("score", "mom_20", "--store", store, "--horizons", "1,5", "--no-redundancy")
    assert sorted(sc["rank_ic"]) == ["1", "5"]
    assert sc["lookahead"]["status"] == "safe"
    rep = run("report", "mom_20", "--store", store, "--out", str(tmp_path / "rep"))
    assert Path(rep["report"]).is_file()
    assert len(rep["figures"]) >= 4
    sql = run("sql", "select count(*) as n from klines_1m", "--store", store)
    assert sql == [{"n": 2 * 40_320}]


def test_gap_command_on_files(tmp_path: Path) -> None:
    m = 30
    rng = np.random.default_rng(1)
    side = rng.choice(["buy", "sell"], m)
    sgn = np.where(side == "buy", 1.0, -1.0)
    ts = (1_700_000_000_000 + 60_000 * np.arange(m)).astype(np.int64)  # ms, as exchanges give
    with open(tmp_path / "orders.csv", "w") as f:
        f.write("order_id,time,symbol,side,qty,decision_mid\n")
        for i in range(m):
            f.write(f"{i},{ts[i]},BTCUSDT,{side[i]},1.0,100.0\n")
    with open(tmp_path / "fills.csv", "w") as f:
        f.write("order_id,time,symbol,side,qty,price,fee,fee_asset\n")
        for i in range(m):
            px = 100.0 * (1 + sgn[i] * 5e-4)
            f.write(f"{i},{ts[i] + 500},BTCUSDT,{side[i]},1.0,{px},{px * 4e-4},USDT\n")
    res = json.loads(run_cli(["gap", "--orders", "orders.csv", "--fills", "fills.csv", "--json"],
                             tmp_path).stdout)  # fmt: skip
    assert res["live_bps"]["impact"] == pytest.approx(5.0, rel=1e-6)
    assert res["live_bps"]["fees"] == pytest.approx(4.0 * 1.0005, rel=1e-3)
    bad = run_cli(["gap", "--orders", "orders.csv", "--fills", "missing.csv"], tmp_path,
                  check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "missing.csv" in bad.stderr


def _section_block(title: str, lang: str) -> str:
    body = README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)
    return str(block)


def test_researcher_path_from_files_on_disk_to_a_report(tmp_path: Path, real_dir: Path) -> None:
    """The README's CLI path, run as written on the real archive files."""
    downloads = str(real_dir / "binance_futures_klines")
    cmds = _section_commands("From files on disk to a report")
    assert [c.split()[1] for c in cmds] == ["ingest", "validate", "score", "backtest", "sweep",
                                            "walkforward", "report"]  # fmt: skip
    out = {}
    for cmd in cmds:
        args = cmd.replace("~/downloads/binance", downloads).split()[1:]
        out[args[0]] = run_cli(args, tmp_path)
    n_files = len(list((real_dir / "binance_futures_klines").iterdir()))
    assert f"{n_files} file(s), 0 failed" in out["ingest"].stdout
    assert "RankIC h=1" in out["score"].stdout
    assert "symbols=4, bars=40,319" in out["backtest"].stdout  # Feb 2026: 4 symbols, 28 days
    assert "results: store/results/sweep=" in out["sweep"].stdout  # hourly, ranked by DSR
    assert "rev_5" in out["sweep"].stdout
    assert "PBO on these splits" in out["walkforward"].stdout
    assert (tmp_path / "walkforward" / "report.html").is_file()
    assert "trials on this data (all studies)" in out["score"].stdout
    assert "report: report/report.html" in out["report"].stdout
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert html.count("<figure id=") >= 4
    again = run_cli([*cmds[0].replace("~/downloads/binance", downloads).split()[1:], "--json"],
                    tmp_path)  # fmt: skip
    assert json.loads(again.stdout)["rows_added"] == 0


def test_researcher_path_in_python(tmp_path: Path, real_dir: Path) -> None:
    """The README's Python snippet, run as written (downloads folder substituted)."""
    code = _section_block("From files on disk to a report", "python")
    code = code.replace("~/downloads/binance", str(real_dir / "binance_futures_klines"))
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                           str(ROOT / ".numba_cache"))}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "horizon" in proc.stdout
    assert (tmp_path / "report" / "report.html").is_file()
    cli = json.loads(run_cli(["backtest", "rev_5", "--store", "store", "--start", "2026-02-01",
                              "--end", "2026-03-01", "--rebalance-every", "60", "--json"],
                             tmp_path).stdout)  # fmt: skip
    sharpe = float(proc.stdout.strip().splitlines()[-1].split()[0])
    assert sharpe == pytest.approx(cli["metrics"]["sharpe"], rel=1e-9)  # one code path


def test_recorded_books_path(tmp_path: Path, real_dir: Path) -> None:
    """The README's recorded-books commands, run as written on the real spot recordings."""
    cmds = _section_commands("Recorded order books")
    assert [c.split()[1] for c in cmds] == ["ingest", "score", "backtest", "slippage-study"]
    rec = str(real_dir / "binance_ws_hftbacktest" / "spot")
    out = {}
    for cmd in cmds:
        args = cmd.replace("~/recordings/spot", rec).split()[1:]
        out[args[0]] = run_cli(args, tmp_path)
    assert "0 failed" in out["ingest"].stdout
    assert "time-series RankIC" in out["score"].stdout
    assert "book=depth_updates (NEXOUSDT)" in out["backtest"].stdout
    doc = json.loads(run_cli([*cmds[2].split()[1:], "--json"], tmp_path).stdout)
    assert doc["settings"]["slippage_model"] == "book_walk"
    assert doc["metrics"]["slippage"] > 0
    assert "slippage study: NEXOUSDT" in out["slippage-study"].stdout


def test_live_gap_path(tmp_path: Path, real_dir: Path) -> None:
    """The README's live-gap commands, as written, on the real NEXOUSDT recording; the account's
    trades (my_trades.json, the REST myTrades layout) are built from the recording's real trades
    taken by the backtest's orders (tests/e2e/test_gap_real_fills.py)."""
    from tests.e2e.test_gap_real_fills import FILES, _rest_rows, fills_from_real_trades

    cmds = _section_commands("The live gap")
    assert [c.split()[1] for c in cmds] == ["backtest", "gap"]
    rec = real_dir / "binance_ws_hftbacktest"
    run_cli(["ingest", *(str(rec / f) for f in FILES), "--store", "store", "--market", "spot"],
            tmp_path)  # fmt: skip
    bt = run_cli(cmds[0].split()[1:], tmp_path)
    assert "orders_out" in bt.stdout or (tmp_path / "orders.csv").is_file()
    import pyarrow.csv as pacsv

    from alphaforge.data.recordings import read_hftbacktest

    orders = pacsv.read_csv(tmp_path / "orders.csv").to_pydict()
    live = fills_from_real_trades(orders, read_hftbacktest([rec / f for f in FILES]).trades)
    (tmp_path / "my_trades.json").write_text(json.dumps(_rest_rows(live)))
    out = run_cli(cmds[1].split()[1:], tmp_path).stdout
    assert "backtest vs live (bps of notional)" in out
    assert "best-calibrated slippage model" in out
    assert "book_walk@decision" in out
    assert (tmp_path / "backtest_fills.csv").is_file()


def test_object_storage_and_tiers_path(tmp_path: Path, real_dir: Path, s3_env: Any) -> None:
    """The README's object-storage commands, as written (bucket names mapped to buckets of the
    S3 server the tests start on loopback), on the real archive files."""
    cmds = _section_commands("Object storage and tiers")
    research = s3_env.bucket()
    downloads = str(real_dir / "binance_futures_klines")
    out = []
    for cmd in cmds:
        text = cmd.replace("~/downloads/binance", downloads)
        words = shlex.split(text.replace("s3://research/", f"s3://{research}/"))
        env = dict(s3_env.env, ALPHAFORGE_CONFIG=str(tmp_path / "none.toml"))
        while "=" in words[0]:  # VAR=value prefixes, as a shell would take them
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        assert words[0] == "alphaforge"
        out.append(run_cli(words[1:], tmp_path, env=env))
    n_files = len(list((real_dir / "binance_futures_klines").iterdir()))
    assert f"{n_files} file(s), 0 failed" in out[0].stdout
    for sym in ("ALGOUSDT", "AVAXUSDT", "DOTUSDT", "LINKUSDT"):
        assert sym in out[1].stdout
    assert "moved" in out[3].stdout  # the 2023-26 months are older than 90 days: cold
    assert "tiers (USD per month" in out[4].stdout
    assert "cold:" in out[4].stdout
    local = run_cli(
        ["sql", "select count(*) as n from klines_1m", "--json", "--store", "store"],
        tmp_path,
        env=dict(s3_env.env, ALPHAFORGE_COLD_STORE=f"s3://{research}/archive"),
    )
    remote = run_cli(["sql", "select count(*) as n from klines_1m", "--json", "--store",
                      f"s3://{research}/alphaforge"], tmp_path, env=s3_env.env)  # fmt: skip
    assert json.loads(local.stdout) == json.loads(remote.stdout)
    assert json.loads(local.stdout)[0]["n"] > 100_000
