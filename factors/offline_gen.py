"""Offline candidate generator: a seeded search over the expression language.

Used when no LLM key is set, and as the baseline an LLM must beat. Two phases per call:
- enumerative: templates ``wrap(ts_op(feature, window))`` drawn in a seeded order without
  repetition from a fixed grammar of features, time-series operators, windows and
  cross-sectional wrappers;
- genetic (when elites exist): mutation of an elite (window, feature, operator, wrapper or
  sign changed) and crossover of two elites (``cs_rank(a) + cs_rank(b)``).
Every output is expression text that goes through the same parser and gates as an LLM's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np

from alphaforge.factors.propose_parse import Candidate

FEATURES: tuple[str, ...] = (
    "returns", "close / ts_delay(close, 1) - 1", "volume", "quote_volume", "trades",
    "taker_buy_volume / volume", "(close - vwap) / vwap", "(high - low) / close",
    "close / open - 1", "(close - low) / (high - low)",
)  # fmt: skip
TS_OPS: tuple[str, ...] = (
    "ts_mean({x}, {w})", "ts_zscore({x}, {w})", "ts_delta({x}, {w})", "ts_rank({x}, {w})",
    "ts_std({x}, {w})", "ts_sum({x}, {w})", "ts_decay_linear({x}, {w})",
)  # fmt: skip
WINDOWS: tuple[int, ...] = (3, 5, 10, 20, 60)
WRAPS: tuple[str, ...] = ("cs_rank({e})", "cs_zscore({e})", "-cs_rank({e})", "{e}")
_WINDOW = re.compile(r"(, )(\d+)\)")


class OfflineGenerator:
    """Seeded enumerative + genetic proposals (see module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        grid = list(itertools.product(range(len(WRAPS)), range(len(TS_OPS)),
                                      range(len(FEATURES)), range(len(WINDOWS))))  # fmt: skip
        order = self.rng.permutation(len(grid))
        self._queue = [grid[i] for i in order]
        self._emitted: set[str] = set()

    @staticmethod
    def render(wrap: int, op: int, feat: int, win: int) -> str:
        """The expression of one template point."""
        inner = TS_OPS[op].format(x=FEATURES[feat], w=WINDOWS[win])
        return WRAPS[wrap].format(e=inner)

    def _mutate(self, expr: str) -> str:
        kind = self.rng.integers(4)
        if kind == 0 and _WINDOW.search(expr):
            w = int(self.rng.choice(WINDOWS))
            return _WINDOW.sub(lambda m: f"{m.group(1)}{w})", expr, count=1)
        if kind == 1:
            return expr[1:] if expr.startswith("-") else f"-{expr}"
        if kind == 2:
            for f in sorted(FEATURES, key=len, reverse=True):
                if f in expr:
                    return expr.replace(f, str(self.rng.choice(FEATURES)), 1)
        return f"cs_rank(ts_mean({expr}, {int(self.rng.choice(WINDOWS))}))"

    def propose(self, n: int, elites: Sequence[str] = ()) -> list[Candidate]:
        """Up to ``n`` new candidates (never one emitted before by this generator)."""
        out: list[Candidate] = []
        n_genetic = n // 2 if elites else 0
        tries = 0
        while len(out) < n_genetic and tries < 20 * n:
            tries += 1
            if len(elites) >= 2 and self.rng.random() < 0.4:
                a, b = self.rng.choice(len(elites), 2, replace=False)
                expr = f"cs_rank({elites[a]}) + cs_rank({elites[b]})"
            else:
                expr = self._mutate(str(elites[int(self.rng.integers(len(elites)))]))
            if expr not in self._emitted:
                self._emitted.add(expr)
                out.append(Candidate(f"gen_{len(self._emitted)}", expr, "genetic"))
        while len(out) < n and self._queue:
            expr = self.render(*self._queue.pop())
            if expr not in self._emitted:
                self._emitted.add(expr)
                out.append(Candidate(f"enum_{len(self._emitted)}", expr, "enumerative"))
        return out
