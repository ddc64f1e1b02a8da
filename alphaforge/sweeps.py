"""Sweeps of factors x parameter grids, stored and ranked (the sweep runner's wiring)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from alphaforge.data.results import ResultsStore
from alphaforge.engine.errors import InputError, OptionError
from alphaforge.engine.panel import Panel
from alphaforge.engine.sweep import expand_trials, run_sweep, sweep_spec
from alphaforge.engine.timing import timing_warnings
from alphaforge.factors.dsr import expected_max_sharpe
from alphaforge.factors.expr import parse
from alphaforge.factors.library import LIBRARY
from alphaforge.factors.registry import Registry
from alphaforge.factors.resolve import check_factor_text, resolve_factor
from alphaforge.factors.trials import rank_trials, walk_forward_pbo
from alphaforge.panels import store_query

F64 = npt.NDArray[np.float64]


def factor_signal(factor: str, panel: Panel) -> F64:
    """(T, N) values of a library factor or expression (module-level: picklable for Dask)."""

    return resolve_factor(factor, panel)[2]


class _ProvenanceSink:
    """Adds the trial ledger's provenance columns to every chunk before storing it."""

    def __init__(self, store: Any, provenance: dict[str, Any]) -> None:
        self.store = store
        self.provenance = provenance

    def done(self) -> set[int]:
        return set(self.store.done())

    def write_chunk(self, chunk: int, table: pa.Table) -> Any:
        for k, v in self.provenance.items():
            table = table.append_column(k, pa.array([v] * table.num_rows))
        return self.store.write_chunk(chunk, table)


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """A finished (or partial) sweep: its id, chunk counts, ranked trials, PBO by CSCV and on
    expanding walk-forward splits of the same blocks, the study-wide trial count on this data,
    the Sharpe needed to beat luck at that count and timing warnings."""

    sweep_id: str
    counts: dict[str, int]
    ranked: list[dict[str, Any]]
    pbo: float
    n_trials: int
    results_dir: str
    trials_on_data: int = 0
    sr_needed_annual: float = float("nan")
    warnings: tuple[str, ...] = ()
    pbo_walkforward: float = float("nan")
    transport: str = "local"
    """How the workers got the panel: ``local`` (no cluster), ``worker_reads`` (each Dask
    worker read it from the store itself) or ``scatter`` (sent by the driver)."""


def run_sweep_study(panel: Panel, factors: Sequence[str], grid: dict[str, list[Any]],
                    results_root: str, *, scheduler: Any = None, chunk_size: int = 64,
                    memory_budget_bytes: int = 1 << 30, progress: Any = None,
                    stop_after: int | None = None, registry: Registry | None = None,
                    slippage: str | None = None,
                    worker_reads: bool | None = None) -> SweepOutcome:  # fmt: skip
    """Run (or resume) a sweep, store it under results_root, rank trials by Deflated Sharpe.

    The sweep id is a hash of the trials and the data window, so rerunning the same command
    resumes it. DSR uses the true trial count, the variance of the trials' per-bar Sharpe
    ratios; PBO comes from CSCV over the stored per-block return sums. With a ``registry``
    every trial is recorded there and the count is the study-wide one: the distinct trials
    on this data over every sweep, score, backtest and proposal (else the sweep's own).

    On a Dask ``scheduler``, a panel loaded from a store (``load_panel``, unchanged since) is
    read by each worker from the store itself (``worker_reads``; None = whenever possible);
    otherwise the driver scatters it to every worker.
    """

    if slippage not in (None, "fixed_bps", "book_walk"):
        raise OptionError(f"sweep slippage must be fixed_bps or book_walk; got {slippage!r}")
    book_walk = slippage == "book_walk"
    if book_walk and panel.book is None:
        raise InputError("book_walk needs order-book data for the panel's symbols: ingest depth "
                         "recordings (depth_updates) or Tardis book_snapshot files")  # fmt: skip
    for f in factors:  # every factor checked before any chunk is run or stored
        check_factor_text(f, panel)
    trials = expand_trials(factors, grid)
    # the chunking is part of the identity: chunk i of another plan holds other trials
    spec = sweep_spec(trials, panel, {"grid": grid, "source": panel.meta.get("source"),
                                      "chunk_size": chunk_size, "book_walk": book_walk,
                                      "memory_budget_bytes": memory_budget_bytes})  # fmt: skip
    sweep_id = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]
    store = ResultsStore(results_root, sweep_id)
    store.write_spec(spec)
    sink = _ProvenanceSink(store, {"sweep_id": sweep_id, "source": "sweep",
                                   "data_source": str(panel.meta.get("source"))})  # fmt: skip
    query = store_query(panel) if scheduler is not None and worker_reads is not False else None
    if worker_reads and query is None:
        raise OptionError("worker_reads needs a Dask scheduler and a panel loaded from a "
                          "store and unchanged since (for a selection or a slice, load "
                          "it that way)")  # fmt: skip
    transport = "local" if scheduler is None else "worker_reads" if query else "scatter"
    counts = run_sweep(panel, trials, factor_signal, sink, chunk_size=chunk_size,
                       memory_budget_bytes=memory_budget_bytes, scheduler=scheduler,
                       progress=progress, stop_after=stop_after, book_walk=book_walk,
                       panel_loader=query)  # fmt: skip

    table = store.read()
    n_count = len(trials)
    if registry is not None and table.num_rows:
        for f, params, sr, n_obs in zip(*(table.column(c).to_pylist() for c in
                                          ("factor", "params", "sr_per_bar", "n_obs")),
                                        strict=True):  # fmt: skip
            registry.record_trial(panel, "sweep", f"{canonical_factor(f)}|{params}", name=f,
                                  sr_per_bar=float("nan") if sr is None else float(sr),
                                  n_obs=int(n_obs))  # fmt: skip
        n_count = max(registry.trial_count(panel).n_trials, len(trials))
    ranked, pbo_value = rank_trials(table, n_count)
    sr_needed = float("nan")
    finite = [r["sr_per_bar"] for r in ranked if r["sr_per_bar"] is not None
              and np.isfinite(r["sr_per_bar"])]  # fmt: skip
    if len(finite) >= 2:
        sr0 = expected_max_sharpe(max(n_count, 1), float(np.var(finite, ddof=1)))
        sr_needed = sr0 * float(np.sqrt(panel.periods_per_year))
    lags = sorted({int(t.params["lag"]) for t in trials})
    warns = sorted({w for lag in lags for w in timing_warnings(lag, "open" in panel)})
    return SweepOutcome(sweep_id, counts, ranked, pbo_value, len(trials), str(store.dir),
                        n_count, sr_needed, tuple(warns), walk_forward_pbo(table),
                        transport)  # fmt: skip


def canonical_factor(factor: str) -> str:
    """The canonical expression of a library name or expression text."""
    return str(parse(LIBRARY[factor].expr if factor in LIBRARY else factor))
