"""``FactorScore``, the record ``score_factor`` returns, and its plain renderings (JSON-safe
values and (metric, value) table rows)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class FactorScore:
    """Everything ``score_factor`` measured (see factors.score_parts for definitions).

    Attributes:
        name: library name or expression text ("<array>" for a raw array).
        expression: canonical expression text, or None for an array.
        n_rows, n_assets: scored panel shape; start_us, end_us: first/last row time (UTC us).
        lag, horizons, quantiles, periods_per_year: the settings used.
        ic, rank_ic: horizon -> {mean, std, icir, t_stat, se, n, icir_annual}.
        quantile_returns: horizon -> mean forward return per bin, lowest factor first.
        spread: horizon -> {mean, per_bar, t_stat} of top-minus-bottom bin returns.
        decay: horizon -> mean RankIC with the single bar h bars after entry; half_life (bars).
        ts_rank_ic: symbol -> whole-period time-series RankIC with the first horizon's
            forward return (single-asset research).
        turnover: rank_autocorr, turnover_top, turnover_bottom.
        backtest: net sharpe, sortino, max_drawdown, ..., gross_sharpe, turnover_per_bar.
        costs: fee_bps, slippage_bps, breakeven_bps, edge_kept, mean gross/net return per bar,
            rebalance_every and ``execution`` (engine.defaults.describe).
        dsr: sr, n_obs, skew, kurtosis, n_trials, var_trials, sr0, psr, dsr (per-bar units).
        redundancy: library factor -> mean cross-sectional rank correlation, or None.
        split: {"cut_us", "train_rows", "test_rows"} when scored with a split, else None.
        test: the one-shot score of the test part, or None.
        notes: what was skipped and why (dropped horizons, a failed backtest, ...).
        lookahead: {"status", "detail"}: how the factor was cleared of reading the future
            (``factors.resolve``).
        warnings: what makes the numbers optimistic (timing, unverified values, a reused
            holdout); shown first.
        trials: the study-wide trial count on this data (``factors.registry``): n_trials,
            by_kind, sr_needed_annual, ledger; None without a registry.
    """

    name: str
    expression: str | None
    n_rows: int
    n_assets: int
    start_us: int
    end_us: int
    lag: int
    horizons: tuple[int, ...]
    quantiles: int
    periods_per_year: float
    ic: Mapping[int, Mapping[str, float]]
    rank_ic: Mapping[int, Mapping[str, float]]
    quantile_returns: Mapping[int, Sequence[float]]
    spread: Mapping[int, Mapping[str, float]]
    decay: Mapping[int, float]
    half_life: float
    ts_rank_ic: Mapping[str, float]
    turnover: Mapping[str, float]
    backtest: Mapping[str, float]
    costs: Mapping[str, float]
    dsr: Mapping[str, float | int]
    redundancy: Mapping[str, float] | None = None
    split: Mapping[str, int] | None = None
    test: FactorScore | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    lookahead: Mapping[str, str] | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    trials: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: NaN -> None, +/-inf -> "inf"/"-inf", horizon keys -> str."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.to_dict() if isinstance(value, FactorScore) else to_jsonable(value)
        return out

    def summary_rows(self) -> list[tuple[str, str]]:
        """(metric, formatted value) rows for a terminal table."""
        return summary_rows(self)


def to_jsonable(value: Any) -> Any:
    """Recursively JSON-safe: NaN -> None, +/-inf -> "inf"/"-inf", keys -> str, arrays -> lists."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.integer | bool):
        return value.item() if isinstance(value, np.integer) else value
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    return value


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float | np.floating):
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}" if abs(x) >= 1e4 or abs(x) < 1e-3 else f"{x:.{digits}f}"
    return str(x)


def summary_rows(s: FactorScore) -> list[tuple[str, str]]:
    """(metric, formatted value) rows, horizons first, then turnover, costs, backtest, DSR."""
    rows: list[tuple[str, str]] = [("WARNING", w) for w in s.warnings]
    rows += [
        ("factor", s.name),
        ("rows x assets", f"{s.n_rows} x {s.n_assets}"),
        ("lag (bars)", str(s.lag)),
    ]
    if s.lookahead:
        rows.append(("lookahead", s.lookahead["detail"]))
    for h in s.horizons:
        r, c = s.rank_ic[h], s.ic[h]
        rows.append((f"RankIC h={h}", f"{_fmt(r['mean'])} (t {_fmt(r['t_stat'], 2)})"))
        rows.append(
            (f"RankIC ICIR h={h}", f"{_fmt(r['icir'])} (annual {_fmt(r.get('icir_annual'))})")
        )
        rows.append((f"IC h={h}", f"{_fmt(c['mean'])} (t {_fmt(c['t_stat'], 2)})"))
        q = ", ".join(_fmt(v * 1e4, 3) for v in s.quantile_returns[h])
        rows.append((f"quantile returns h={h} (bps)", q))
        rows.append((f"top-bottom h={h} (bps/bar)", _fmt(s.spread[h]["per_bar"] * 1e4, 3)))
    ts_vals = [v for v in s.ts_rank_ic.values() if math.isfinite(v)]
    if ts_vals:
        h0 = s.horizons[0]
        rows.append((f"time-series RankIC h={h0} (mean of assets)", _fmt(float(np.mean(ts_vals)))))
        if len(s.ts_rank_ic) <= 4:
            rows.extend((f"  time-series RankIC {k}", _fmt(v)) for k, v in s.ts_rank_ic.items())
    decay = ", ".join(f"{h}:{_fmt(v, 3)}" for h, v in s.decay.items())
    rows.append(("RankIC decay (h:ic)", decay))
    rows.append(("half-life (bars)", _fmt(s.half_life, 3)))
    for k, v in s.turnover.items():
        rows.append((k.replace("_", " "), _fmt(v)))
    labels = {
        "breakeven_bps": "break-even cost (bps)",
        "edge_kept": "gross edge kept after costs (1 = all, < 0: costs exceed it)",
    }
    for k, label in labels.items():
        if k in s.costs:
            rows.append((label, _fmt(s.costs[k])))
    if "execution" in s.costs:
        rows.append(("long-short execution", str(s.costs["execution"])))
    for k in ("sharpe", "gross_sharpe", "max_drawdown", "turnover_per_bar"):
        if k in s.backtest:
            rows.append((f"long-short {k.replace('_', ' ')}", _fmt(s.backtest[k])))
    for k in ("psr", "dsr", "n_trials"):
        if k in s.dsr:
            rows.append((k.upper() if k != "n_trials" else "trials", _fmt(s.dsr[k])))
    if s.trials:
        kinds = ", ".join(f"{k} {v}" for k, v in s.trials.get("by_kind", {}).items())
        rows.append(("trials on this data (all studies)", f"{s.trials['n_trials']} ({kinds})"))
        if "sr_needed_annual" in s.trials:
            rows.append(("Sharpe needed to beat luck", _fmt(s.trials["sr_needed_annual"])))
    if s.redundancy:
        top = list(s.redundancy.items())[:3]
        rows.append(("most similar", ", ".join(f"{n} {_fmt(v, 2)}" for n, v in top)))
    if s.split:
        rows.append(("train/test rows", f"{s.split['train_rows']} / {s.split['test_rows']}"))
    if s.test is not None:
        h = s.test.horizons[0]
        rows.append((f"TEST RankIC h={h}", _fmt(s.test.rank_ic[h]["mean"])))
        rows.append(("TEST long-short sharpe", _fmt(s.test.backtest.get("sharpe"))))
    rows.extend(("note", n) for n in s.notes)
    return rows
