"""Composition root helpers: build Panels from the store or the synthetic market.

This module (with engine/cli.py) is the only place that wires data/ to the engine: data/
hands over pyarrow Tables, this module pivots them into Panels (bars indexed by their close
time, see design.md) and attaches funding and order-book levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from alphaforge.data import schemas
from alphaforge.data.store import Store
from alphaforge.data.store_views import panel_table_from_klines
from alphaforge.data.synthetic import SyntheticMarket, generate_market
from alphaforge.engine.book import book_levels_at
from alphaforge.engine.errors import PanelError
from alphaforge.engine.panel import BookLevels, Panel

F64 = npt.NDArray[np.float64]

DEFAULT_SYNTHETIC: dict[str, Any] = {
    "n_symbols": 20,
    "n_bars": 4_000,
    "interval": "1m",
    "seed": 7,
    "planted_ic": 0.05,
    "book_levels": 0,
}
"""The embedded default market used when no store is given (always labelled synthetic)."""


@dataclass(frozen=True, slots=True)
class SyntheticPanel:
    """A Panel built from the synthetic market, with its planted factor.

    Attributes:
        panel: bars indexed by close time; fields as real klines (+ funding_rate for perps).
        planted: (T, N) float64 planted signal aligned to panel rows (NaN on the last row).
        market: the raw SyntheticMarket tables (klines, funding, books) and meta.
    """

    panel: Panel
    planted: F64
    market: SyntheticMarket


def _parse_time(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(np.datetime64(text, "us").astype(np.int64))
    except ValueError as exc:
        raise PanelError(f"cannot parse time {text!r}: {exc}") from None


def synthetic_panel(**kwargs: Any) -> SyntheticPanel:
    """The seeded synthetic market as a Panel (kwargs go to ``data.synthetic.generate_market``)."""
    params = {**DEFAULT_SYNTHETIC, **kwargs}
    market = generate_market(**params)
    step = schemas.interval_us(str(params["interval"]))
    table = panel_table_from_klines(market.klines, market.funding, step)
    panel = Panel.from_arrow(table, interval_us=step, meta={**market.meta, "source": "synthetic"})
    if market.books.num_rows:
        panel = panel.with_book(book_levels_at(market.books, panel.ts_us, panel.symbols))
    planted = _pivot(market.planted, "planted_signal", panel)
    return SyntheticPanel(panel=panel, planted=planted, market=market)


def load_panel(
    store: str | None,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    interval: str = "1m",
    market: str = "usdm",
    synthetic_kwargs: dict[str, Any] | None = None,
) -> Panel:
    """A Panel from the store at ``store``, or the synthetic market when ``store`` is None.

    Args:
        store: store root directory, or None for the embedded synthetic market.
        symbols: symbols to keep (None = all).
        start, end: ISO times (UTC) bounding the availability time, end exclusive.
        interval: kline interval ("1m", "1h", ...).
        market: "usdm" or "spot".
        synthetic_kwargs: overrides of DEFAULT_SYNTHETIC when no store is given.

    Raises:
        PanelError: an empty selection, or unparsable times.
    """
    start_us, end_us = _parse_time(start), _parse_time(end)
    if store is None:
        kw = dict(synthetic_kwargs or {})
        kw.setdefault("interval", interval)
        kw.setdefault("market", market)
        panel = synthetic_panel(**kw).panel
        panel = panel.slice_time(start_us, end_us)
        return panel.select(list(symbols)) if symbols else panel
    table = Store(store).kline_panel_table(
        list(symbols) if symbols else None, interval=interval, market=market,
        start_us=start_us, end_us=end_us,
    )  # fmt: skip
    if table.num_rows == 0:
        raise PanelError(
            f"store {store!r} has no klines_{interval} for market={market} symbols={symbols} "
            f"in [{start}, {end}); run `alphaforge pull` first or drop --store"
        )
    step = schemas.interval_us(interval)
    panel = Panel.from_arrow(table, interval_us=step, meta={"source": f"store:{store}"})
    panel = panel.select(list(symbols)) if symbols else panel
    from alphaforge.data.universe import listings_from_store, tradable_mask

    listings = listings_from_store(Store(store), f"klines_{interval}", market=market,
                                   symbols=panel.symbols, interval_us=step)  # fmt: skip
    mask = tradable_mask(panel.ts_us, panel.symbols, listings)
    return panel.with_fields(tradable=mask.astype(np.float64))


def _pivot(table: pa.Table, field: str, panel: Panel) -> F64:
    ts = np.asarray(table.column("ts").cast(schemas.TS).cast(pa.int64()).to_numpy(), np.int64)
    sym = np.asarray(table.column("symbol").to_numpy(zero_copy_only=False)).astype(str)
    val = np.asarray(table.column(field).to_numpy(zero_copy_only=False), dtype=np.float64)
    out = np.full((panel.T, panel.N), np.nan)
    col = {s: i for i, s in enumerate(panel.symbols)}
    rows = np.searchsorted(panel.ts_us, ts)
    ok = (rows < panel.T) & np.isin(sym, list(col))
    ok[ok] = panel.ts_us[rows[ok]] == ts[ok]
    cols = np.array([col.get(s, -1) for s in sym], dtype=np.int64)
    out[rows[ok], cols[ok]] = val[ok]
    return out


@dataclass(frozen=True, slots=True)
class FactorBacktest:
    """A factor's long-short backtest: the result, its metrics and what was run.

    Attributes:
        factor: library name or expression text. expr: canonical expression (None for arrays).
        weights: (T, N) target weights. result: the engine's BacktestResult.
        metrics: compute_metrics(result, periods_per_year). settings: every option used.
    """

    factor: str
    expr: str | None
    weights: F64
    result: Any
    metrics: dict[str, Any]
    settings: dict[str, Any]


def _executable(panel: Panel, lag: int) -> npt.NDArray[np.bool_]:
    """(T, N): may row t's decision hold a position? Its fill at row t + lag needs the symbol
    listed (the ``tradable`` field from data.universe, when present) and trading (a price),
    and so does row t + lag + 1, so that a position can still be closed before a symbol stops
    trading (delisting schedules are announced ahead). Rows without a future row are False."""
    px = panel.fields.get("open") if lag >= 1 else panel["close"]
    px = panel["close"] if px is None else px
    live = np.isfinite(px) & (panel["close"] > 0)
    if "tradable" in panel:
        live &= panel["tradable"] > 0
    ok = np.zeros((panel.T, panel.N), dtype=bool)
    if lag + 1 < panel.T:
        ok[: panel.T - lag - 1] = live[lag:-1] & live[lag + 1 :]
    return ok


def run_factor_backtest(
    panel: Panel,
    factor: str | F64,
    *,
    scheme: str = "rank",
    gross: float = 1.0,
    quantile: float = 0.2,
    lag: int = 1,
    fee_bps: float = 4.0,
    slippage: Any | None = None,
    slippage_bps: float = 1.0,
    use_funding: bool = True,
    record_trades: bool = True,
    rebalance_every: int = 1,
    init_cash: float = 1.0,
) -> FactorBacktest:
    """Evaluate ``factor`` on ``panel``, turn it into weights and backtest it.

    Execution follows design.md: a decision at row t fills at the open of row t + lag.
    Funding (when the panel has ``funding_rate``) is charged on held positions. With
    ``rebalance_every`` = k > 1, targets are set on every k-th row only and positions are held
    in between (NaN targets).
    """
    from alphaforge.engine.backtest import run_backtest
    from alphaforge.engine.metrics import compute_metrics
    from alphaforge.engine.weights import weights_from_signals
    from alphaforge.factors.score import resolve_factor

    name, expr, values = resolve_factor(factor, panel)
    weights = weights_from_signals(values, scheme, gross=gross, quantile=quantile)
    if rebalance_every > 1:
        weights[np.arange(panel.T) % rebalance_every != 0] = np.nan
    executable = _executable(panel, lag)
    held_in = np.zeros_like(executable)
    held_in[1:] = ~executable[:-1]
    weights[~executable & ~held_in] = 0.0  # flat before the symbol stops trading
    weights[~executable & held_in] = np.nan  # not trading: no order (nothing held)
    funding = panel["funding_rate"] if use_funding and "funding_rate" in panel else None
    result = run_backtest(
        weights, close=panel["close"], open=panel.fields.get("open"),
        lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps, slippage=slippage,
        funding=funding, record_trades=record_trades, symbols=panel.symbols, init_cash=init_cash,
    )  # fmt: skip
    metrics = compute_metrics(result, panel.periods_per_year)
    settings = {
        "scheme": scheme, "gross": gross, "quantile": quantile, "lag": lag,
        "fee_bps": fee_bps, "slippage_bps": slippage_bps if slippage is None else None,
        "slippage_model": result.meta["slippage"], "funding": funding is not None,
        "rebalance_every": rebalance_every,
    }  # fmt: skip
    return FactorBacktest(name, expr, weights, result, metrics, settings)


def execution_book(book: BookLevels, lag: int) -> BookLevels:
    """The book in force when row s's fill happens: the snapshot of decision row s - lag.

    Args:
        book: (T, N, L) book sampled at each row's time. lag: decision-to-fill rows (>= 1).

    Returns:
        (T, N, L) levels indexed by execution row (NaN for the first ``lag`` rows).
    """

    def shift(a: F64) -> F64:
        out = np.full_like(a, np.nan)
        if lag == 0:
            out[:] = a
        elif a.shape[0] > lag:
            out[lag:] = a[:-lag]
        return out

    return BookLevels(*(shift(a) for a in (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty)))


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What ``run_demo`` produced: the report paths and a JSON-able summary."""

    report_html: str
    summary: dict[str, Any]


