"""Public API, engine side: backtests with pandas results, sweeps and the live gap.

Shaped after vectorbt's portfolio object: ``af.backtest(...)`` returns a ``BacktestRun`` whose
equity, returns, trades and weights are pandas objects, with ``.metrics``, ``.plot()`` and
``.report(path)``. The numbers come from ``alphaforge.backtests.run_factor_backtest``, the
function behind ``alphaforge backtest``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from alphaforge.api_factors import FactorArg, as_factor_input
from alphaforge.backtests import FactorBacktest, run_factor_backtest
from alphaforge.data.user_trades import detect_layout, read_user_trades
from alphaforge.engine.defaults import DEFAULTS
from alphaforge.engine.errors import InputError
from alphaforge.engine.formatting import fmt
from alphaforge.engine.gap import GapReport, Quotes, analyze_gap
from alphaforge.engine.metrics import METRIC_NAMES
from alphaforge.engine.panel import Panel
from alphaforge.engine.report import ReportPaths
from alphaforge.factor_report import backtest_report
from alphaforge.factors.library import list_factors
from alphaforge.factors.registry import Registry
from alphaforge.gap_context import calibration_features, fee_quotes
from alphaforge.sweeps import SweepOutcome, run_sweep_study
from alphaforge.walkforward import WalkForwardResult, run_walkforward

if TYPE_CHECKING:
    import pandas as pd
else:
    from alphaforge.lazy import LazyModule

    pd = LazyModule("pandas")  # imported on first use (alphaforge.lazy)

F64 = npt.NDArray[np.float64]

__all__ = ["BacktestRun", "backtest", "gap", "read_columns", "sweep", "walkforward"]


class BacktestRun:
    """A backtest on a Panel, as pandas objects.

    Attributes:
        raw: the underlying ``FactorBacktest`` (engine result, metrics, settings).
        panel: the data it ran on.
        metrics: dict of every metric (``alphaforge.engine.metrics.METRIC_NAMES``).
        settings: every option used (scheme, lag, fees, slippage model, rebalance, ...) and
            the factor's lookahead verdict.
        warnings: what makes the result optimistic (fills that see the decision bar, an
            unverified precomputed factor).
        trials: trial count on this data over every study and the DSR at that count.
    """

    def __init__(self, raw: FactorBacktest, panel: Panel) -> None:
        self.raw = raw
        self.panel = panel
        self.metrics = dict(raw.metrics)
        self.settings = dict(raw.settings)
        self.warnings = list(raw.warnings)
        self.trials = dict(raw.trials or {})

    @property
    def _index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.panel.ts_us, unit="us", utc=True), name="ts")

    @property
    def equity(self) -> pd.Series:
        """Equity after each bar (quote currency), indexed by UTC bar time."""
        return pd.Series(self.raw.result.equity, index=self._index, name="equity")

    @property
    def returns(self) -> pd.Series:
        """Simple return of each bar."""
        return pd.Series(self.raw.result.returns, index=self._index, name="returns")

    @property
    def weights(self) -> pd.DataFrame:
        """Target weights decided at each bar (NaN = no order), one column per symbol."""
        return pd.DataFrame(self.raw.weights, index=self._index, columns=list(self.panel.symbols))

    @property
    def trades(self) -> pd.DataFrame:
        """One row per fill: fill and decision times, symbol, signed qty, prices, costs."""
        t = self.raw.result.trades
        if t is None:
            return pd.DataFrame()
        df = pd.DataFrame({name: t[name] for name in t.dtype.names})
        ts = pd.to_datetime(self.panel.ts_us, unit="us", utc=True)
        df.insert(0, "decision_ts", ts[df["decision_row"].to_numpy()])
        df.insert(0, "ts", ts[df["row"].to_numpy()])
        df.insert(2, "symbol", np.asarray(self.panel.symbols)[df["col"].to_numpy()])
        return df.drop(columns=["param"])

    def plot(self) -> Any:
        """A matplotlib Figure: equity and drawdown."""
        import matplotlib.pyplot as plt

        eq = self.equity
        fig, (a, b) = plt.subplots(2, 1, figsize=(11, 5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})  # fmt: skip
        eq.plot(ax=a, title=f"{self.raw.factor}: equity")
        (eq / eq.cummax() - 1).plot(ax=b, color="tab:red", title="drawdown")
        fig.tight_layout()
        return fig

    def report(self, out_dir: str | Path = "alphaforge-out") -> ReportPaths:
        """Write the HTML tear sheet, PNGs and report.json (as ``alphaforge report``)."""
        return backtest_report(self.raw, self.panel, out_dir)

    def __repr__(self) -> str:
        sr = self.metrics.get("sharpe")
        return f"BacktestRun({self.raw.factor!r}, bars={self.panel.T}, sharpe={fmt(sr)})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{m}</td><td>{html.escape(fmt(self.metrics.get(m)))}</td></tr>"
                       for m in METRIC_NAMES)  # fmt: skip
        title = html.escape(str(self.raw.factor))
        return f"<p><b>backtest of {title}</b></p><table><tbody>{rows}</tbody></table>"


def backtest(
    factor_or_weights: FactorArg,
    panel: Panel,
    *,
    scheme: str = DEFAULTS.scheme,
    gross: float = DEFAULTS.gross,
    lag: int = DEFAULTS.lag,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage_bps: float = DEFAULTS.slippage_bps,
    rebalance_every: int = DEFAULTS.rebalance_every,
    use_funding: bool = True,
    init_cash: float = 1.0,
    available_us: Any | None = None,
    ledger: str | Path | None = None,
    slippage: Any | None = None,
) -> BacktestRun:
    """Long-short backtest of a factor (library name, expression, ``af.factor``) or of factor
    values ((T, N) array or DataFrame aligned with the panel), as ``alphaforge backtest`` runs
    it: a decision at bar t fills at the open of bar t + lag, with fees, slippage and funding.
    A function ``Panel -> (T, N)`` is checked for lookahead first; values are checked against
    ``available_us`` when given, else reported "unverified" in ``warnings``. The run is
    recorded as a trial in the research ``ledger``; ``BacktestRun.trials`` holds the
    study-wide trial count on this data and the Deflated Sharpe at that count. ``slippage``:
    None / "fixed_bps" (``slippage_bps`` of notional), "none", "book_walk" (every fill walks
    the recorded book in force at execution: a panel from a store holding depth) or
    "book_walk:K", or an ``alphaforge.engine.backtest.Slippage``.
    """
    raw = run_factor_backtest(panel, as_factor_input(factor_or_weights), scheme=scheme,
                              gross=gross, lag=lag, fee_bps=fee_bps, slippage_bps=slippage_bps,
                              rebalance_every=rebalance_every, use_funding=use_funding,
                              init_cash=init_cash, available_us=available_us,
                              slippage=slippage, registry=Registry(ledger))  # fmt: skip
    return BacktestRun(raw, panel)


def sweep(
    panel: Panel,
    factors: Sequence[str],
    grid: Mapping[str, Sequence[Any]],
    results_dir: str | Path = "store/results",
    *,
    scheduler: Any = None,
    chunk_size: int = 64,
    memory_budget_bytes: int = 1 << 30,
    ledger: str | Path | None = None,
    slippage: str | None = None,
    worker_reads: bool | None = None,
) -> SweepOutcome:
    """Factors x parameter grid, ranked by deflated Sharpe with PBO (as ``alphaforge sweep``);
    resumable: the same call again continues where it stopped. Every trial is recorded in the
    research ``ledger`` and the DSR uses the study-wide count of distinct trials on this data
    (``SweepOutcome.trials_on_data``; ``sr_needed_annual`` is the Sharpe luck alone reaches).
    Factors are expressions (safe by construction): a callable factor goes through
    ``af.backtest``, which checks it for lookahead. ``slippage="book_walk"`` fills every
    trial against the panel's recorded book. On a Dask ``scheduler`` each worker reads a panel
    from ``af.Store(...).panel(...)`` (unchanged since) from the store itself instead of
    receiving it from this process (``worker_reads``: None = whenever possible; the result's
    ``transport`` says which happened)."""
    return run_sweep_study(panel, list(factors), {k: list(v) for k, v in grid.items()},
                           str(results_dir), scheduler=scheduler, chunk_size=chunk_size,
                           memory_budget_bytes=memory_budget_bytes,
                           registry=Registry(ledger), slippage=slippage,
                           worker_reads=worker_reads)  # fmt: skip


def walkforward(
    panel: Panel,
    factors: Sequence[str] | None = None,
    *,
    rule: str = "rank_ic",
    grid: Mapping[str, Sequence[Any]] | None = None,
    train: int | None = None,
    test: int | None = None,
    step: int | None = None,
    mode: str = "expanding",
    purge: int | None = None,
    embargo: int = 0,
    horizon: int = 1,
    ledger: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Walk-forward evaluation of a selection rule (as ``alphaforge walkforward``): on rolling or
    expanding train windows the rule picks a factor ("rank_ic": best |t| of the train RankIC,
    traded with its sign; "sharpe": best train Sharpe over factors x ``grid``, i.e. the best
    sweep trial), each next test window is backtested out of sample, and the stitched
    out-of-sample curve is returned beside the in-sample one. ``factors`` defaults to every
    library factor the panel supports. Purge (default lag + horizon rows) and embargo are in
    rows; see ``alphaforge.walkforward``."""
    names = list(factors) if factors else [f.name for f in list_factors(panel=panel)]
    return run_walkforward(panel, names, grid={k: list(v) for k, v in (grid or {}).items()},
                           rule=rule, train=train, test=test, step=step, mode=mode,
                           purge=purge, embargo=embargo, horizon=horizon,
                           registry=Registry(ledger), progress=progress)  # fmt: skip


