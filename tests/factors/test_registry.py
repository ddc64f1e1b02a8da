"""The research registry: one look per signal at a holdout, whatever the spelling, the study or
the command; a study-wide count of distinct trials used by the Deflated Sharpe Ratio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alphaforge as af
from alphaforge.factors.dsr import expected_max_sharpe
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.propose import Gate, Study, leaderboard
from alphaforge.factors.propose_parse import Candidate
from alphaforge.factors.registry import HoldoutReused, Registry, signature, similarity
from tests.e2e.conftest import run_cli
from tests.factors.test_propose import PLANTED, cfg, make_panel


def _study(panel: af.Panel, ledger: Ledger, name: str) -> Study:
    return Study(panel, cfg(study=name, gate=Gate(min_abs_t=3.0, min_sharpe=-1e9)), ledger)


def test_respelled_accepted_factor_in_a_later_run_and_a_new_study_is_refused(
    tmp_path: Path,
) -> None:
    panel = make_panel()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    first = _study(panel, ledger, "first")
    assert first.evaluate(Candidate("planted", PLANTED, ""), {}) == "accepted"
    later = _study(panel, ledger, "second")  # a new run, a new study name, the same ledger
    for text in (f"2 * ({PLANTED})", f"({PLANTED}) + 0", f"ts_delay({PLANTED}, 0)",
                 f"-({PLANTED})"):  # fmt: skip
        assert later.evaluate(Candidate("again", text, ""), {}) == "duplicate", text
    rows = [r for r in ledger.rows("second")]
    assert {r.status for r in rows} == {"duplicate"}
    assert all("already evaluated on this holdout" in (r.reason or "") for r in rows)
    assert all(r.holdout is None for r in rows)  # the holdout was never scored again
    assert Registry(ledger.path).looks() == 1
    # a different signal still gets its one look
    other = later.evaluate(Candidate("vol", "cs_rank(ts_std(returns, 30))", ""), {})
    assert other in ("accepted", "failed_gate")


def test_a_propose_factor_cannot_be_rescored_on_the_holdout(tmp_path: Path) -> None:
    panel = make_panel()
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert _study(panel, ledger, "s").evaluate(Candidate("p", PLANTED, ""), {}) == "accepted"
    with pytest.raises(HoldoutReused, match="1 earlier look"):
        af.score(f"3 * {PLANTED}", panel, split=0.7, test=True, ledger=ledger.path,
                 horizons=(1,))  # fmt: skip


def test_repeated_score_test_is_refused_and_an_explicit_reuse_is_marked(tmp_path: Path) -> None:
    args = ["score", "mom_20", "--bars", "900", "--split", "0.7", "--test", "--horizons", "1,5"]
    first = run_cli(args, tmp_path)
    assert "first look of this signal at this holdout" in first.stdout
    again = run_cli(args, tmp_path, check=False)
    assert again.returncode == 2
    assert "already evaluated on this holdout" in again.stderr
    # a new study name, a re-spelling and an overlapping split change nothing
    for extra in (["--study", "fresh"], ["--split", "0.6"]):
        proc = run_cli([*args, *extra], tmp_path, check=False)
        assert proc.returncode == 2, extra
    proc = run_cli(["score", "-1 * ts_pct_change(close, 20)", *args[2:]], tmp_path, check=False)
    assert proc.returncode == 2
    reused = json.loads(run_cli([*args, "--reuse-holdout", "--json"], tmp_path).stdout)
    assert reused["warnings"][-1].startswith("HOLDOUT REUSED: look #2")
    assert reused["test"]["warnings"][-1].startswith("HOLDOUT REUSED")
    # another factor, or the train part alone, is not a look at the holdout
    run_cli(["score", "vol_20", *args[2:]], tmp_path)
    run_cli([*args[:-3], "--horizons", "1"], tmp_path)


def test_signatures_are_sign_insensitive_and_survive_a_different_split() -> None:
    panel = af.synthetic_panel(n_bars=3000, seed=2)
    f = af.factor("mom_20").evaluate(panel)
    g = af.factor("vol_20").evaluate(panel)
    a = signature(f[:2100], panel.take_rows(slice(0, 2100)))
    b = signature(-2 * f[:1800], panel.take_rows(slice(0, 1800)))  # another split, rows shared
    c = signature(g[:2100], panel.take_rows(slice(0, 2100)))
    assert similarity(a, b) == pytest.approx(-1.0, abs=1e-6)
    assert abs(similarity(a, c)) < 0.5
    assert a.z.shape[0] <= 1024


def test_trial_count_is_study_wide_distinct_and_per_data_set(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    panel = af.synthetic_panel(n_symbols=6, n_bars=900, seed=3)
    one = af.score("mom_20", panel, horizons=(1,), ledger=ledger, study="a")
    assert one.raw.trials["n_trials"] == 1
    assert one.dsr["n_trials"] == 1
    af.score("mom_20", panel, horizons=(1,), ledger=ledger, study="b")  # the same trial again
    two = af.score("rev_1", panel, horizons=(1,), ledger=ledger, study="c")
    assert two.raw.trials["n_trials"] == 2
    out = af.sweep(panel, ["mom_20", "rev_1"], {"rebalance_every": [1, 15]},
                   tmp_path / "results", ledger=ledger)  # fmt: skip
    assert out.n_trials == 4
    assert out.trials_on_data == 6  # 2 scores + 4 sweep trials
    run = af.backtest("vol_20", panel, ledger=ledger)
    assert run.trials["n_trials"] == 7
    assert run.trials["by_kind"] == {"backtest": 1, "score": 2, "sweep": 4}
    # DSR uses the study-wide count and the spread of the recorded trials' Sharpe ratios
    three = af.score("mom_60", panel, horizons=(1,), ledger=ledger)
    count = Registry(ledger).trial_count(panel)
    assert three.dsr["n_trials"] == count.n_trials == 8
    assert three.dsr["var_source"] == "trials"
    assert three.dsr["var_trials"] == pytest.approx(count.var_trials)
    needed = expected_max_sharpe(8, count.var_trials) * np.sqrt(panel.periods_per_year)
    assert three.raw.trials["sr_needed_annual"] == pytest.approx(needed)
    assert any(m == "Sharpe needed to beat luck" for m, _ in three.raw.summary_rows())
    # an explicit count still wins; other data (other symbols) is another data set
    assert af.score("mom_60", panel, horizons=(1,), n_trials=3, ledger=ledger).dsr["n_trials"] == 3
    other = af.synthetic_panel(n_symbols=5, n_bars=900, seed=3)
    assert af.score("mom_60", other, horizons=(1,), ledger=ledger).raw.trials["n_trials"] == 1


def test_trials_recorded_together_land_all_or_none(tmp_path: Path) -> None:
    """``record_trials`` (the library ranking's one transaction) counts like one-by-one
    records; a bad row (no trial key) leaves nothing recorded, not a partial study."""
    panel = af.synthetic_panel(n_symbols=4, n_bars=300, seed=2)
    reg = Registry(tmp_path / "ledger.sqlite")
    with pytest.raises(Exception, match="NOT NULL"):
        reg.record_trials(panel, "score", [("a", "a", 0.1, 300), (None, "b", 0.2, 300)])  # type: ignore[list-item]
    assert reg.trial_count(panel).n_trials == 0
    reg.record_trials(panel, "score", [("a", "a", 0.1, 300), ("b", "b", float("nan"), 300)])
    reg.record_trial(panel, "backtest", "a", name="a", sr_per_bar=0.3, n_obs=300)
    count = reg.trial_count(panel)
    assert count.n_trials == 2  # distinct keys: "a" twice counts once
    assert count.by_kind == {"backtest": 1, "score": 2}
    np.testing.assert_allclose(np.sort(count.sharpes), [0.3])  # latest of "a"; "b" has none


def test_leaderboard_counts_every_study_on_the_same_data(tmp_path: Path) -> None:
    panel = make_panel(t=600)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for seed, name in enumerate(("s1", "s2")):
        Study(panel, cfg(study=name, rounds=1, per_round=6, seed=seed), ledger).run()
    board = leaderboard(ledger, "s2")
    count = Registry(ledger.path).study_trial_count("s2")
    assert count is not None
    assert count.n_trials > len(ledger.rows("s2"))  # s1's distinct trials count too
    assert board


def test_cli_shows_the_trial_count_and_the_luck_threshold(tmp_path: Path) -> None:
    run_cli(["score", "mom_20", "--bars", "900", "--horizons", "1"], tmp_path)
    text = run_cli(["score", "rev_1", "--bars", "900", "--horizons", "1"], tmp_path).stdout
    assert "trials on this data (all studies)" in text
    assert "2 (score 2)" in text
    assert "Sharpe needed to beat luck" in text
    bt = json.loads(run_cli(["backtest", "mom_20", "--bars", "900", "--json"], tmp_path).stdout)
    assert bt["trials"]["n_trials"] == 3  # the same data: two scores and this backtest
    assert bt["trials"]["by_kind"] == {"backtest": 1, "score": 2}