def _orders_from_trades(trades: np.ndarray, panel: Panel) -> dict[str, np.ndarray]:
    """Backtest fills -> the intended orders table of engine.gap (decision time and mid)."""
    d = trades["decision_row"]
    c = trades["col"]
    book = panel.book
    if book is not None:
        mid = 0.5 * (book.bid_px[d, c, 0] + book.ask_px[d, c, 0])
    else:
        mid = panel["close"][d, c]
    return {
        "order_id": np.arange(trades.size), "ts_us": panel.ts_us[d],
        "symbol": np.asarray(panel.symbols)[c], "side": np.sign(trades["qty"]),
        "qty": np.abs(trades["qty"]) + np.abs(trades["unfilled_qty"]), "decision_mid": mid,
        "bt_fill_px": trades["fill_px"], "bt_fee": trades["fee"],
    }  # fmt: skip


def _best_library_factor(
    panel: Panel, train_rows: int, progress: Any
) -> tuple[str, float, list[tuple[str, dict[str, float]]]]:
    """The library factor whose 1-bar RankIC has the largest |t-stat| on the training rows
    (factors.score.rank_factors); a negative IC flips the factor's sign in the backtest."""
    from alphaforge.factors.library import list_factors
    from alphaforge.factors.score import rank_factors

    train = panel.take_rows(slice(0, train_rows))
    facs = {f.name: f.expr for f in list_factors(panel=panel)}
    progress(f"   scoring {len(facs)} library factors on {train_rows} training bars")
    ranked = rank_factors(facs, train, horizon=1)
    name, mean_ic, _t = ranked[0]
    return name, float(mean_ic), [(n, {"rank_ic": m, "t_stat": t}) for n, m, t in ranked]