Columns: TypeAlias = "Mapping[str, Any] | pd.DataFrame | str | Path"


def gap(
    orders: Columns,
    fills: Columns,
    *,
    quotes: Columns | None = None,
    window_s: float = 60.0,
    quote_asset: str = "USDT",
    allow_unmatched: bool = False,
    funding_live: float = 0.0,
    funding_backtest: float = 0.0,
    fee_prices: Mapping[str, float] | None = None,
    equity: float | None = None,
    store: str | Path | None = None,
    market: str = "usdm",
) -> GapReport:
    """Backtest-vs-live gap (fees, half-spread, impact, delay, missed fills) from the backtest's
    orders (``alphaforge backtest --orders-out``) and the live fills, as ``alphaforge gap``.

    ``fills`` may be Binance's own user-trade data as downloaded (REST ``myTrades`` /
    ``userTrades`` JSON or CSV, or the account's trade-history export: see
    ``alphaforge.data.user_trades``) or the gap's column layout (docs/gap.md); orders, fills
    and quotes may also be DataFrames or dicts of columns. ``fee_prices`` gives the quote price
    of a fee asset (e.g. ``{"BNB": 600.0}``); without it a BNB fee is priced from ``quotes``
    holding ``BNBUSDT``. ``equity`` (quote) expresses the gap as a return. With ``store`` (a
    store holding the traded symbols' klines, and ideally their books): fee assets are priced
    from its ``<ASSET><QUOTE>`` klines, and every slippage model is calibrated (sqrt_impact from
    trailing volatility and volume, book_walk from the stored book at each decision; see
    ``alphaforge.gap_context``)."""
    q = None
    if quotes is not None:
        qc = _columns(quotes)
        q = Quotes(np.asarray(qc["ts_us"], np.int64), np.asarray(qc["symbol"]).astype(str),
                   np.asarray(qc["bid"], float), np.asarray(qc["ask"], float))  # fmt: skip
    o, f = _columns(orders), _fills(fills)
    features = None
    if store is not None:
        fq = fee_quotes(str(store), f, quote_asset, market)
        if fq is not None:
            q = fq if q is None else Quotes(*(np.concatenate([a, b]) for a, b in zip(
                (q.ts_us, q.symbol, q.bid, q.ask), (fq.ts_us, fq.symbol, fq.bid, fq.ask),
                strict=True)))  # fmt: skip
        features = calibration_features(str(store), o, market)
    return analyze_gap(o, f, quotes=q, window_us=int(window_s * 1e6), quote_asset=quote_asset,
                       allow_unmatched=allow_unmatched, funding_live=funding_live,
                       funding_backtest=funding_backtest, fee_rates=fee_prices, equity=equity,
                       features=features)  # fmt: skip


