"""``alphaforge demo``: the offline end-to-end run on the embedded synthetic market."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.backtests import orders_table, run_factor_backtest
from alphaforge.data.validate import validate_table
from alphaforge.engine.backtest import Slippage
from alphaforge.engine.gap import Quotes, analyze_gap
from alphaforge.engine.panel import Panel
from alphaforge.engine.paper_live import LatencyModel, simulate_fills
from alphaforge.engine.report import ReportInputs, build_report
from alphaforge.engine.slippage import execution_book
from alphaforge.factors.expr import Unary, parse
from alphaforge.factors.ic import cs_ic
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.library import LIBRARY, list_factors
from alphaforge.factors.propose import Gate, Study, StudyConfig
from alphaforge.factors.resolve import resolve_factor
from alphaforge.factors.returns import forward_returns
from alphaforge.factors.score import rank_factors, score_factor
from alphaforge.panels import synthetic_panel

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What ``run_demo`` produced: the report paths and a JSON-able summary."""

    report_html: str
    summary: dict[str, Any]


def _best_library_factor(
    panel: Panel, train_rows: int, progress: Any
) -> tuple[str, float, list[tuple[str, dict[str, float]]]]:
    """The library factor whose 1-bar RankIC has the largest |t-stat| on the training rows
    (factors.score.rank_factors); a negative IC flips the factor's sign in the backtest."""

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
    orders = orders_table(bt, test)
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

    node = parse(expr)
    if isinstance(node, Unary) and node.op == "-":
        return str(node.arg)
    return str(parse(f"-({expr})"))


def _expr_of(name: str) -> str:

    return LIBRARY[name].expr if name in LIBRARY else name


def _evaluate(expr: str, panel: Panel) -> F64:

    return resolve_factor(expr, panel)[2]


def _offline_proposals(panel: Panel, train_rows: int, out_dir: str, seed: int,
                       progress: Any) -> dict[str, Any]:  # fmt: skip
    """A small offline proposal study on the training rows (trials land in a ledger in
    ``out_dir``); returns its counts and the best accepted expression, if any."""

    ledger_path = Path(out_dir) / "ledger.sqlite"
    ledger_path.unlink(missing_ok=True)
    train = panel.take_rows(slice(0, train_rows))
    cfg = StudyConfig(study="demo", rounds=2, per_round=8, seed=seed, library_check=False,
                      rebalance_every=15, gate=Gate(min_abs_t=3.0, min_sharpe=0.0))  # fmt: skip
    res = Study(train, cfg, Ledger(ledger_path), None, progress=lambda m: progress("   " + m)).run()
    best = max(res.accepted, key=lambda a: abs(a["train"]["t_stat"]), default=None)
    return {"counts": res.counts, "accepted": len(res.accepted), "ledger": str(ledger_path),
            "best": best["expression"] if best else None}  # fmt: skip