def run_demo(out_dir: str = "alphaforge-out", *, n_symbols: int = 12, n_bars: int = 3000,
             seed: int = 7, progress: Any = print) -> DemoResult:  # fmt: skip
    """validate -> score the library -> offline proposals -> backtest the best with book
    slippage -> paper-live gap -> report.html, on the embedded synthetic market.

    Args:
        out_dir: where report.html, report.json and the PNGs go.
        n_symbols, n_bars, seed: the synthetic market (labelled synthetic everywhere).
        progress: called with one line of text per step.
    """
    from alphaforge.data.validate import validate_table
    from alphaforge.engine.backtest import Slippage
    from alphaforge.engine.gap import Quotes, analyze_gap
    from alphaforge.engine.paper_live import LatencyModel, simulate_fills
    from alphaforge.engine.report import ReportInputs, build_report
    from alphaforge.factors.ic import cs_ic
    from alphaforge.factors.returns import forward_returns
    from alphaforge.factors.score import score_factor

    progress(f"1/6 generating the SYNTHETIC market: {n_symbols} symbols x {n_bars} 1m bars")
    sp = synthetic_panel(n_symbols=n_symbols, n_bars=n_bars, seed=seed, book_levels=20)
    panel = sp.panel
    progress("2/6 validating klines")
    quality = validate_table(sp.market.klines, "klines_1m", source="synthetic")
    train_rows = int(panel.T * 0.7)
    progress("3/6 scoring the factor library (train split)")
    name, ic, ranked = _best_library_factor(panel, train_rows, progress)
    expr = name if ic >= 0 else _negated(_expr_of(name))
    progress("4/6 offline factor proposals (seeded generator, same gates as an LLM's)")
    proposals = _offline_proposals(panel, train_rows, out_dir, seed, progress)
    progress(f"   {proposals['counts']}; accepted {proposals['accepted']}")
    test = panel.take_rows(slice(train_rows, panel.T))
    assert test.book is not None
    progress(f"5/6 backtesting {expr!r} on the test split with book-walk slippage")
    bt = run_factor_backtest(
        test,
        expr,
        rebalance_every=15,
        init_cash=100_000.0,
        fee_bps=4.0,
        slippage=Slippage("book_walk", book=execution_book(test.book, 1)),
    )
    trades = bt.result.trades
    orders = _orders_from_trades(trades, test)
    # live: a 5 bps fee tier (the backtest assumed 4) and 1 s + Exp(20 s) order latency
    fills = simulate_fills(orders, test.ts_us, test.symbols, test.book, fee_bps=5.0,
                           latency=LatencyModel(1_000_000, 20_000_000, seed))  # fmt: skip
    bid0, ask0 = test.book.bid_px[:, :, 0], test.book.ask_px[:, :, 0]
    quotes = Quotes(np.repeat(test.ts_us, test.N), np.tile(np.asarray(test.symbols), test.T),
                    bid0.ravel(), ask0.ravel())  # fmt: skip
    gap = analyze_gap(orders, fills, quotes=quotes, window_us=600_000_000,
                      equity=bt.result.init_cash, allow_unmatched=False)  # fmt: skip
    progress(f"6/6 paper-live gap: {gap.gap_bps['total']:.2f} bps, driven by {gap.driver}")
    score = score_factor(expr, test, horizons=(1, 5, 15, 60), redundancy=False)
    fwd = forward_returns(test, (1,), lag=1)[0]
    values = np.asarray(_evaluate(expr, test))
    with np.errstate(divide="ignore", invalid="ignore"):
        slip_bps = trades["slippage"] / (np.abs(trades["qty"]) * trades["ref_px"]) * 1e4
    inputs = ReportInputs(
        title=f"alphaforge demo: {expr} (SYNTHETIC market, seed {seed})",
        ts_us=test.ts_us, equity=bt.result.equity, periods_per_year=test.periods_per_year,
        metrics=bt.metrics, turnover=bt.result.turnover_series,
        costs={"fees": bt.result.fees, "slippage": bt.result.slippage,
               "funding": bt.result.funding},
        slippage_bps=slip_bps, ic_series=cs_ic(values, fwd), ic_decay=score.decay,
        quantile_returns=list(score.quantile_returns.get(1, ())),
        gap_components={k: gap.gap_bps[k] for k in ("delay", "half_spread", "impact", "fees",
                                                    "opportunity")},
        quality_html=quality.to_html(),
        sections=[("Offline proposals (train split)", {"trials": sum(proposals["counts"].values()),
                   **proposals["counts"], "best accepted": proposals["best"]}),
                  ("Top library factors by |t| of 1-bar RankIC (train): mean RankIC",
                   {n: v["rank_ic"] for n, v in ranked[:10]}),
                  ("Gap (bps of notional): live minus backtest", gap.gap_bps),
                  ("Slippage model calibration: RMSE of predicted live cost (bps)",
                   {k: v["rmse_bps"] for k, v in gap.calibration.items() if isinstance(v, dict)}
                   | {"best": gap.calibration.get("best")})],
        notes=["SYNTHETIC market: generated by data.synthetic, not real exchange data.",
               "Paper-live fills: book walk at decision time + seeded latency (1 s + Exp(20 s)),"
               " 5 bps live fee tier vs 4 bps assumed by the backtest."],
    )  # fmt: skip
    paths = build_report(inputs, out_dir)
    summary = {"synthetic": True, "best_factor": expr, "train_rank_ic": ic,
               "metrics": bt.metrics, "gap_bps": dict(gap.gap_bps), "gap_driver": gap.driver,
               "quality": quality.worst_severity, "proposals": proposals,
               "report": str(paths.html)}  # fmt: skip
    return DemoResult(str(paths.html), summary)


