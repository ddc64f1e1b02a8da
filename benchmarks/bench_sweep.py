"""Sweep benchmark (issue 9): a factors x parameter-grid sweep, local vs a Dask LocalCluster,
with wall time, throughput and PEAK MEMORY against the configured memory budget.

The full grid has 10,000 combinations:

    10 library factors x rebalance_every (10 values) x fee_bps (5) x scheme (rank, zscore,
    sign, quantile) x slippage_bps (5)

``--combos`` keeps every (10,000 / combos)-th trial of that grid (all factors stay present), so
a fraction of the sweep is a representative sample. The panel is built directly with numpy
(random-walk 1m bars: open, high, low, close, volume, funding every 480 bars), ``--cols`` assets
x ``--rows`` bars.

Runs:
- ``local``: ``engine.sweep.run_sweep`` in this process (the backtest kernel's numba threads);
- ``dask``: the same call with a ``distributed.LocalCluster`` client (``--workers`` processes x
  1 thread, loopback, ``NUMBA_NUM_THREADS=--worker-numba-threads`` in the workers);
- ``loop`` (anchor): one ``run_backtest`` per trial on (T, N) weights, the way a user would
  write the sweep by hand, on ``--anchor-combos`` trials spread over the sweep (every factor),
  extrapolated linearly.

Before timing (``--check``): a small sweep (8 assets x 1,500 bars, 40 trials) run locally and
on the cluster gives identical trial rows (every column, exact), and the loop anchor's total
return and fees agree with the sweep's rows (rtol 1e-9). That small run also compiles/loads
the numba kernels in the driver and in every worker; its time is reported as ``jit_s``.

Memory: a thread samples the RSS (psutil) of the driver and of every worker every
``--sample-ms`` ms. For each process we report the peak and the peak minus its baseline taken
just before the timed run. The planned chunks are checked to never exceed the budget
(K x bytes_per_trial <= budget); the RSS delta should stay within about budget + one copy of the
panel (scattered to each worker) + the factor signal temporaries.

Run: ``python benchmarks/bench_sweep.py --rows 20000 --cols 50 --combos 500 --check``
(the full size is ``--rows 100000 --combos 10000``; see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.cli.sweep import parse_bytes  # noqa: E402
from alphaforge.data.results import ResultsStore  # noqa: E402
from alphaforge.engine.backtest import run_backtest  # noqa: E402
from alphaforge.engine.panel import Panel  # noqa: E402
from alphaforge.engine.sweep import Trial, bytes_per_trial, expand_trials, plan_chunks, run_sweep  # noqa: E402
from alphaforge.engine.weights import weights_from_signals  # noqa: E402
from alphaforge.sweeps import factor_signal  # noqa: E402

FACTORS = ["mom_20", "mom_60", "mom_240", "rev_1", "rev_5", "vol_20", "trend_z_60", "rsi_14",
           "boll_pos_20", "range_20"]  # fmt: skip
GRID: dict[str, list[Any]] = {
    "rebalance_every": [1, 2, 5, 10, 15, 30, 60, 120, 240, 480],
    "fee_bps": [0.0, 1.0, 2.0, 4.0, 8.0],
    "scheme": ["rank", "zscore", "sign", "quantile"],
    "slippage_bps": [0.0, 0.5, 1.0, 2.0, 5.0],
}
MB = 1 << 20


def make_panel(rows: int, cols: int, seed: int) -> Panel:
    """Random-walk 1m bars (T=rows, N=cols) with open/high/low/close/volume and funding."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, 0.001, (rows + 1, cols))
    logp = np.cumsum(r, axis=0)
    close = 100.0 * np.exp(logp[1:])
    open_ = 100.0 * np.exp(logp[:-1])
    wick = np.abs(rng.normal(0.0, 0.0005, (rows, cols)))
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) * (1 - wick)
    volume = rng.lognormal(3.0, 0.5, (rows, cols))
    funding = np.full((rows, cols), np.nan)
    funding[::480] = rng.normal(1e-4, 5e-5, funding[::480].shape)
    fields = {"open": open_, "high": high, "low": low, "close": close, "volume": volume,
              "funding_rate": funding}  # fmt: skip
    ts = (np.arange(1, rows + 1, dtype=np.int64) + 28_000_000) * 60_000_000
    syms = tuple(f"A{j:03d}USDT" for j in range(cols))
    return Panel(ts, syms, fields, interval_us=60_000_000, meta={"source": "bench_sweep"})


def select_trials(combos: int) -> list[Trial]:
    """Every (10,000 / combos)-th trial of the full grid (trial ids kept)."""
    trials = expand_trials(FACTORS, GRID)
    if not 1 <= combos <= len(trials):
        raise SystemExit(f"--combos must be in [1, {len(trials)}]; got {combos}")
    step = len(trials) / combos
    return [trials[int(i * step)] for i in range(combos)]


