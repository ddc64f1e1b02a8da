"""``alphaforge demo``: the whole pipeline, offline, on a synthetic market with known truths.

The market (``data.synthetic_demo``) plants one real factor (``taker_imbalance_20``, worth
trading hourly after costs) and one mirage (bid-ask bounce, which makes the 1-bar reversal look
strong at trade prices only). The demo then does what a researcher would, and says what it
found against what was planted:

1. generate the market (labelled SYNTHETIC everywhere) and validate the data it will use;
2. rank the whole library on the train split (7 weeks of 5-minute bars) with hourly
   rebalancing and realistic costs, every factor a trial in a fresh research ledger;
3. run the offline proposal generator through the same gates;
4. show the bounce: ``rev_1`` traded every bar, gross at trade prices vs net with fills walking
   the book;
5. show a leaky candidate (a function that reads the next bar) caught by the lookahead check;
6. pick the factor with the best net Sharpe on the train split and look at the holdout once:
   a backtest on the test split (3 weeks) with book-walk fills, paper-live fills after a latency
   at a different fee tier, the gap decomposed, and the report written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge import warmup
from alphaforge.backtests import run_factor_backtest
from alphaforge.data.validate import validate_table
from alphaforge.engine.defaults import Execution
from alphaforge.engine.gap import Quotes, analyze_gap
from alphaforge.engine.panel import Panel
from alphaforge.engine.paper_live import LatencyModel, simulate_fills
from alphaforge.factor_report import backtest_report
from alphaforge.factors.errors import LookaheadError
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.propose import Gate, Study, StudyConfig
from alphaforge.factors.rank_library import rank_library
from alphaforge.factors.registry import Registry
from alphaforge.factors.score import score_factor
from alphaforge.orders_io import orders_table
from alphaforge.panels import demo_panel
from alphaforge.report_quality import panel_quality, quality_html

HOURLY = 12
"""Bars between rebalances of the selected factor (5-minute bars: hourly)."""
TRAIN_SHARE = 0.7
LIVE_FEE_BPS = 5.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What ``run_demo`` produced: the report paths and a JSON-able summary."""

    report_html: str
    summary: dict[str, Any]


