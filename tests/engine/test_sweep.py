"""Sweeps: chunking under a memory budget, equality with separate runs, resumption, Dask
LocalCluster equality and survival of a killed worker, PBO sanity."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import distributed  # a dev dependency: CI must run the Dask tests, never skip them
import numpy as np
import pyarrow as pa
import pytest

from alphaforge.backtests import run_factor_backtest
from alphaforge.data.results import ResultsStore
from alphaforge.engine.errors import OptionError
from alphaforge.engine.sweep import bytes_per_trial, expand_trials, plan_chunks, run_sweep
from alphaforge.factors.pbo import pbo
from alphaforge.panels import synthetic_panel
from tests.engine.sweep_helpers import KILL_MARKER, killing_signal, mom_signal

GRID = {"rebalance_every": [1, 5, 20], "fee_bps": [0.0, 4.0]}


@pytest.fixture(scope="module")
def panel():
    return synthetic_panel(n_symbols=5, n_bars=400, seed=3).panel


def _table(sink: ResultsStore) -> pa.Table:
    t = sink.read()
    return t.sort_by("trial_id").select(["trial_id", "factor", "sharpe", "total_return", "fees"])


def test_grid_expansion_and_budgeted_chunks(panel) -> None:
    trials = expand_trials(["5", "20"], GRID)
    assert len(trials) == 12
    assert {t.params["rebalance_every"] for t in trials} == {1, 5, 20}
    budget = 2 * bytes_per_trial(panel.T, panel.N) + 1
    chunks = plan_chunks(trials, panel.T, panel.N, chunk_size=64, memory_budget_bytes=budget)
    assert all(len(c) <= 2 for c in chunks)
    assert all(len({t.factor for t in c}) == 1 for c in chunks)
    assert sorted(t.trial_id for c in chunks for t in c) == list(range(12))
    with pytest.raises(OptionError, match="below one trial"):
        plan_chunks(trials, panel.T, panel.N, 64, 10)
    with pytest.raises(OptionError, match="unknown sweep parameter"):
        expand_trials(["5"], {"lookback": [1]})


def test_sweep_rows_equal_separate_backtests(panel, tmp_path: Path) -> None:
    sink = ResultsStore(tmp_path, "s1")
    run_sweep(panel, expand_trials(["5"], GRID), mom_signal, sink, chunk_size=4)
    t = sink.read().sort_by("trial_id").to_pylist()
    for row in t:  # the sweep applies the rules of `alphaforge backtest` (one code path)
        ref = run_factor_backtest(
            panel,
            mom_signal("5", panel),
            fee_bps=row["fee_bps"],
            slippage_bps=1.0,
            rebalance_every=row["rebalance_every"],
        ).result
        assert row["total_return"] == pytest.approx(ref.equity[-1] - 1.0, rel=1e-10, abs=1e-14)
        assert row["fees"] == pytest.approx(ref.fees, rel=1e-10, abs=1e-15)


def test_interrupted_sweep_resumes_without_recomputing(panel, tmp_path: Path) -> None:
    trials = expand_trials(["5", "20"], GRID)
    sink = ResultsStore(tmp_path, "s2")
    first = run_sweep(panel, trials, mom_signal, sink, chunk_size=2, stop_after=2)
    assert first == {"chunks": 6, "skipped": 0, "computed": 2}
    second = run_sweep(panel, trials, mom_signal, sink, chunk_size=2)
    assert second == {"chunks": 6, "skipped": 2, "computed": 4}
    clean = ResultsStore(tmp_path, "clean")
    run_sweep(panel, trials, mom_signal, clean, chunk_size=2)
    assert _table(sink).equals(_table(clean))


@pytest.fixture(scope="module")
def cluster():
    # Dask's default dashboard port is 8787: hold it (when free) so the cluster must do without
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8787))
        blocker.listen()
    except OSError:
        pass  # already taken by something else: the condition under test anyway
    with (
        blocker,
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # any free port: None falls back to 8787
            silence_logs=40,
        ) as c,
        distributed.Client(c) as client,
    ):
        yield client


def test_local_cluster_gives_the_local_results(panel, tmp_path: Path, cluster) -> None:
    trials = expand_trials(["5", "20"], GRID)
    local = ResultsStore(tmp_path, "local")
    run_sweep(panel, trials, mom_signal, local, chunk_size=2)
    remote = ResultsStore(tmp_path, "dask")
    counts = run_sweep(panel, trials, mom_signal, remote, chunk_size=2, scheduler=cluster)
    assert counts["computed"] == 6
    assert _table(remote).equals(_table(local))


def test_killed_worker_still_completes(panel, tmp_path: Path, cluster) -> None:
    marker = tmp_path / "kill-once"
    marker.write_text("x")
    cluster.run(lambda m: os.environ.__setitem__(KILL_MARKER, m), str(marker))
    trials = expand_trials(["5", "20"], GRID)
    sink = ResultsStore(tmp_path, "killed")
    counts = run_sweep(panel, trials, killing_signal, sink, chunk_size=2, scheduler=cluster)
    assert not marker.exists(), "a worker should have died on its first chunk"
    assert counts["computed"] == 6
    local = ResultsStore(tmp_path, "ref")
    run_sweep(panel, trials, mom_signal, local, chunk_size=2)
    assert _table(sink).equals(_table(local))


def test_pbo_is_low_for_a_real_edge_and_not_low_for_noise() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (4000, 40))
    edge = noise.copy()
    edge[:, 3] += 0.003
    assert pbo(edge).pbo < 0.05
    assert pbo(noise).pbo > 0.2
