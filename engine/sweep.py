"""Parameter sweeps: factors x parameter grid, chunked under a memory budget, run locally on
numba threads or on a Dask cluster, persisted chunk by chunk so an interrupted sweep resumes.

A *trial* is one (factor, parameters) pair. Trials of one factor and lag share the factor's
signal and run as one batch of K parameter sets through the backtest kernel (the K axis), so
no (T, N, K) array larger than ``memory_budget_bytes`` is ever built: chunks hold at most
``budget // bytes_per_trial`` trials. Each finished chunk becomes a table (one row per trial:
parameters, metrics, return moments and per-block return sums for PBO) handed to a results
sink with ``done() -> set[int]`` and ``write_chunk(i, table)`` (data.results.ResultsStore).
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.defaults import DEFAULTS
from alphaforge.engine.errors import InputError, OptionError
from alphaforge.engine.metrics import compute_metrics
from alphaforge.engine.panel import Panel
from alphaforge.engine.slippage import execution_book
from alphaforge.engine.tradable import executable_mask, mask_weights, universe_values
from alphaforge.engine.types import WeightScheme
from alphaforge.engine.weights import weights_from_signals

F64 = npt.NDArray[np.float64]
SignalFn = Callable[[str, Panel], F64]

DEFAULT_PARAMS: dict[str, Any] = {**DEFAULTS.to_dict(), "quantile": 0.2}
"""Parameters of a trial and their defaults (engine.defaults); a grid overrides any of them."""

N_BLOCKS = 16
"""Contiguous time blocks whose return sums are kept per trial (for CSCV / PBO)."""


class ResultsSink(Protocol):
    """Where finished chunks go (data.results.ResultsStore implements it)."""

    def done(self) -> set[int]: ...

    def write_chunk(self, chunk: int, table: pa.Table) -> Any: ...


@dataclass(frozen=True, slots=True)
class Trial:
    """One factor with one parameter set; ``trial_id`` is its index in the sweep."""

    trial_id: int
    factor: str
    params: Mapping[str, Any]


def expand_trials(factors: Sequence[str], grid: Mapping[str, Sequence[Any]]) -> list[Trial]:
    """Every (factor, grid point) as a Trial, in a stable order.

    Raises:
        OptionError: an unknown parameter name, an empty value list, or a value of the wrong
            type (scheme: a WeightScheme name; rebalance_every >= 1 and lag >= 0: integers;
            the others: finite numbers).
    """
    unknown = sorted(set(grid) - set(DEFAULT_PARAMS))
    if unknown:
        raise OptionError(f"unknown sweep parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    empty = [k for k, v in grid.items() if len(v) == 0]
    if empty or not factors:
        raise OptionError(
            f"sweep needs at least one factor and value per parameter; empty: {empty}"
        )
    for name, values in grid.items():
        for v in values:
            _check_value(name, v)
    names = sorted(grid)
    trials: list[Trial] = []
    for f in factors:
        for combo in itertools.product(*(grid[n] for n in names)):
            trials.append(
                Trial(len(trials), f, {**DEFAULT_PARAMS, **dict(zip(names, combo, strict=True))})
            )
    return trials


_INT_PARAMS = {"rebalance_every": 1, "lag": 0}  # name -> smallest value
_SCHEMES = tuple(s.name.lower() for s in WeightScheme)


def _check_value(name: str, v: Any) -> None:
    """Raise OptionError unless ``v`` has the type (and integer floor) of parameter ``name``."""
    if name == "scheme":
        if not isinstance(v, str) or v.lower() not in _SCHEMES:
            raise OptionError(f"sweep parameter scheme: value {v!r} is not one of {_SCHEMES}")
        return
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        kind = "an integer" if name in _INT_PARAMS else "a number"
        raise OptionError(f"sweep parameter {name}: value {v!r} is not {kind}")
    if not np.isfinite(v):
        raise OptionError(f"sweep parameter {name}: value {v!r} is not a finite number")
    if name in _INT_PARAMS:
        if int(v) != v:
            raise OptionError(f"sweep parameter {name}: value {v!r} is not an integer")
        if v < _INT_PARAMS[name]:
            raise OptionError(f"sweep parameter {name}: value {v!r} is below {_INT_PARAMS[name]}")


def bytes_per_trial(t_len: int, n: int) -> int:
    """Memory one trial occupies in a batch: weights (T, N) + equity/returns (T, 2), float64."""
    return 8 * t_len * (n + 3)


def plan_chunks(trials: Sequence[Trial], t_len: int, n: int, chunk_size: int,
                memory_budget_bytes: int) -> list[list[Trial]]:  # fmt: skip
    """Group trials by (factor, lag) and cut each group into chunks of at most
    min(chunk_size, budget // bytes_per_trial) trials.

    Raises:
        OptionError: a budget too small for even one trial.
    """
    per = bytes_per_trial(t_len, n)
    k_max = min(chunk_size, memory_budget_bytes // per)
    if k_max < 1:
        raise OptionError(f"memory budget {memory_budget_bytes} B is below one trial "
                          f"({per} B for T={t_len}, N={n})")  # fmt: skip
    groups: dict[tuple[str, int], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.factor, int(t.params["lag"])), []).append(t)
    return [g[i : i + k_max] for g in groups.values() for i in range(0, len(g), k_max)]


def _weights_batch(values: F64, trials: Sequence[Trial]) -> F64:
    t_len, n = values.shape
    wk = np.empty((len(trials), t_len, n))
    cache: dict[tuple[Any, ...], F64] = {}
    for j, tr in enumerate(trials):
        p = tr.params
        key = (p["scheme"], float(p["gross"]), float(p["quantile"]))
        if key not in cache:
            cache[key] = weights_from_signals(values, p["scheme"], gross=key[1], quantile=key[2])
        wk[j] = cache[key]
        every = int(p["rebalance_every"])
        if every > 1:
            wk[j][np.arange(t_len) % every != 0] = np.nan
    return wk


def _block_stats(r: F64, n_blocks: int) -> tuple[F64, F64, F64]:
    """Per-block sums, sums of squares and counts of the (T, K) returns -> each (K, S)."""
    edges = np.linspace(0, r.shape[0], n_blocks + 1).astype(np.int64)
    s = np.add.reduceat(r, edges[:-1], axis=0).T
    ss = np.add.reduceat(r * r, edges[:-1], axis=0).T
    cnt = np.broadcast_to(np.diff(edges).astype(np.float64), s.shape).copy()
    return s, ss, cnt


def run_chunk(panel: Panel, trials: Sequence[Trial], signal_fn: SignalFn,
              n_blocks: int = N_BLOCKS, book_walk: bool = False) -> pa.Table:  # fmt: skip
    """Backtest one chunk (one factor, one lag) as a batch; one output row per trial.

    With ``book_walk`` every fill walks the panel's recorded book in force at execution (the
    trials' ``slippage_bps`` is then not used)."""
    factor = trials[0].factor
    lag = int(trials[0].params["lag"])
    # resolve_factor already blanks symbols outside the universe; a custom signal_fn may not
    values = universe_values(np.ascontiguousarray(signal_fn(factor, panel), dtype=np.float64),
                             panel)  # fmt: skip
    wk = mask_weights(_weights_batch(values, trials), executable_mask(panel, lag))
    fund = panel.fields.get("funding_paid")
    res = run_backtest(
        np.moveaxis(wk, 0, -1), close=panel["close"], open=panel.fields.get("open"), lag=lag,
        fee_bps=np.array([float(t.params["fee_bps"]) for t in trials]),
        slippage_bps=np.array([float(t.params["slippage_bps"]) for t in trials]),
        funding=fund, symbols=panel.symbols, slippage=_book_walk(panel, lag) if book_walk else None,
    )  # fmt: skip
    del wk
    met = compute_metrics(res, panel.periods_per_year)
    r = res.returns
    mu = r.mean(axis=0)
    sd = r.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (r - mu) / sd
        skew = np.mean(z**3, axis=0)
        kurt = np.mean(z**4, axis=0)
        sr_bar = mu / r.std(axis=0, ddof=1)
    bs, bss, bn = _block_stats(r, n_blocks)
    cols: dict[str, Any] = {
        "trial_id": [t.trial_id for t in trials], "factor": [t.factor for t in trials],
        "params": [json.dumps(dict(t.params), sort_keys=True) for t in trials],
    }  # fmt: skip
    for name in DEFAULT_PARAMS:
        cols[name] = [t.params[name] for t in trials]
    for name, v in met.items():
        cols[name] = np.asarray(v, dtype=np.float64)
    cols |= {"sr_per_bar": sr_bar, "skew": skew, "kurtosis": kurt,
             "n_obs": [r.shape[0]] * len(trials),
             "block_sum": list(bs), "block_sumsq": list(bss), "block_n": list(bn)}  # fmt: skip
    cols["scheme"] = [str(s) for s in cols["scheme"]]
    return pa.table(cols)


_LOADED: dict[Any, Panel] = {}
_LOAD_LOCK = threading.Lock()


def run_chunk_from(loader: Callable[[], Panel], fingerprint: str, trials: Sequence[Trial],
                   signal_fn: SignalFn, book_walk: bool = False) -> pa.Table:  # fmt: skip
    """:func:`run_chunk` on a panel this process builds itself with ``loader()`` (e.g. a query
    of a shared or object store), once per process, instead of one sent by the driver.

    Raises:
        InputError: the panel built here is not the driver's (its ``fingerprint`` differs:
            the store changed, or the driver's panel was altered after it was loaded).
    """
    with _LOAD_LOCK:  # threads of one worker share one copy
        panel = _LOADED.get(loader)
        if panel is None:
            _LOADED.clear()  # one study's panel per process at a time: memory stays bounded
            panel = loader()
            got = panel.fingerprint()
            if got != fingerprint:
                raise InputError(f"the panel this worker read ({loader!r}) differs from the "
                                 f"driver's (fingerprint {got} != {fingerprint}): the store "
                                 "changed since, or the panel was altered after loading; run "
                                 "with worker_reads=False to send the driver's panel")  # fmt: skip
            _LOADED[loader] = panel
    return run_chunk(panel, trials, signal_fn, book_walk=book_walk)


def loaded_panels() -> int:
    """Panels this process holds for :func:`run_chunk_from` (0 or 1)."""
    return len(_LOADED)


def _book_walk(panel: Panel, lag: int) -> Slippage:
    if panel.book is None:
        raise InputError("book_walk needs a panel with a recorded book (ingest depth recordings "
                         "or Tardis book_snapshot files for its symbols)")  # fmt: skip
    return Slippage("book_walk", book=execution_book(panel.book, lag))


def run_sweep(
    panel: Panel,
    trials: Sequence[Trial],
    signal_fn: SignalFn,
    sink: ResultsSink,
    *,
    chunk_size: int = 64,
    memory_budget_bytes: int = 1 << 30,
    scheduler: str | Any | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    stop_after: int | None = None,
    book_walk: bool = False,
    panel_loader: Callable[[], Panel] | None = None,
) -> dict[str, int]:
    """Run every chunk not yet in ``sink``; locally, or on Dask when ``scheduler`` is given.

    Args:
        panel: the data every trial runs on.
        trials: from expand_trials. signal_fn: (factor, panel) -> (T, N) signal; must be a
            module-level function (it is pickled to Dask workers).
        sink: done() / write_chunk(i, table) (data.results.ResultsStore).
        chunk_size, memory_budget_bytes: see plan_chunks.
        scheduler: a Dask scheduler address ("tcp://host:8786") or a distributed.Client.
        progress: called as progress(chunks_done, chunks_total, message).
        stop_after: stop after this many newly computed chunks (tests of resumption).
        book_walk: fill every trial against the panel's recorded book (``run_chunk``).
        panel_loader: on Dask, a picklable, hashable callable that rebuilds ``panel`` (a store
            query): each worker reads its own copy (:func:`run_chunk_from`, checked by
            fingerprint) and the driver sends none; None scatters ``panel`` to the workers.

    Returns:
        {"chunks": total, "skipped": already stored, "computed": newly computed}.
    """
    chunks = plan_chunks(trials, panel.T, panel.N, chunk_size, memory_budget_bytes)
    done = sink.done()
    todo = [i for i in range(len(chunks)) if i not in done]
    report = progress or (lambda *_: None)
    report(len(done), len(chunks), f"{len(done)} chunk(s) already stored, {len(todo)} to run")
    computed = 0
    if scheduler is None:
        for i in todo:
            if stop_after is not None and computed >= stop_after:
                break
            sink.write_chunk(i, run_chunk(panel, chunks[i], signal_fn, book_walk=book_walk))
            computed += 1
            report(len(done) + computed, len(chunks), f"chunk {i} ({chunks[i][0].factor})")
    else:
        computed = _run_dask(panel, chunks, todo, signal_fn, sink, scheduler, report,
                             len(done), stop_after, book_walk, panel_loader)  # fmt: skip
    return {"chunks": len(chunks), "skipped": len(done), "computed": computed}


def _run_dask(panel: Panel, chunks: list[list[Trial]], todo: Iterable[int], signal_fn: SignalFn,
              sink: ResultsSink, scheduler: Any, report: Callable[[int, int, str], None],
              n_done: int, stop_after: int | None, book_walk: bool = False,
              panel_loader: Callable[[], Panel] | None = None) -> int:  # fmt: skip
    from distributed import Client, as_completed

    own = not hasattr(scheduler, "submit")
    client = Client(scheduler) if own else scheduler  # type: ignore[no-untyped-call]
    try:
        run_key = uuid.uuid4().hex  # task keys unique per run, even across drivers
        if panel_loader is not None:  # each worker reads its own panel from the store
            fp = panel.fingerprint()
            futures = {client.submit(run_chunk_from, panel_loader, fp, chunks[i], signal_fn,
                                     book_walk=book_walk, retries=3,
                                     key=f"alphaforge-chunk-{i}-{run_key}"): i
                       for i in todo}  # fmt: skip
        else:
            panel_f = client.scatter(panel, broadcast=True)
            futures = {client.submit(run_chunk, panel_f, chunks[i], signal_fn,
                                     book_walk=book_walk, retries=3,
                                     key=f"alphaforge-chunk-{i}-{run_key}"): i
                       for i in todo}  # fmt: skip
        computed = 0
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            i = futures[fut]
            sink.write_chunk(i, fut.result())
            computed += 1
            report(n_done + computed, len(chunks), f"chunk {i} on dask")
            if stop_after is not None and computed >= stop_after:
                for other in futures:
                    other.cancel()
                break
        return computed
    finally:
        if own:
            client.close()


def sweep_spec(trials: Sequence[Trial], panel: Panel, extra: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able description of the sweep (its id is a hash of it)."""
    return {"factors": sorted({t.factor for t in trials}), "n_trials": len(trials),
            "params": [dict(t.params) for t in trials[:1]], "T": panel.T, "N": panel.N,
            "symbols": list(panel.symbols), "start_us": int(panel.ts_us[0]) if panel.T else None,
            "end_us": int(panel.ts_us[-1]) if panel.T else None, **extra}  # fmt: skip
