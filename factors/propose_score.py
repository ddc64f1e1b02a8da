"""What the proposal loop computes once per study instead of once per candidate.

- ``ScoreContext``: forward returns, gap-filled execution/mark prices, the no-fill mask and the
  rebalance rows of one Panel (train or holdout); ``score_train`` reads them.
- ``RankSet``: row ranks of accepted and library factors (``propose_nb``), so the
  redundancy check is one dot-product pass per pair instead of two sorts per row per pair.
- ``TailLookahead``: the noise-perturbed copies of the train tail, built once; every candidate
  is still checked (evaluated on the tail and on each perturbed copy, compared exactly), with
  the same cuts and noise as ``check_lookahead(node, tail, n_cuts=2, seed=seed)``.

Missing prices (gaps, late listings): a position held through a missing bar is marked at the
last known price, and no order is placed for a decision whose execution price is missing.
Without gaps the prices and results are exactly those of the plain backtest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alphaforge.engine.backtest import run_backtest
from alphaforge.engine.metrics import sharpe_ratio
from alphaforge.engine.panel import Panel
from alphaforge.engine.pool import run_ranges
from alphaforge.engine.portfolio import funding_of
from alphaforge.engine.rank_nb import COUNT_ROW
from alphaforge.engine.tradable import executable_mask, mask_weights
from alphaforge.engine.weights import weights_from_signals
from alphaforge.factors import ic, propose_nb
from alphaforge.factors.lookahead import Perturber, _default_cuts
from alphaforge.factors.returns import forward_returns

F64 = npt.NDArray[np.float64]
MIN_OBS = 3
LOOKAHEAD_ROWS = 400
LOOKAHEAD_CUTS = 2
Ranks = tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]
"""(row ranks (T, N) float32, NaN = not finite; per-row 1/norm of the centred ranks (T,))."""


class _ScoreCfg(Protocol):
    horizon: int
    lag: int
    fee_bps: float
    slippage_bps: float
    rebalance_every: int


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """Per-Panel inputs of ``score_train`` (shapes (T, N) unless stated)."""

    fwd: F64
    fwd_ranks: Ranks
    close: F64
    open: F64 | None
    executable: npt.NDArray[np.bool_]  # may the decision of row t hold a position
    hold_rows: npt.NDArray[np.bool_]  # (T,) rows without rebalancing
    funding: F64 | None
    ppy: float
    n_obs: int

    @classmethod
    def build(cls, panel: Panel, cfg: _ScoreCfg) -> ScoreContext:
        """Compute the context of ``panel`` once."""
        fwd = forward_returns(panel, (cfg.horizon,), cfg.lag)[0]
        hold = np.zeros(panel.T, dtype=bool)  # (T,) rows without rebalancing
        if cfg.rebalance_every > 1:
            hold = np.arange(panel.T) % cfg.rebalance_every != 0
        return cls(fwd, rank_rows(fwd), panel["close"], panel.fields.get("open"),
                   executable_mask(panel, cfg.lag), hold, funding_of(panel),
                   float(panel.periods_per_year), int(panel.T))  # fmt: skip


def score_with(values: F64, ctx: ScoreContext, cfg: _ScoreCfg,
               ranks: Ranks | None = None) -> dict[str, float]:  # fmt: skip
    """Lean score from a context: 1-horizon RankIC mean / t-stat and the sign-aligned
    long-short Sharpe after fees and slippage (annualized).

    Args:
        values: (T, N) factor values on the context's Panel.
        ctx: the Panel's ``ScoreContext``.
        cfg: horizon, lag, fee_bps, slippage_bps, rebalance_every.
        ranks: ``rank_rows(values)`` when the caller has it already.

    RankIC per row equals ``ic.cs_ic(values, fwd, "spearman", 3)``; weights are computed on
    the rebalance rows only, then limited to executable decisions (engine.tradable) and run
    with the panel's funding: the Sharpe equals ``alphaforge backtest`` of ``sign * values``
    with the rank scheme and the same settings (engine.portfolio.factor_weights).
    """
    r = rank_rows(values) if ranks is None else ranks
    ic_rows = rank_corr_rows(r, ctx.fwd_ranks, MIN_OBS)
    summ = ic.ic_summary(ic_rows, cfg.horizon)
    sign = 1.0 if not (summ["mean"] < 0) else -1.0
    w = np.full(values.shape, np.nan)
    trade = np.flatnonzero(~ctx.hold_rows)
    w[trade] = weights_from_signals(sign * values[trade], "rank")
    mask_weights(w, ctx.executable)
    res = run_backtest(w, close=ctx.close, open=ctx.open, lag=cfg.lag, fee_bps=cfg.fee_bps,
                       slippage_bps=cfg.slippage_bps, funding=ctx.funding)  # fmt: skip
    return {"rank_ic": float(summ["mean"]), "t_stat": float(summ["t_stat"]),
            "sharpe": float(sharpe_ratio(res.returns, ctx.ppy)),
            "sign": sign, "n_obs": ctx.n_obs, "ppy": ctx.ppy}  # fmt: skip


def rank_rows(values: F64, min_obs: int = MIN_OBS) -> Ranks:
    """Row ranks (T, N) float32 and row scales (T,) of (T, N) ``values`` (``propose_nb``):
    counted on rows of up to ``COUNT_ROW`` values, from a row-wise sort on longer ones."""
    x = np.ascontiguousarray(values, np.float64)
    r = np.empty(x.shape, dtype=np.float32)
    sc: F64 = np.empty(x.shape[0])
    if x.shape[1] <= COUNT_ROW:
        run_ranges(lambda lo, hi: propose_nb.ranks_by_count(x, min_obs, r, sc, lo, hi),
                   x.shape[0], x.size)  # fmt: skip
        return r, sc
    order = ic.argsort_rows(x)
    run_ranges(lambda lo, hi: propose_nb.ranks_from_order(x, order, min_obs, r, sc, lo, hi),
               x.shape[0], x.size)  # fmt: skip
    return r, sc


def rank_corr_rows(a: Ranks, b: Ranks, min_obs: int = MIN_OBS) -> F64:
    """Per-row Spearman correlation (T,) of two factors given as ``rank_rows`` outputs.

    Equivalent to: ``ic.cs_ic(a_values, b_values, "spearman", min_obs)``.
    """
    out: F64 = np.empty(a[0].shape[0])
    run_ranges(lambda lo, hi: propose_nb.rank_corr_rows(a[0], a[1], b[0], b[1], min_obs, out,
                                                        lo, hi),
               out.shape[0], a[0].size)  # fmt: skip
    return out


class RankSet:
    """Named factors kept as row ranks (float32) and row scales, for the redundancy check.

    Members live in one stacked (L, T, N) array (``capacity`` rows reserved, then grown 8 at
    a time), so a candidate is compared with all of them in one kernel call.
    """

    def __init__(self, min_obs: int = MIN_OBS, capacity: int = 8) -> None:
        self.min_obs, self.capacity = min_obs, max(int(capacity), 1)
        self._names: list[str] = []
        self._index: set[str] = set()
        self._r: npt.NDArray[np.float32] | None = None
        self._s: F64 | None = None

    def ranks(self, values: F64) -> Ranks:
        """Row ranks and scales of (T, N) ``values`` (compute once per candidate)."""
        return rank_rows(values, self.min_obs)

    def add(self, name: str, ranks: Ranks) -> None:
        """Keep ``ranks`` (from ``ranks()``) under ``name``."""
        k = len(self._names)
        if self._r is None or self._s is None or k == self._r.shape[0]:
            cap = max(self.capacity, k + 8)
            r = np.empty((cap, *ranks[0].shape), dtype=np.float32)
            s = np.empty((cap, ranks[1].shape[0]))
            if self._r is not None and self._s is not None:
                r[:k], s[:k] = self._r[:k], self._s[:k]
            self._r, self._s = r, s
        self._r[k], self._s[k] = ranks
        self._names.append(name)
        self._index.add(name)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def corrs(self, z: Ranks, start: int = 0, stop: int | None = None) -> F64:
        """Mean over rows of the Spearman correlation of ``z`` with members[start:stop]."""
        k = len(self._names) if stop is None else min(stop, len(self._names))
        if k <= start or self._r is None or self._s is None:
            return np.empty(0)
        rbs, sbs, mo = self._r[start:k], self._s[start:k], self.min_obs
        out: F64 = np.empty(k - start)
        run_ranges(lambda lo, hi: propose_nb.rank_corr_means(z[0], z[1], rbs, sbs, mo, out,
                                                             lo, hi),
                   k - start, rbs.size)  # fmt: skip
        return out

    def first_above(self, z: Ranks, limit: float, batch: int = 8) -> tuple[str, float] | None:
        """The first member whose |mean row rank correlation| with ``z`` exceeds ``limit``
        (members compared ``batch`` at a time in one kernel call; stops at the first hit)."""
        for start in range(0, len(self._names), batch):
            for j, c in enumerate(self.corrs(z, start, start + batch)):
                if abs(c) > limit:
                    return self._names[start + j], float(c)
        return None


class TailLookahead:
    """Lookahead check on the last ``rows`` rows of a Panel with the perturbed copies cached.

    ``leak(fn)`` equals ``check_lookahead(fn, tail, n_cuts=cuts, seed=seed)``: the same cuts,
    the same noise (``perturb_after(tail, cut, seed + k)``), an exact comparison.
    """

    def __init__(self, panel: Panel, seed: int, rows: int = LOOKAHEAD_ROWS,
                 cuts: int = LOOKAHEAD_CUTS) -> None:  # fmt: skip
        self.tail = panel.take_rows(slice(max(0, panel.T - rows), panel.T))
        self.cuts = _default_cuts(self.tail.T, cuts) if self.tail.T >= 2 else []
        perturber = Perturber(self.tail)
        self.perturbed = [perturber.after(c, seed + k) for k, c in enumerate(self.cuts)]

    def leak(self, fn: Callable[[Panel], F64]) -> int | None:
        """ts_us of the earliest row whose value changed when later rows changed, or None."""
        base = np.asarray(fn(self.tail), dtype=np.float64)
        first: tuple[int, int] | None = None
        for c, pert in zip(self.cuts, self.perturbed, strict=True):
            a, b = base[: c + 1], np.asarray(fn(pert), dtype=np.float64)[: c + 1]
            with np.errstate(invalid="ignore"):
                same = (np.abs(a - b) <= 0.0) | (np.isnan(a) & np.isnan(b))
            bad = np.flatnonzero(~same.all(axis=1))
            if bad.size and (first is None or (int(bad[0]), c) < first):
                first = (int(bad[0]), c)
        return None if first is None else int(self.tail.ts_us[first[0]])
