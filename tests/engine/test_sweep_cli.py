"""`alphaforge sweep` end to end through the CLI: a rerun resumes (every chunk skipped, the same
ranking), bad grids and budgets exit 2 with a message naming the problem, and a sweep resumed
with a different chunking neither loses nor duplicates trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.data.results import ResultsStore
from alphaforge.panels import synthetic_panel
from alphaforge.sweeps import run_sweep_study

BASE = ["sweep", "--bars", "300", "--factors", "mom_20,rev_1", "--chunk", "1", "--json"]


def _sweep(results: Path, *extra: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, [*BASE, "--results", str(results), *extra])
    return res.exit_code, res.stdout, res.stderr


def test_second_run_skips_every_chunk_and_ranks_identically(tmp_path: Path) -> None:
    code, out, err = _sweep(tmp_path, "--grid", "rebalance_every=1,10")
    assert code == 0, err
    first = json.loads(out)
    assert first["n_trials"] == 4
    assert first["counts"] == {"chunks": 4, "skipped": 0, "computed": 4}
    assert sorted(r["trial_id"] for r in first["top"]) == [0, 1, 2, 3]
    assert {(r["factor"], r["rebalance_every"]) for r in first["top"]} == {
        ("mom_20", 1), ("mom_20", 10), ("rev_1", 1), ("rev_1", 10)}  # fmt: skip
    stored = sorted(p.name for p in Path(first["results_dir"]).glob("chunk=*.parquet"))
    assert stored == [f"chunk={i:05d}.parquet" for i in range(4)]
    chunk_files = sorted(Path(first["results_dir"]).glob("chunk=*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in chunk_files]

    code, out, err = _sweep(tmp_path, "--grid", "rebalance_every=1,10")
    assert code == 0, err
    second = json.loads(out)
    assert second["counts"] == {"chunks": 4, "skipped": 4, "computed": 0}
    assert "4 chunk(s) already stored, 0 to run" in err
    assert second["sweep_id"] == first["sweep_id"]
    assert second["top"] == first["top"]
    assert second["pbo"] == first["pbo"] or (second["pbo"] != second["pbo"] == first["pbo"])
    assert [p.stat().st_mtime_ns for p in chunk_files] == mtimes  # no chunk rewritten


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "rebalance_every"], "--grid 'rebalance_every': expected name=v1,v2"),
        (["--grid", "lookback=1,2"], "unknown sweep parameter(s) ['lookback']"),
        (["--grid", "rebalance_every=1,abc"], "rebalance_every: value 'abc' is not an integer"),
        (["--grid", "rebalance_every=0,5"], "rebalance_every: value 0 is below 1"),
        (["--grid", "fee_bps=1,nan"], "fee_bps: value nan is not a finite number"),
        (["--grid", "scheme=rank,best"], "scheme: value 'best' is not one of"),
        (["--memory-budget", "10"], "memory budget 10 B is below one trial"),
        (["--memory-budget", "lots"], "cannot parse a size from 'lots'"),
    ],
)
def test_bad_grid_or_budget_exits_2_with_a_clear_message(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    code, out, err = _sweep(tmp_path, *extra)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in err
    doc = json.loads(out)  # with --json the error is JSON on stdout too
    assert doc["ok"] is False
    assert message in doc["error"]


def test_resume_with_another_chunking_keeps_exactly_one_row_per_trial(tmp_path: Path) -> None:
    panel = synthetic_panel(n_symbols=4, n_bars=300, seed=5).panel
    grid = {"rebalance_every": [1, 5, 10]}
    part = run_sweep_study(panel, ["mom_20"], grid, str(tmp_path), chunk_size=2, stop_after=1)
    assert part.counts == {"chunks": 2, "skipped": 0, "computed": 1}
    resumed = run_sweep_study(panel, ["mom_20"], grid, str(tmp_path), chunk_size=1)
    ids = sorted(ResultsStore(tmp_path, resumed.sweep_id).read()["trial_id"].to_pylist())
    assert ids == [0, 1, 2]
    assert sorted(r["trial_id"] for r in resumed.ranked) == [0, 1, 2]
    clean = run_sweep_study(panel, ["mom_20"], grid, str(tmp_path / "clean"), chunk_size=1)
    assert [r["sharpe"] for r in resumed.ranked] == [r["sharpe"] for r in clean.ranked]


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ("mom_20,mom_2x", "unknown factor 'mom_2x'"),
        ("mom_20,close / nope", "unknown name 'nope'"),
        ("mom_20,book_imbalance", "reads depth_imbalance"),
    ],
)
def test_a_bad_factor_is_refused_before_any_chunk_runs(tmp_path: Path, factors: str,
                                                       message: str) -> None:  # fmt: skip
    res = CliRunner().invoke(app, ["sweep", "--bars", "300", "--chunk", "1", "--results",
                                   str(tmp_path), "--factors", factors, "--json"])  # fmt: skip
    assert res.exit_code == 2
    assert message in json.loads(res.stdout)["error"]
    assert not list(tmp_path.rglob("*.parquet"))  # nothing was computed or stored
    assert "chunk" not in res.stderr
