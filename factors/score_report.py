"""Plain renderings of a FactorScore: JSON-safe values and (metric, value) table rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from alphaforge.factors.score import FactorScore


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
    rows: list[tuple[str, str]] = [
        ("factor", s.name),
        ("rows x assets", f"{s.n_rows} x {s.n_assets}"),
        ("lag (bars)", str(s.lag)),
    ]
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
    labels = {"breakeven_bps": "break-even cost (bps)", "ic_net": "RankIC net of costs (IC-equiv.)"}
    for k, label in labels.items():
        if k in s.costs:
            rows.append((label, _fmt(s.costs[k])))
    for k in ("sharpe", "gross_sharpe", "max_drawdown", "turnover_per_bar"):
        if k in s.backtest:
            rows.append((f"long-short {k.replace('_', ' ')}", _fmt(s.backtest[k])))
    for k in ("psr", "dsr", "n_trials"):
        if k in s.dsr:
            rows.append((k.upper() if k != "n_trials" else "trials", _fmt(s.dsr[k])))
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
