"""Probability of Backtest Overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, Lopez de Prado and Zhu (2015), "The Probability of Backtest Overfitting".
The T x N matrix of trial returns is cut into S contiguous blocks. For every split of the
blocks into two halves (in-sample J, out-of-sample J-bar), the trial with the best in-sample
Sharpe is located in the out-of-sample ranking: omega = rank / (N + 1), logit = ln(omega /
(1 - omega)). PBO is the fraction of splits whose logit is <= 0, i.e. where the in-sample
winner is at or below the out-of-sample median.

Formula: PBO = #{c : logit_c <= 0} / #splits.
NaN: missing returns are left out of their block (``block_stats``); trials with a non-finite
Sharpe in a half (no return there, or zero variance) are ranked last there; fewer than 2 trials
gives NaN.

It works from per-block sums (sum, sum of squares, count of returns per trial and block), so a
sweep never needs to keep every trial's full return series.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from math import comb

import numpy as np
import numpy.typing as npt

from alphaforge.factors.errors import ScoreError

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PBOResult:
    """pbo, the logits of every split, and the number of splits used (sampled if many)."""

    pbo: float
    logits: F64
    n_splits: int
    n_trials: int


def block_stats(returns: F64, n_blocks: int) -> tuple[F64, F64, F64]:
    """(sum, sum of squares, count) per (trial, block) of a (T, N) return matrix -> (N, S).

    NaN: a missing return is left out of its block's sums and count (a trial that did not
    trade a bar is not poisoned for the whole split); a block with no finite return of a
    trial gets count 0, so that trial's Sharpe in a half is computed from its other blocks.
    """
    r = np.asarray(returns, dtype=np.float64)
    edges = np.linspace(0, r.shape[0], n_blocks + 1).astype(np.int64)
    ok = np.isfinite(r)
    z = np.where(ok, r, 0.0)
    s = np.add.reduceat(z, edges[:-1], axis=0).T
    ss = np.add.reduceat(z * z, edges[:-1], axis=0).T
    cnt = np.add.reduceat(ok.astype(np.float64), edges[:-1], axis=0).T
    return s, ss, cnt


def _sharpe(mask: F64, s: F64, ss: F64, cnt: F64) -> F64:
    n = mask @ cnt.T
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (mask @ s.T) / n
        var = (mask @ ss.T) / n - mean**2
        return mean / np.sqrt(np.maximum(var, 0.0))


def _blocks(block_sum: F64, block_sumsq: F64, block_n: F64) -> tuple[F64, F64, F64]:
    """The three (N, S) block arrays as float64, checked to share one shape."""
    s = np.asarray(block_sum, dtype=np.float64)
    ss = np.asarray(block_sumsq, dtype=np.float64)
    cnt = np.asarray(block_n, dtype=np.float64)
    if s.ndim != 2 or s.shape != ss.shape or s.shape != cnt.shape:
        raise ScoreError(f"block arrays must share one (N, S) shape; got {s.shape}, {ss.shape}")
    return s, ss, cnt


def _logits(sr_in: F64, sr_out: F64, n_trials: int) -> F64:
    """Per split: logit of the in-sample winner's relative out-of-sample rank (non-finite
    Sharpe ratios ranked last)."""
    from scipy import stats  # on first use: most commands never compute a PBO

    best = np.argmax(np.where(np.isfinite(sr_in), sr_in, -np.inf), axis=1)
    ranks = stats.rankdata(np.where(np.isfinite(sr_out), sr_out, -np.inf), axis=1,
                           method="average")  # fmt: skip
    omega = ranks[np.arange(sr_in.shape[0]), best] / (n_trials + 1)
    return np.asarray(np.log(omega / (1.0 - omega)), dtype=np.float64)


def pbo_from_blocks(block_sum: F64, block_sumsq: F64, block_n: F64, max_splits: int = 2000,
                    seed: int = 0) -> PBOResult:  # fmt: skip
    """PBO from per-block sums (each (N trials, S blocks), S even).

    Args:
        max_splits: when C(S, S/2) exceeds it, that many splits are drawn at random (seeded).

    Raises:
        ScoreError: an odd or < 2 number of blocks, or mismatched shapes.
    """
    s, ss, cnt = _blocks(block_sum, block_sumsq, block_n)
    n_trials, n_blocks = s.shape
    if n_blocks < 2 or n_blocks % 2:
        raise ScoreError(f"CSCV needs an even number of blocks >= 2; got {n_blocks}")
    if n_trials < 2:
        return PBOResult(math.nan, np.array([]), 0, n_trials)
    half = n_blocks // 2
    total = comb(n_blocks, half)
    if total <= max_splits:
        combos = list(itertools.combinations(range(n_blocks), half))
    else:
        rng = np.random.default_rng(seed)
        combos = [tuple(sorted(rng.choice(n_blocks, half, replace=False)))
                  for _ in range(max_splits)]  # fmt: skip
    mask = np.zeros((len(combos), n_blocks))
    for c, idx in enumerate(combos):
        mask[c, list(idx)] = 1.0
    logits = _logits(_sharpe(mask, s, ss, cnt), _sharpe(1.0 - mask, s, ss, cnt), n_trials)
    return PBOResult(float(np.mean(logits <= 0)), logits, len(combos), n_trials)


def pbo(returns: F64, n_blocks: int = 16, max_splits: int = 2000, seed: int = 0) -> PBOResult:
    """PBO of a (T, N) matrix of trial returns (see module docstring)."""
    return pbo_from_blocks(*block_stats(returns, n_blocks), max_splits=max_splits, seed=seed)


def walk_forward_pbo_from_blocks(block_sum: F64, block_sumsq: F64, block_n: F64,
                                 min_train_blocks: int | None = None) -> PBOResult:  # fmt: skip
    """PBO on expanding walk-forward splits of the same blocks CSCV uses.

    For k = min_train_blocks .. S - 1: the trial with the best Sharpe over blocks [0, k) is
    ranked among all trials' Sharpe in block k (the next window, out of sample); the logit of
    its relative rank is taken as in CSCV and PBO is the fraction of windows with logit <= 0.
    The sweep's trials are realised portfolio returns, so adjacent blocks share no label and no
    purge is needed. ``min_train_blocks`` defaults to S // 4 (at least 1).

    Raises:
        ScoreError: mismatched shapes or fewer than 2 blocks.
    """
    s, ss, cnt = _blocks(block_sum, block_sumsq, block_n)
    n_trials, n_blocks = s.shape
    if n_blocks < 2:
        raise ScoreError(f"walk-forward PBO needs >= 2 blocks; got {n_blocks}")
    if n_trials < 2:
        return PBOResult(math.nan, np.array([]), 0, n_trials)
    first = max(1, n_blocks // 4 if min_train_blocks is None else int(min_train_blocks))
    ks = list(range(first, n_blocks))
    train = np.array([[1.0 if b < k else 0.0 for b in range(n_blocks)] for k in ks])
    test = np.array([[1.0 if b == k else 0.0 for b in range(n_blocks)] for k in ks])
    logits = _logits(_sharpe(train, s, ss, cnt), _sharpe(test, s, ss, cnt), n_trials)
    return PBOResult(float(np.mean(logits <= 0)), logits, len(ks), n_trials)