def _negated(expr: str) -> str:
    """Canonical text of -expr, without a double negation."""
    from alphaforge.factors.expr import Unary, parse

    node = parse(expr)
    if isinstance(node, Unary) and node.op == "-":
        return str(node.arg)
    return str(parse(f"-({expr})"))


def _expr_of(name: str) -> str:
    from alphaforge.factors.library import LIBRARY

    return LIBRARY[name].expr if name in LIBRARY else name


def _evaluate(expr: str, panel: Panel) -> F64:
    from alphaforge.factors.score import resolve_factor

    return resolve_factor(expr, panel)[2]


def _offline_proposals(panel: Panel, train_rows: int, out_dir: str, seed: int,
                       progress: Any) -> dict[str, Any]:  # fmt: skip
    """A small offline proposal study on the training rows (trials land in a ledger in
    ``out_dir``); returns its counts and the best accepted expression, if any."""
    from pathlib import Path

    from alphaforge.factors.ledger import Ledger
    from alphaforge.factors.propose import Gate, Study, StudyConfig

    ledger_path = Path(out_dir) / "ledger.sqlite"
    ledger_path.unlink(missing_ok=True)
    train = panel.take_rows(slice(0, train_rows))
    cfg = StudyConfig(study="demo", rounds=2, per_round=8, seed=seed, library_check=False,
                      rebalance_every=15, gate=Gate(min_abs_t=3.0, min_sharpe=0.0))  # fmt: skip
    res = Study(train, cfg, Ledger(ledger_path), None, progress=lambda m: progress("   " + m)).run()
    best = max(res.accepted, key=lambda a: abs(a["train"]["t_stat"]), default=None)
    return {"counts": res.counts, "accepted": len(res.accepted), "ledger": str(ledger_path),
            "best": best["expression"] if best else None}  # fmt: skip


def factor_signal(factor: str, panel: Panel) -> F64:
    """(T, N) values of a library factor or expression (module-level: picklable for Dask)."""
    from alphaforge.factors.score import resolve_factor

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
    import hashlib
    import json

    from alphaforge.data.results import ResultsStore
    from alphaforge.engine.sweep import expand_trials, run_sweep, sweep_spec

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
    from alphaforge.factors.trials import rank_trials

    ranked, pbo_value = rank_trials(store.read(), len(trials))
    return SweepOutcome(sweep_id, counts, ranked, pbo_value, len(trials), str(store.dir))