@dataclass
class RssSampler:
    """Samples the RSS of some processes in a thread; keeps per-process and total peaks."""

    pids: dict[str, int]
    period_s: float = 0.02
    peak: dict[str, int] = field(default_factory=dict)
    base: dict[str, int] = field(default_factory=dict)
    peak_total: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> dict[str, int]:
        out = {}
        for name, pid in self.pids.items():
            try:
                out[name] = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                out[name] = 0
        return out

    def __enter__(self) -> RssSampler:
        self.base = self._sample()
        self.peak = dict(self.base)
        self.peak_total = sum(self.base.values())
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            cur = self._sample()
            for k, v in cur.items():
                self.peak[k] = max(self.peak[k], v)
            self.peak_total = max(self.peak_total, sum(cur.values()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def report(self) -> dict[str, Any]:
        return {name: {"base_mb": self.base[name] / MB, "peak_mb": self.peak[name] / MB,
                       "delta_mb": (self.peak[name] - self.base[name]) / MB}
                for name in self.pids} | {"total_peak_mb": self.peak_total / MB}  # fmt: skip


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def timed_sweep(panel: Panel, trials: Sequence[Trial], args: argparse.Namespace, budget: int,
                scheduler: Any, pids: dict[str, int], tmp: Path,
                tag: str) -> dict[str, Any]:  # fmt: skip
    """One run into a fresh results store: wall, CPU of every process, RSS peaks, the table."""
    sink = ResultsStore(tmp, f"{tag}-{time.monotonic_ns()}")
    cpu0 = cpu_seconds(list(pids.values()))
    with RssSampler(pids, args.sample_ms / 1000) as rss:
        t0 = time.perf_counter()
        counts = run_sweep(panel, trials, factor_signal, sink, chunk_size=args.chunk,
                           memory_budget_bytes=budget, scheduler=scheduler)  # fmt: skip
        wall = time.perf_counter() - t0
    cpu = cpu_seconds(list(pids.values())) - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "counts": counts, "rss": rss.report(),
            "table": sink.read().sort_by("trial_id")}  # fmt: skip


def loop_anchor(
    panel: Panel, trials: Sequence[Trial]
) -> tuple[float, float, list[tuple[float, float]]]:
    """One (T, N) backtest per trial; returns (wall s, CPU s, [(total_return, fees)])."""
    out = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for tr in trials:
        p = tr.params
        w = weights_from_signals(factor_signal(tr.factor, panel), p["scheme"], gross=p["gross"],
                                 quantile=p["quantile"])  # fmt: skip
        if p["rebalance_every"] > 1:
            w[np.arange(panel.T) % p["rebalance_every"] != 0] = np.nan
        res = run_backtest(w, close=panel["close"], open=panel["open"], lag=p["lag"],
                           fee_bps=p["fee_bps"], slippage_bps=p["slippage_bps"],
                           funding=panel["funding_rate"])  # fmt: skip
        out.append((float(res.equity[-1] - 1.0), float(res.fees)))
    return time.perf_counter() - t0, time.process_time() - cpu0, out


def start_cluster(args: argparse.Namespace) -> tuple[Any, Any, dict[str, int]]:
    import distributed

    os.environ["NUMBA_NUM_THREADS"] = str(args.worker_numba_threads)  # inherited by workers
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                       processes=True, host="127.0.0.1", dashboard_address=":0",
                                       silence_logs=logging.ERROR)  # fmt: skip
    client = distributed.Client(cluster)
    pids = client.run(os.getpid)
    return cluster, client, {f"worker{i}": pid for i, pid in enumerate(pids.values())}


