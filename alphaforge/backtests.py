"""A factor's long-short backtest on a Panel (the factors -> engine seam).

``factor_weights`` / ``factor_returns`` live in engine.portfolio and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.defaults import DEFAULTS, describe
from alphaforge.engine.errors import InputError
from alphaforge.engine.metrics import compute_metrics
from alphaforge.engine.panel import Panel
from alphaforge.engine.portfolio import factor_returns, factor_weights, funding_of
from alphaforge.engine.report import ReportInputs, ReportPaths, build_report
from alphaforge.engine.slippage import execution_book
from alphaforge.engine.timing import timing_warnings
from alphaforge.factors import score_parts
from alphaforge.factors.dsr import return_moments
from alphaforge.factors.registry import Registry, deflate
from alphaforge.factors.resolve import FactorInput, resolve_factor
from alphaforge.factors.score import trial_key, usable_horizons
from alphaforge.report_quality import panel_quality, quality_html

F64 = npt.NDArray[np.float64]
__all__ = ["FactorBacktest", "factor_returns", "factor_weights", "run_factor_backtest"]


@dataclass(frozen=True, slots=True)
class FactorBacktest:
    """A factor's long-short backtest: the result, its metrics and what was run.

    Attributes:
        factor: library name or expression text. expr: canonical expression (None for arrays).
        weights: (T, N) target weights. result: the engine's BacktestResult.
        metrics: compute_metrics(result, periods_per_year). settings: every option used
            (with ``lookahead``, the factor's verdict, ``factors.resolve``).
        warnings: what makes the result optimistic (fills that can see the decision bar, an
            unverified precomputed factor); shown by every renderer.
    """

    factor: str
    expr: str | None
    weights: F64
    result: Any
    metrics: dict[str, Any]
    settings: dict[str, Any]
    warnings: tuple[str, ...] = ()
    trials: dict[str, Any] | None = None
    values: F64 | None = None


def run_factor_backtest(
    panel: Panel,
    factor: FactorInput,
    *,
    scheme: str = DEFAULTS.scheme,
    gross: float = DEFAULTS.gross,
    quantile: float = 0.2,
    lag: int = DEFAULTS.lag,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage: Any | None = None,
    slippage_bps: float = DEFAULTS.slippage_bps,
    use_funding: bool = True,
    record_trades: bool = True,
    rebalance_every: int = DEFAULTS.rebalance_every,
    init_cash: float = 1.0,
    available_us: Any | None = None,
    registry: Registry | None = None,
) -> FactorBacktest:
    """Evaluate ``factor`` on ``panel``, turn it into weights and backtest it.

    Execution follows design.md: a decision at row t fills at the open of row t + lag.
    Funding (when the panel has ``funding_paid``) is charged on held positions. With
    ``rebalance_every`` = k > 1, targets are set on every k-th row only and positions are held
    in between (NaN targets). A callable factor is checked for lookahead first and an array
    with ``available_us`` for availability (``factors.resolve``).
    """
    name, expr, values, verdict = resolve_factor(factor, panel, available_us=available_us)
    slippage = slippage_model(slippage, panel, lag, slippage_bps)
    weights = factor_weights(values, panel, scheme=scheme, gross=gross, quantile=quantile,
                             rebalance_every=rebalance_every, lag=lag)  # fmt: skip
    funding = funding_of(panel, use_funding)
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
        "rebalance_every": rebalance_every, "lookahead": verdict.detail,
    }  # fmt: skip
    settings["execution"] = describe(settings)
    warns = timing_warnings(lag, "open" in panel)
    if verdict.status == "unverified":
        warns.append(verdict.detail)
    trials = None
    if registry is not None:
        trials = _count_trial(registry, panel, name, expr, values, result.returns, settings)
    return FactorBacktest(name, expr, weights, result, metrics, settings, tuple(warns), trials,
                          values)  # fmt: skip


def _count_trial(registry: Registry, panel: Panel, name: str, expr: str | None, values: F64,
                 returns: F64, settings: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Record the backtest as a trial; its DSR at the study-wide count of trials on this data."""
    sr, n_obs, skew, kurt = return_moments(returns)
    variant = {k: settings[k] for k in ("scheme", "lag", "fee_bps", "slippage_bps",
                                        "rebalance_every")}  # fmt: skip
    registry.record_trial(panel, "backtest", trial_key(name, expr, values, **variant), name=name,
                          sr_per_bar=sr, n_obs=n_obs)  # fmt: skip
    count = registry.trial_count(panel)
    d = deflate(count, {"sr": sr, "n_obs": n_obs, "skew": skew, "kurtosis": kurt},
                panel.periods_per_year)  # fmt: skip
    return {
        "n_trials": count.n_trials,
        "by_kind": count.by_kind,
        "psr": d.get("psr"),
        "dsr": d.get("dsr"),
        "sr_needed_annual": d.get("sr_needed_annual"),
    }


def slippage_model(spec: Any, panel: Panel, lag: int, bps: float) -> Any:
    """A ``Slippage`` from a model name (or the object itself, or None = fixed bps).

    ``"book_walk"`` fills every order against the panel's recorded book in force at execution
    (``panel.book`` shifted to execution rows by ``execution_book``); ``"book_walk:K"`` walks
    the first K levels only. ``"fixed_bps"`` is ``bps`` of notional, ``"none"`` no slippage.

    Raises:
        InputError: book_walk on a panel without a book (the datasets that give one named), or
            an unknown model name.
    """
    if spec is None or not isinstance(spec, str):
        return spec
    name, _, k = spec.partition(":")
    if name == "book_walk":
        if panel.book is None:
            raise InputError(
                "book_walk slippage needs order-book data for the panel's symbols: ingest depth "
                "recordings (depth_updates) or Tardis book_snapshot files, or pull them"
            )
        return Slippage("book_walk", book=execution_book(panel.book, lag),
                        book_levels=int(k or 0))  # fmt: skip
    if name == "fixed_bps":
        return None  # run_backtest's own fixed-bps path (slippage_bps)
    if name == "none":
        return Slippage("none")
    raise InputError(f"unknown slippage model {spec!r}; expected fixed_bps, none, book_walk or "
                     "book_walk:<levels>")  # fmt: skip


def orders_table(run: FactorBacktest, panel: Panel) -> dict[str, np.ndarray]:
    """The backtest's orders in the layout ``alphaforge gap`` reads (docs/gap.md): one row per
    order with its decision time and mid (the book's mid when the panel has a book, else the
    decision bar's close) and the backtest's own fill price and fee.

    Columns: order_id, ts_us (decision time, UTC µs), time_utc (ISO text), symbol, side
    (buy/sell), qty (base units, at the run's ``init_cash``), decision_mid, bt_fill_px, bt_fee
    (quote).

    Raises:
        InputError: the run kept no per-fill records (``record_trades=False``).
    """
    trades = run.result.trades
    if trades is None:
        raise InputError("the backtest kept no per-fill records; run it with record_trades=True")
    d, c = trades["decision_row"], trades["col"]
    if panel.book is not None:
        mid = 0.5 * (panel.book.bid_px[d, c, 0] + panel.book.ask_px[d, c, 0])
        mid = np.where(np.isfinite(mid), mid, panel["close"][d, c])
    else:
        mid = panel["close"][d, c]
    ts = panel.ts_us[d]
    return {
        "order_id": np.arange(trades.size), "ts_us": ts,
        "time_utc": np.datetime_as_string(ts.astype("datetime64[us]"), unit="ms"),
        "symbol": np.asarray(panel.symbols)[c],
        "side": np.where(trades["qty"] + trades["unfilled_qty"] > 0, "buy", "sell"),
        "qty": np.abs(trades["qty"]) + np.abs(trades["unfilled_qty"]), "decision_mid": mid,
        "bt_fill_px": trades["fill_px"], "bt_fee": trades["fee"],
    }  # fmt: skip


QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB")


def fills_table(run: FactorBacktest, panel: Panel) -> dict[str, np.ndarray]:
    """The backtest's own fills in the live-fills layout ``alphaforge gap`` reads (one row per
    filled order, ``order_id`` as in ``orders_table``): ts_us (the execution bar's open), symbol,
    side (buy/sell), qty, price, fee and fee_asset (the symbol's quote currency)."""
    trades = run.result.trades
    if trades is None:
        raise InputError("the backtest kept no per-fill records; run it with record_trades=True")
    ids = np.arange(trades.size)
    keep = trades["qty"] != 0
    t = trades[keep]
    sym = np.asarray(panel.symbols)[t["col"]]
    step = int(panel.interval_us or 0)
    return {
        "order_id": ids[keep], "ts_us": panel.ts_us[t["row"]] - step,
        "symbol": sym, "side": np.where(t["qty"] > 0, "buy", "sell"), "qty": np.abs(t["qty"]),
        "price": t["fill_px"], "fee": t["fee"],
        "fee_asset": np.array([next((q for q in QUOTES if s.endswith(q)), "USDT") for s in sym]),
    }  # fmt: skip


def write_orders(cols: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write an orders (or fills) table as CSV, or parquet when ``path`` ends in .parquet."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    if p.suffix == ".parquet":
        pq.write_table(table, p)
    else:
        pacsv.write_csv(table, p)
    return p


def backtest_report(
    run: FactorBacktest,
    panel: Panel,
    out_dir: str | Path,
    *,
    quality: str | None = None,
    gap: Any | None = None,
    sections: Sequence[tuple[str, Mapping[str, Any]]] = (),
    notes: Sequence[str] = (),
    title: str | None = None,
) -> ReportPaths:
    """The HTML tear sheet + PNGs + report.json of a factor backtest on ``panel``: what
    ``alphaforge report``, ``BacktestRun.report`` and the demo write, with the same figures
    wherever the data allows them.

    Sections: performance (annualised only as the span allows, engine.report_metrics); costs
    (gross vs net, fees/slippage/funding, break-even cost); research honesty (lookahead
    verdict, execution settings, the study-wide trial count, DSR and the Sharpe needed to
    beat luck); the factor's RankIC over time, decay and quantile returns; turnover, costs,
    slippage per fill; the live gap when ``gap`` (an ``engine.gap.GapReport``) is given; and
    the data used (``quality`` HTML, default: ``report_quality.panel_quality`` of the panel).
    """
    r = run.result
    gross = _gross_run(run, panel)
    notes = [*(["SYNTHETIC market: generated by data.synthetic, not real exchange data."]
               if panel.meta.get("synthetic") else []), *notes]  # fmt: skip
    ic_parts = _factor_parts(run, panel)
    trades = r.trades
    slip_bps = None
    if trades is not None and trades.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            slip_bps = trades["slippage"] / (np.abs(trades["qty"]) * trades["ref_px"]) * 1e4
        slip_bps = slip_bps[np.isfinite(slip_bps)]
        if slip_bps.size == 0 or np.ptp(slip_bps) < 1e-9:
            slip_bps = None  # nothing to draw: one fixed cost per fill (or none)
    return build_report(ReportInputs(
        title=title or f"alphaforge report: {run.factor}", ts_us=panel.ts_us, equity=r.equity,
        returns=r.returns, interval_us=panel.interval_us, periods_per_year=panel.periods_per_year,
        metrics=run.metrics, turnover=r.turnover_series, notes=notes, warnings=run.warnings,
        costs={"fees": r.fees, "slippage": r.slippage, "funding": r.funding},
        slippage_bps=slip_bps, **ic_parts,
        gap_components={k: gap.gap_bps[k] for k in ("delay", "half_spread", "impact", "fees",
                                                    "opportunity")} if gap is not None else {},
        quality_html=quality if quality is not None else quality_html(panel_quality(panel), None),
        top_sections=[("Costs: gross vs net", _cost_rows(run, gross, panel)),
                      ("Research honesty", _honesty_rows(run))],
        sections=list(sections)), out_dir)  # fmt: skip


def _gross_run(run: FactorBacktest, panel: Panel) -> Any:
    """The same weights without fees or slippage (funding kept: it is not a trading cost)."""
    return run_backtest(run.weights, close=panel["close"], open=panel.fields.get("open"),
                        lag=int(run.settings["lag"]), fee_bps=0.0, slippage_bps=0.0,
                        funding=funding_of(panel, bool(run.settings.get("funding"))))  # fmt: skip


def _cost_rows(run: FactorBacktest, gross: Any, panel: Panel) -> dict[str, Any]:
    net_r, gross_r = np.asarray(run.result.returns), np.asarray(gross.returns)
    ppy = panel.periods_per_year
    m_gross = compute_metrics(gross, ppy)
    turn = float(run.result.turnover) / max(panel.T, 1)
    mean_gross = float(np.nanmean(gross_r)) if gross_r.size else float("nan")
    breakeven = mean_gross / turn * 1e4 if turn > 0 else float("nan")
    paid = float(run.settings.get("fee_bps") or 0.0) + float(
        run.settings.get("slippage_bps") or 0.0
    )
    return {
        "return before costs": m_gross["total_return"],
        "return after costs": run.metrics["total_return"],
        "Sharpe before costs (per bar)": _per_bar_sharpe(gross_r),
        "Sharpe after costs (per bar)": _per_bar_sharpe(net_r),
        "fees paid (quote)": run.result.fees, "slippage paid (quote)": run.result.slippage,
        "funding paid (quote, < 0 = received)": run.result.funding,
        "turnover per bar (x equity)": turn,
        "break-even cost (bps per trade)": breakeven,
        "cost assumed (bps per trade)": paid if run.settings.get("slippage_bps") is not None
        else f"fee {run.settings.get('fee_bps')} + {run.settings.get('slippage_model')}",
    }  # fmt: skip


def _per_bar_sharpe(r: np.ndarray) -> float:
    x = r[np.isfinite(r)]
    sd = float(np.std(x, ddof=1)) if x.size > 1 else float("nan")
    return float(np.mean(x)) / sd if x.size > 1 and sd > 0 else float("nan")


def _honesty_rows(run: FactorBacktest) -> dict[str, Any]:
    out: dict[str, Any] = {"lookahead": run.settings.get("lookahead"),
                           "execution": run.settings.get("execution")}  # fmt: skip
    if run.trials:
        out["trials on this data (all studies)"] = run.trials["n_trials"]
        out["deflated Sharpe (probability the Sharpe is not luck)"] = run.trials["dsr"]
        out["Sharpe needed to beat luck (annualised)"] = run.trials["sr_needed_annual"]
    else:
        out["trials on this data"] = "not recorded (no research ledger)"
    return out


def _factor_parts(run: FactorBacktest, panel: Panel) -> dict[str, Any]:
    """RankIC series (h = 1), decay and quantile returns of the traded factor values."""
    if run.values is None:
        return {}
    lag = int(run.settings["lag"])
    hs = usable_horizons(panel, (1, 5, 15, 60), lag)
    if not hs:
        return {}
    core = score_parts.ic_block(run.values, panel, hs, lag, 5, 3)
    decay = score_parts.decay_block(run.values, panel, hs, lag, 3)["decay"]
    return {"ic_series": core["rank_ic_series_h1"], "ic_decay": decay,
            "quantile_returns": list(core["quantile_returns"][hs[0]])}  # fmt: skip
