"""Ranking a sweep's trials: Deflated Sharpe per trial (true trial count) and the sweep's PBO."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def rank_trials(table: pa.Table, n_trials: int) -> tuple[list[dict[str, Any]], float]:
    """Trial rows ordered by Deflated Sharpe (best first) and the sweep's PBO (CSCV)."""
    from alphaforge.factors.dsr import deflated_sharpe_ratio
    from alphaforge.factors.pbo import pbo_from_blocks

    if table.num_rows == 0:
        return [], float("nan")
    rows = table.drop_columns(["block_sum", "block_sumsq", "block_n"]).to_pylist()
    sr = np.array([r["sr_per_bar"] for r in rows], dtype=np.float64)
    finite = sr[np.isfinite(sr)]
    var = float(np.var(finite, ddof=1)) if finite.size >= 2 else None
    for r in rows:
        if not np.isfinite(r["sr_per_bar"]) or r["n_obs"] < 2:
            r["dsr"] = r["psr"] = float("nan")
            continue
        d = deflated_sharpe_ratio(sr=r["sr_per_bar"], n_obs=int(r["n_obs"]), skew=r["skew"],
                                  kurtosis=r["kurtosis"], n_trials=max(n_trials, 1),
                                  var_trials=var)  # fmt: skip
        r["dsr"], r["psr"] = d.dsr, d.psr

    def key(r: dict[str, Any]) -> tuple[float, float]:
        d, s = r["dsr"], r["sharpe"]
        return (-d if np.isfinite(d) else np.inf, -s if np.isfinite(s) else np.inf)

    rows.sort(key=key)
    blocks = [
        np.stack(table.column(c).to_pylist()) for c in ("block_sum", "block_sumsq", "block_n")
    ]
    result = pbo_from_blocks(blocks[0], blocks[1], blocks[2]) if table.num_rows >= 2 else None
    return rows, (result.pbo if result is not None else float("nan"))


def walk_forward_pbo(table: pa.Table) -> float:
    """The sweep's PBO on expanding walk-forward splits of its blocks (NaN: < 2 trials)."""
    from alphaforge.factors.pbo import walk_forward_pbo_from_blocks

    if table.num_rows < 2:
        return float("nan")
    blocks = [
        np.stack(table.column(c).to_pylist()) for c in ("block_sum", "block_sumsq", "block_n")
    ]
    return walk_forward_pbo_from_blocks(blocks[0], blocks[1], blocks[2]).pbo
