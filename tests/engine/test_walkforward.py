"""Walk-forward: splits with purge and embargo, and a planted factor that dies halfway through
looks very different in sample and out of sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import alphaforge as af
from alphaforge.engine.errors import OptionError
from alphaforge.engine.walkforward import overfit_logit, walk_forward_splits
from tests.e2e.conftest import run_cli
from tests.factors.test_propose import PLANTED, make_panel


@given(st.integers(50, 600), st.integers(5, 120), st.integers(1, 60), st.integers(0, 10),
       st.integers(0, 10), st.sampled_from(["rolling", "expanding"]))  # fmt: skip
def test_splits_respect_purge_embargo_and_order(n, train, test, purge, embargo, mode) -> None:
    if train + purge + test > n:
        with pytest.raises(OptionError, match="no walk-forward window fits"):
            walk_forward_splits(n, train, test, mode=mode, purge=purge, embargo=embargo)
        return
    try:
        splits = walk_forward_splits(n, train, test, mode=mode, purge=purge, embargo=embargo)
    except OptionError as exc:
        message = str(exc)
        splits = []
    else:
        message = ""
    if not splits:  # only an embargo that starves a rolling window may refuse
        assert "leaves window" in message
        assert embargo > 0
        return
    for k, s in enumerate(splits):
        assert s.test_end <= n
        assert s.train.size >= train / 2  # an embargo may thin the train set, not empty it
        assert s.train.max() < s.test_start - purge  # purge gap kept
        if mode == "rolling":
            assert s.train.min() >= s.test_start - purge - train
        else:
            assert s.train.min() == 0
        for earlier in splits[:k]:  # rows right after an earlier test window: embargoed
            gap = (s.train >= earlier.test_end) & (s.train < earlier.test_end + embargo)
            assert not gap.any()
        if k:
            assert s.test_start == splits[k - 1].test_end  # back-to-back test windows


def test_overfit_logit_sign() -> None:
    assert overfit_logit(0, np.array([3.0, 1.0, 2.0])) > 0  # best out of sample
    assert overfit_logit(1, np.array([3.0, 1.0, 2.0])) < 0  # worst
    assert overfit_logit(0, np.array([np.nan, 1.0])) < 0  # no test Sharpe: ranked last


def test_purge_shorter_than_the_label_is_refused() -> None:
    panel = af.synthetic_panel(n_bars=600, seed=1)
    with pytest.raises(OptionError, match="purge 1 < lag \\+ horizon = 6"):
        af.walkforward(panel, ["mom_20", "rev_1"], purge=1, horizon=5)


CANDIDATES = [PLANTED, "mom_20", "rev_1", "vol_20", "cs_rank(ts_mean(returns, 5))"]
NO_COST = {"fee_bps": [0.0], "slippage_bps": [0.0]}


@pytest.fixture(scope="module")
def decaying() -> af.Panel:
    """The planted factor earns for the first half of the bars, nothing afterwards."""
    return make_panel(t=2_400, n=15, strength=0.004, seed=4, decay_at=1_200)


def test_planted_factor_that_decays_halfway(decaying: af.Panel, tmp_path: Path) -> None:
    res = af.walkforward(decaying, CANDIDATES, grid=NO_COST, train=600, test=200)
    first = [w for w in res.windows if w["test_start_us"] < decaying.ts_us[1_200]]
    later = [w for w in res.windows if w["test_start_us"] >= decaying.ts_us[1_300]]
    assert first
    assert later
    assert all(PLANTED.split("(")[0] in w["selected"] for w in first)
    strong = np.mean([w["test_sharpe"] for w in first])
    weak = np.mean([w["test_sharpe"] for w in later])
    assert strong > 20
    assert weak < 0.1 * strong  # the edge is gone out of sample...
    # ...while in sample (each window's train rows) the picked factor still looks excellent
    assert np.mean([w["train_sharpe"] for w in later]) > 0.4 * strong
    # and the in-sample pick made on every row shows the first half's edge on the whole curve
    assert PLANTED.split("(")[0] in res.is_selected
    assert res.is_metrics["sharpe"] > res.oos_metrics["sharpe"]
    assert res.is_metrics["total_return"] > 5 * res.oos_metrics["total_return"]
    assert res.is_metrics["bars"] == decaying.T
    assert res.oos_metrics["bars"] == sum(w["test_rows"] for w in res.windows)
    curves = res.curves()
    assert curves["out_of_sample"].isna().sum() == decaying.T - res.oos_metrics["bars"]
    paths = res.report(tmp_path / "wf")
    assert "cumulative_returns" in paths.figures
    assert "Windows" in paths.html.read_text()
    # in a rolling window the rule notices: after the decay it stops picking the planted factor
    rolling = af.walkforward(decaying, CANDIDATES, grid=NO_COST, train=300, test=200,
                             mode="rolling")  # fmt: skip
    late = [w["selected"] for w in rolling.windows if w["test_start_us"] > decaying.ts_us[1_800]]
    assert any(PLANTED.split("(")[0] not in s for s in late)


def test_walkforward_cli_equals_the_api(tmp_path: Path) -> None:
    args = ["walkforward", "--factors", "mom_20,rev_1,vol_20", "--bars", "1500", "--grid",
            "rebalance_every=1,15", "--rule", "sharpe", "--mode", "rolling", "--train", "400",
            "--test", "150", "--embargo", "20", "--out", "wf"]  # fmt: skip
    doc = json.loads(run_cli([*args, "--json"], tmp_path).stdout)
    api = af.walkforward(af.synthetic_panel(n_bars=1500, seed=7), ["mom_20", "rev_1", "vol_20"],
                         rule="sharpe", grid={"rebalance_every": [1, 15]}, mode="rolling",
                         train=400, test=150, embargo=20)  # fmt: skip
    assert doc["out_of_sample"]["sharpe"] == pytest.approx(api.oos_metrics["sharpe"], rel=1e-12)
    assert [w["selected"] for w in doc["windows"]] == [w["selected"] for w in api.windows]
    assert doc["n_candidates"] == 6
    assert (tmp_path / "wf" / "report.html").is_file()
    text = run_cli(args[:-2], tmp_path).stdout
    assert "[rebalance_every=" in text  # labels are shown, not eaten as markup
    assert "PBO on these splits" in text