def _fills(src: Columns) -> Mapping[str, Any]:
    """Live fills: a Binance user-trade file as downloaded, else the gap's own columns."""
    if isinstance(src, str | Path) and detect_layout(src) is not None:
        return read_user_trades(src)
    return _columns(src)


def _columns(src: Columns) -> Mapping[str, Any]:
    if isinstance(src, str | Path):
        return read_columns(str(src))
    if isinstance(src, pd.DataFrame):
        out = {c: src[c].to_numpy() for c in src.columns}
        for name in ("time", "ts", "timestamp"):
            if name in out and "ts_us" not in out:
                stamps = pd.to_datetime(src[name], utc=True).dt.tz_convert(None)
                out["ts_us"] = stamps.to_numpy().astype("datetime64[us]").astype(np.int64)
        return out
    return src


def read_columns(path: str) -> dict[str, np.ndarray]:
    """A CSV or parquet file as column name -> numpy array; time columns -> int64 µs.

    A column named ``time``/``ts``/``timestamp`` becomes ``ts_us``: integers are read as
    ms (< 1e14) or µs, strings/timestamps are parsed as UTC.

    Raises:
        InputError: unreadable file or unparsable times (names the file and column).
    """
    p = Path(path)
    try:
        table = pq.read_table(p) if p.suffix == ".parquet" else pacsv.read_csv(p)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        key = "ts_us" if name in ("time", "ts", "timestamp", "ts_us") else name
        if key == "ts_us":
            try:
                if pa.types.is_timestamp(col.type):
                    col = pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.int64())
                elif pa.types.is_string(col.type):
                    col = pc.cast(pc.strptime(col, "%Y-%m-%dT%H:%M:%S", "us"), pa.int64())
                arr = np.asarray(col.to_numpy(), dtype=np.int64)
            except (pa.ArrowInvalid, ValueError) as exc:
                raise InputError(f"{path}: column {name!r}: cannot parse times ({exc})") from None
            if name != "ts_us" and arr.size and np.abs(arr).max() < 10**14:
                arr = arr * 1000  # epoch milliseconds
            out[key] = arr
        else:
            out[key] = np.asarray(col.to_numpy(zero_copy_only=False))
    return out
