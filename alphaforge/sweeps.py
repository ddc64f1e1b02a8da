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
from alphaforge.engine.panel import Panel
from alphaforge.engine.sweep import expand_trials, run_sweep, sweep_spec
from alphaforge.factors.resolve import resolve_factor
from alphaforge.factors.trials import rank_trials

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
    """A finished (or partial) sweep: its id, chunk counts, ranked trials and PBO."""

    sweep_id: str
    counts: dict[str, int]
    ranked: list[dict[str, Any]]
    pbo: float
    n_trials: int
    results_dir: str


def run_sweep_study(panel: Panel, factors: Sequence[str], grid: dict[str, list[Any]],
                    results_root: str, *, scheduler: Any = None, chunk_size: int = 64,
                    memory_budget_bytes: int = 1 << 30, progress: Any = None,
                    stop_after: int | None = None) -> SweepOutcome:  # fmt: skip
    """Run (or resume) a sweep, store it under results_root, rank trials by Deflated Sharpe.

    The sweep id is a hash of the trials and the data window, so rerunning the same command
    resumes it. DSR uses the sweep's true trial count and the variance of the trials'
    per-bar Sharpe ratios; PBO comes from CSCV over the stored per-block return sums.
    """

    trials = expand_trials(factors, grid)
    # the chunking is part of the identity: chunk i of another plan holds other trials
    spec = sweep_spec(trials, panel, {"grid": grid, "source": panel.meta.get("source"),
                                      "chunk_size": chunk_size,
                                      "memory_budget_bytes": memory_budget_bytes})  # fmt: skip
    sweep_id = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]
    store = ResultsStore(results_root, sweep_id)
    store.write_spec(spec)
    sink = _ProvenanceSink(store, {"sweep_id": sweep_id, "source": "sweep",
                                   "data_source": str(panel.meta.get("source"))})  # fmt: skip
    counts = run_sweep(panel, trials, factor_signal, sink, chunk_size=chunk_size,
                       memory_budget_bytes=memory_budget_bytes, scheduler=scheduler,
                       progress=progress, stop_after=stop_after)  # fmt: skip

    ranked, pbo_value = rank_trials(store.read(), len(trials))
    return SweepOutcome(sweep_id, counts, ranked, pbo_value, len(trials), str(store.dir))