def check_parity(client: Any, tmp: Path) -> dict[str, Any]:
    """Small case: local == dask (all columns, exact; when a cluster runs) and the loop
    anchor == the sweep rows (rtol 1e-9)."""
    panel = make_panel(1500, 8, 1)
    trials = select_trials(40)
    t0 = time.perf_counter()
    local = ResultsStore(tmp, "parity-local")
    run_sweep(panel, trials, factor_signal, local, chunk_size=4)
    jit_local = time.perf_counter() - t0
    a = local.read().sort_by("trial_id")
    jit_dask = math.nan
    if client is not None:
        t0 = time.perf_counter()
        remote = ResultsStore(tmp, "parity-dask")
        run_sweep(panel, trials, factor_signal, remote, chunk_size=4, scheduler=client)
        jit_dask = time.perf_counter() - t0
        if not a.equals(remote.read().sort_by("trial_id")):
            raise SystemExit("parity: local and dask sweeps differ on the small case")
    _, _, ref = loop_anchor(panel, trials)
    got = list(zip(a["total_return"].to_pylist(), a["fees"].to_pylist(), strict=True))
    np.testing.assert_allclose(np.array(got), np.array(ref), rtol=1e-9, atol=1e-15)
    return {"rows": a.num_rows, "columns": a.num_columns, "jit_local_s": jit_local,
            "jit_dask_s": jit_dask}  # fmt: skip


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    return a.num_rows == b.num_rows and a.equals(b)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000, help="bars (T)")
    ap.add_argument("--cols", type=int, default=50, help="assets (N)")
    ap.add_argument("--combos", type=int, default=500, help="trials kept of the 10,000 grid")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="untimed small runs (JIT, workers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="parity on a small case first")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--budget", default="256MB", help="memory budget per chunk (e.g. 1GB)")
    ap.add_argument("--chunk", type=int, default=64, help="max trials per chunk")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--worker-numba-threads", type=int, default=1)
    ap.add_argument("--anchor-combos", type=int, default=20)
    ap.add_argument("--sample-ms", type=float, default=20.0)
    ap.add_argument("--skip", default="", help="comma list of runs to skip: local,dask,loop")
    args = ap.parse_args(argv)
    budget = parse_bytes(args.budget)
    skip = {s for s in args.skip.split(",") if s}
    log: Callable[[str], None] = (lambda s: print(s, file=sys.stderr)) if args.json else print

    t0 = time.perf_counter()
    panel = make_panel(args.rows, args.cols, args.seed)
    trials = select_trials(args.combos)
    panel_mb = sum(a.nbytes for a in panel.fields.values()) / MB
    chunks = plan_chunks(trials, panel.T, panel.N, args.chunk, budget)
    per = bytes_per_trial(panel.T, panel.N)
    k_max = max(len(c) for c in chunks)
    if k_max * per > budget:
        raise SystemExit(f"plan_chunks broke the budget: {k_max} x {per} B > {budget} B")
    units = panel.T * panel.N * len(trials)
    log(f"panel {panel.T} x {panel.N} ({panel_mb:.0f} MB, built in {time.perf_counter() - t0:.1f}"
        f" s); {len(trials)} trials in {len(chunks)} chunks of <= {k_max}; batch <= "
        f"{k_max * per / MB:.0f} MB of budget {budget / MB:.0f} MB")  # fmt: skip
    doc: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg": os.getloadavg(), "platform": platform.platform()},
        "rows": panel.T, "cols": panel.N, "combos": len(trials), "chunks": len(chunks),
        "k_max": k_max, "budget_mb": budget / MB, "batch_max_mb": k_max * per / MB,
        "panel_mb": panel_mb, "runs": {},
    }  # fmt: skip
    cluster = client = None
    pids = {"driver": os.getpid()}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            if "dask" not in skip:
                cluster, client, wpids = start_cluster(args)
                pids |= wpids
            if args.check:
                doc["parity"] = check_parity(client, tmp)
                log(f"parity ok: {doc['parity']}")
            for _ in range(args.warmup if not args.check else 0):
                small = make_panel(500, 4, 2)
                run_sweep(small, select_trials(20), factor_signal, ResultsStore(tmp, "w"),
                          chunk_size=4, scheduler=client)  # fmt: skip
            tables = {}
            for name, sched, who in (("local", None, {"driver": pids["driver"]}),
                                     ("dask", client, pids)):  # fmt: skip
                if name in skip or (name == "dask" and client is None):
                    continue
                best: dict[str, Any] | None = None
                for _ in range(args.repeat):
                    run = timed_sweep(panel, trials, args, budget, sched, who, tmp, name)
                    log(f"{name}: {run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, "
                        f"rss {json.dumps(run['rss'], default=lambda x: round(x))}")  # fmt: skip
                    if best is None or run["wall_s"] < best["wall_s"]:
                        best = run
                assert best is not None
                tables[name] = best.pop("table")
                best["trials_per_s"] = len(trials) / best["wall_s"]
                best["ns_per_bar_asset_trial"] = best["wall_s"] / units * 1e9
                best["cpu_ns_per_bar_asset_trial"] = best["cpu_s"] / units * 1e9
                best["extrapolated_full_s"] = best["wall_s"] * (100_000 * 50 * 10_000) / units
                doc["runs"][name] = best
            if len(tables) == 2:
                doc["local_equals_dask"] = same_rows(tables["local"], tables["dask"])
        finally:
            if client is not None:
                client.close()
                cluster.close()
    if "loop" not in skip:
        sub = list(trials[:: max(1, len(trials) // args.anchor_combos)][: args.anchor_combos])
        secs, cpu, _ = loop_anchor(panel, sub)
        sub_units = panel.T * panel.N * len(sub)
        doc["runs"]["loop"] = {"wall_s_measured": secs, "cpu_s_measured": cpu,
                               "trials_measured": len(sub),
                               "wall_s": secs * len(trials) / len(sub),
                               "ns_per_bar_asset_trial": secs / sub_units * 1e9,
                               "cpu_ns_per_bar_asset_trial": cpu / sub_units * 1e9}  # fmt: skip
        log(f"loop anchor: {secs:.1f} s wall, {cpu:.1f} s CPU for {len(sub)} trials")
    if args.json:
        print(json.dumps(doc, indent=2, default=float))
    else:
        for name, run in doc["runs"].items():
            print(f"{name:6s} wall {run['wall_s']:8.1f} s  "
                  f"{run['ns_per_bar_asset_trial']:7.1f} ns/bar.asset.trial")  # fmt: skip
    return doc


if __name__ == "__main__":
    main()