def run_demo(out_dir: str = "alphaforge-out", *, n_symbols: int = 20, weeks: int = 10,
             seed: int = 7, progress: Callable[[str], None] = print) -> DemoResult:  # fmt: skip
    """The demo (module docstring). ``progress`` gets one line per step.

    Returns:
        DemoResult with the report path and a summary: what was planted, what was found, the
        train ranking, the bounce's gross vs net, the leak caught, the test backtest, the gap.
    """
    helper = warmup.start("demo")  # compiles the later steps' kernels on another core
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ledger = out / "ledger.sqlite"
    ledger.unlink(missing_ok=True)  # the demo's own trials only
    registry = Registry(ledger)
    sp = demo_panel(n_symbols=n_symbols, weeks=weeks, seed=seed)
    panel, meta = sp.panel, sp.market.meta
    cut = int(panel.T * TRAIN_SHARE)
    train, test = panel.take_rows(slice(0, cut)), panel.take_rows(slice(cut, None))
    progress(f"1/6 SYNTHETIC market: {panel.N} symbols x {weeks} weeks of 5m bars "
             f"({panel.T:,} bars); planted: {meta['demo']['planted_factor']} (real) and "
             "bid-ask bounce (a mirage)")  # fmt: skip
    quality = _quality(sp.market.klines, test)
    progress(f"   data used (test split): {quality['status']}")
    hourly = Execution(rebalance_every=HOURLY)
    if helper is not None:
        warmup.window_families()  # while the helper compiles the scoring kernels (warmup.py)
    ranking = rank_library(train, horizon=HOURLY, execution=hourly, registry=registry,
                           progress=lambda d, n, _m: progress(f"   ranked {d}/{n}"))  # fmt: skip
    best = max(ranking.rows, key=lambda r: r["sharpe"] if np.isfinite(r["sharpe"]) else -np.inf)
    progress(f"2/6 library ranked on the train split ({train.T:,} bars, hourly rebalance, "
             f"4 bps fee + 1 bps slippage): best net Sharpe {best['name']} "
             f"{best['sharpe']:.2f}; {ranking.trials['n_trials']} trials on this data")  # fmt: skip
    proposals = _offline_proposals(train, ledger, seed, progress)
    progress(f"3/6 offline proposals: {proposals['counts']}")
    bounce = _bounce(train, registry)
    progress(f"4/6 bounce: rev_1 every bar, Sharpe {bounce['gross_sharpe']:.1f} gross at trade "
             f"prices -> {bounce['net_sharpe']:.1f} net with book-walk fills")  # fmt: skip
    leak = _leak(train)
    progress(f"5/6 leaky candidate: {leak['verdict']}")
    found = best["name"] == meta["demo"]["planted_factor"]
    run, gap, look = _test_split(panel, cut, test, best["name"], registry)
    progress(f"6/6 test split ({test.T:,} bars, looked at once): {best['name']} Sharpe "
             f"{run.metrics['sharpe']:.2f}, return {run.metrics['total_return']:.2%}; "
             f"paper-live gap {gap.gap_bps['total']:.2f} bps (driver: {gap.driver})")  # fmt: skip
    summary = {
        "synthetic": True, "planted": meta["demo"], "found_planted": found,
        "selected": best["name"], "selection": "best net Sharpe on the train split",
        "train": {k: best[k] for k in ("rank_ic", "t_stat", "sharpe", "gross_sharpe", "dsr")},
        "trials": ranking.trials, "holdout": look, "test_metrics": run.metrics,
        "metrics": run.metrics, "bounce": bounce, "leak": leak, "proposals": proposals,
        "gap_bps": dict(gap.gap_bps), "gap_driver": gap.driver, "quality": quality["status"],
        "execution": run.settings["execution"],
    }  # fmt: skip
    paths = backtest_report(
        run, test, out, gap=gap, quality=quality["html"],
        title=f"alphaforge demo: {best['name']} on the test split (SYNTHETIC market, seed {seed})",
        notes=[f"Planted: {meta['demo']['planted']}.", f"Also planted: {meta['demo']['bounce']}.",
               f"Selected by {summary['selection']}: {best['name']} "
               f"({'the planted factor' if found else 'NOT the planted factor'}), among "
               f"{ranking.trials['n_trials']} trials on the train split (DSR there "
               f"{best['dsr']:.3f}: the deflation reads the wide spread of the trials' Sharpe "
               "ratios, mostly costs sinking high-turnover factors, as luck, so it is "
               "conservative here). The figures below are the one look at the test split.",
               f"Paper-live fills: the book after a 1 s + Exp(20 s) latency, {LIVE_FEE_BPS:g} bps "
               "live fee tier vs 4 bps assumed by the backtest."],
        sections=[("Train split: library ranked by |t| of RankIC (top 12; net Sharpe at hourly "
                   "rebalance)", {r["name"]: f"RankIC {r['rank_ic']:.4f}, t {r['t_stat']:.1f}, "
                   f"net Sharpe {r['sharpe']:.2f}, DSR {r['dsr']:.3f}"
                   for r in ranking.rows[:12]}),
                  ("The bounce: rev_1 rebalanced every bar (train split)", bounce),
                  ("A leaky candidate", leak),
                  ("Offline proposals (train split, same gates)", proposals["table"])],
    )  # fmt: skip
    summary["report"] = str(paths.html)
    if helper is not None and helper.is_alive():
        helper.terminate()
    return DemoResult(str(paths.html), summary)


def _quality(klines: pa.Table, test: Panel) -> dict[str, Any]:
    """Validation of the klines the test split uses, and the panel's own facts."""
    start = pa.scalar(int(test.ts_us[0]) - int(test.interval_us or 0), pa.timestamp("us",
                      tz="UTC"))  # fmt: skip
    used = klines.filter(pc.greater_equal(klines["open_time"], start))
    rep = validate_table(used, "klines_5m", source="synthetic (test split)")
    html = quality_html(panel_quality(test), None) + rep.to_html()
    return {"status": rep.worst_severity, "html": html}


