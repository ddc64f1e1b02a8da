"""A Dask sweep whose workers read the panel from the object store themselves (S3 server on
loopback, real Binance klines): results identical to a local sweep, no panel scattered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import distributed  # a dev dependency: CI must run the Dask tests, never skip them
import pytest

import alphaforge as af
from alphaforge.engine.errors import OptionError
from alphaforge.engine.sweep import loaded_panels

GRID = {"rebalance_every": [15, 60], "fee_bps": [0.0, 4.0]}


@pytest.mark.slow
def test_cluster_workers_read_from_the_object_store(
    tmp_path: Path, s3_env: Any, real_dir: Path
) -> None:
    uri = f"s3://{s3_env.bucket()}/af"
    store = af.Store(uri)
    rep = store.ingest(real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz",
                       real_dir / "binance_futures_klines" / "LINKUSDT-1m-2026-02.csv.gz",
                       market="usdm")  # fmt: skip
    assert rep.ok
    panel = store.panel(start="2026-02-02", end="2026-02-06")
    local = af.sweep(panel, ["mom_20", "rev_1"], GRID, tmp_path / "local",
                     ledger=tmp_path / "l1.sqlite")  # fmt: skip
    assert local.transport == "local"
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=":0",
                                 silence_logs=40) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        remote = af.sweep(panel, ["mom_20", "rev_1"], GRID, tmp_path / "remote",
                          scheduler=client, ledger=tmp_path / "l2.sqlite")  # fmt: skip
        held = client.run(loaded_panels)
        sliced = panel.slice_time(panel.ts_us[10], None)  # no longer the stored query
        scattered = af.sweep(sliced, ["mom_20"], {"fee_bps": [0.0]}, tmp_path / "scatter",
                             scheduler=client, ledger=tmp_path / "l3.sqlite")  # fmt: skip
        with pytest.raises(OptionError, match="worker_reads needs"):
            af.sweep(sliced, ["mom_20"], {"fee_bps": [0.0]}, tmp_path / "x", scheduler=client,
                     worker_reads=True, ledger=tmp_path / "l4.sqlite")  # fmt: skip
    assert remote.transport == "worker_reads"
    assert sum(held.values()) >= 1  # the workers built their own panels from the store
    assert scattered.transport == "scatter"
    assert remote.counts["computed"] == local.counts["computed"] > 0
    keys = ("trial_id", "factor", "sharpe", "total_return", "max_drawdown", "sr_per_bar")
    assert [{k: r[k] for k in keys} for r in remote.ranked] == [
        {k: r[k] for k in keys} for r in local.ranked
    ]