def _offline_proposals(train: Panel, ledger: Path, seed: int,
                       progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """A small offline proposal study on the train split, hourly, same gates as an LLM's."""
    cfg = StudyConfig(study="demo", rounds=2, per_round=8, seed=seed, library_check=False,
                      horizon=HOURLY, rebalance_every=HOURLY,
                      gate=Gate(min_abs_t=3.0, min_sharpe=0.0))  # fmt: skip
    res = Study(train, cfg, Ledger(ledger), None, progress=lambda m: progress("   " + m)).run()
    table = {a["expression"]: f"train t {a['train']['t_stat']:.1f}, net Sharpe "
             f"{a['train']['sharpe']:.2f}" for a in res.accepted}  # fmt: skip
    return {"counts": res.counts, "accepted": len(res.accepted),
            "table": table or {"accepted": "none passed the gate"}}  # fmt: skip


def _bounce(train: Panel, registry: Registry) -> dict[str, Any]:
    """rev_1 traded every bar: gross at the printed prices vs net with book-walk fills."""
    gross = run_factor_backtest(train, "rev_1", fee_bps=0.0, slippage="none", registry=registry)
    net = run_factor_backtest(train, "rev_1", slippage="book_walk", registry=registry)
    return {"gross_sharpe": gross.metrics["sharpe"], "gross_return": gross.metrics["total_return"],
            "net_sharpe": net.metrics["sharpe"], "net_return": net.metrics["total_return"],
            "why": "the close prints at the bid or the ask; a fill at the book pays the spread "
                   "the reversal seemed to earn"}  # fmt: skip


def _leak(train: Panel) -> dict[str, Any]:
    """A candidate that reads the next bar's close, put through the lookahead check."""

    def next_bar_return(p: Panel) -> np.ndarray:
        c = p["close"]
        out = np.full(c.shape, np.nan)
        out[:-1] = c[1:] / c[:-1] - 1.0  # the NEXT bar's return: known only a bar later
        return out

    t0 = time.perf_counter()
    try:
        score_factor(next_bar_return, train.take_rows(slice(0, 4000)), horizons=(1,), n_trials=1)
    except LookaheadError as exc:
        return {"candidate": "a function returning the next bar's return",
                "verdict": "caught by the lookahead check", "detail": str(exc)[:300],
                "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    return {
        "candidate": "a function returning the next bar's return",
        "verdict": "NOT caught (a bug: please report it)",
    }


def _test_split(panel: Panel, cut: int, test: Panel, name: str,
                registry: Registry) -> tuple[Any, Any, dict[str, Any]]:  # fmt: skip
    """The one holdout look: score on the test split (recorded in the registry), backtest with
    book-walk fills, paper-live fills of its orders, the gap."""
    scored = score_factor(name, panel, horizons=(HOURLY,), split=int(panel.ts_us[cut]), test=True,
                          registry=registry, rebalance_every=HOURLY)  # fmt: skip
    look = {"test_rank_ic": scored.test.rank_ic[HOURLY]["mean"] if scored.test else None,
            "note": next((n for n in scored.notes if "holdout" in n), "")}  # fmt: skip
    run = run_factor_backtest(test, name, rebalance_every=HOURLY, init_cash=100_000.0,
                              slippage="book_walk", registry=registry)  # fmt: skip
    assert test.book is not None
    orders = orders_table(run, test)
    fills = simulate_fills(orders, test.ts_us, test.symbols, test.book, fee_bps=LIVE_FEE_BPS,
                           latency=LatencyModel(1_000_000, 20_000_000, 7))  # fmt: skip
    bid0, ask0 = test.book.bid_px[:, :, 0], test.book.ask_px[:, :, 0]
    quotes = Quotes(np.repeat(test.ts_us, test.N), np.tile(np.asarray(test.symbols), test.T),
                    bid0.ravel(), ask0.ravel())  # fmt: skip
    gap = analyze_gap(orders, fills, quotes=quotes, window_us=600_000_000,
                      equity=run.result.init_cash)  # fmt: skip
    return run, gap, look
