"""Lookahead detection: does a factor's value at row t change when only rows after t change?

For a factor (expression text, AST, library ``Factor`` or any Python callable Panel -> (T, N)):

1. evaluate it on the full Panel;
2. for each cut row c, replace every value of every field (and of the book, if any) at rows > c
   by noise, and evaluate again;
3. any difference at a row <= c is a leak: the factor read data from after its decision time.

The noise replaces signed fields by independent normal draws at each column's scale and multiplies
non-negative fields (prices, volumes, book levels) by ``exp(N(0, 1))``, so it moves means,
variances, ranks and signs; NaN stays NaN (the listing pattern is kept, so a factor that leaks
only through *which* future values are missing is not detected). Comparison is exact (NaN
equals NaN) unless ``atol`` is given: expression kernels scan forward, so values at or before
the cut are bit-identical when the factor is causal.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import BookLevels, Panel
from alphaforge.factors.errors import LookaheadError
from alphaforge.factors.expr.compile import compile_expr
from alphaforge.factors.expr.nodes import Node

F64 = npt.NDArray[np.float64]


class HasExpr(Protocol):
    """Anything with an expression text, e.g. a library ``Factor``."""

    @property
    def expr(self) -> str: ...


FactorLike = str | Node | HasExpr | Callable[[Panel], F64]


@dataclass(frozen=True, slots=True)
class CutResult:
    """The outcome at one cut.

    Attributes:
        cut: the last row left intact (rows > cut were replaced by noise).
        cut_ts_us: ``ts_us[cut]``, UTC microseconds.
        n_changed: number of (row, asset) cells at rows <= cut whose value changed.
        first_row: first changed row, or None.
        first_ts_us: ``ts_us[first_row]``, or None.
    """

    cut: int
    cut_ts_us: int
    n_changed: int
    first_row: int | None
    first_ts_us: int | None


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """Result of ``check_lookahead``.

    Attributes:
        leaks: True when any cut changed a value at or before it.
        first_leak_ts_us: the earliest leaking row's timestamp over all cuts (UTC us), or None.
        first_leak_cut: the cut row whose perturbation revealed that earliest leak, or None.
        details: one ``CutResult`` per cut, in cut order.
    """

    leaks: bool
    first_leak_ts_us: int | None
    first_leak_cut: int | None
    details: tuple[CutResult, ...]

    def raise_if_leaks(self, name: str = "factor") -> None:
        """Raise ``LookaheadError`` describing the first leak, if any."""
        if self.leaks:
            raise LookaheadError(
                f"{name} reads future data: its value at ts_us={self.first_leak_ts_us} changed "
                f"when rows after row {self.first_leak_cut} were replaced by noise"
            )


def _as_callable(factor: object) -> Callable[[Panel], F64]:
    expr = getattr(factor, "expr", None)  # a library Factor
    if isinstance(expr, str):
        factor = expr
    if isinstance(factor, str | Node):
        return compile_expr(factor)
    if callable(factor):
        return factor
    raise LookaheadError(
        f"factor must be an expression, a Node, a Factor or a callable; got {type(factor)}"
    )


def _noise(a: F64, cut: int, rng: np.random.Generator) -> F64:
    """A copy of ``a`` (rows first) with rows > cut replaced by noise; NaN stays NaN.

    Fields with negative values (returns, funding, imbalances) get independent normal draws at
    the column's scale, so signs change too; non-negative fields (prices, volumes, book levels)
    are multiplied by ``exp(N(0, 1))`` (zeros get ``|N(0, 1)|`` x scale) and stay non-negative.
    """
    out = np.array(a, dtype=np.float64, copy=True)
    tail = out[cut + 1 :]
    if tail.size == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        spread = np.nanstd(a, axis=0)
    scale = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    draw = rng.normal(0.0, 1.0, tail.shape)
    finite = np.isfinite(a)
    if (a[finite] < 0).any():
        tail[...] = np.where(np.isnan(tail), np.nan, draw * scale)
    else:
        tail[...] = np.where(tail == 0.0, np.abs(draw) * scale, tail * np.exp(draw))
    return out


def perturb_after(panel: Panel, cut: int, seed: int = 0) -> Panel:
    """A copy of ``panel`` whose values at rows > ``cut`` are noise (fields and book).

    Args:
        panel: the Panel.
        cut: last row kept intact, 0 <= cut < T.
        seed: noise seed.
    """
    rng = np.random.default_rng(seed)
    fields = {k: _noise(v, cut, rng) for k, v in sorted(panel.fields.items())}
    book = None
    if panel.book is not None:
        b = panel.book
        book = BookLevels(
            *(_noise(a, cut, rng) for a in (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty))
        )
    return Panel(panel.ts_us, panel.symbols, fields, book, panel.interval_us, panel.meta)


def _default_cuts(n_rows: int, n_cuts: int) -> list[int]:
    cuts = np.linspace(n_rows * 0.2, n_rows - 2, n_cuts).astype(np.int64)
    return sorted({int(c) for c in cuts})


def _evaluate(fn: Callable[[Panel], F64], panel: Panel) -> F64:
    out = np.asarray(fn(panel), dtype=np.float64)
    if out.shape != (panel.T, panel.N):
        raise LookaheadError(
            f"factor returned shape {out.shape}; expected (T, N) = {panel.T, panel.N}"
        )
    return out


def check_lookahead(
    factor: FactorLike,
    panel: Panel,
    cuts: Sequence[int] | None = None,
    seed: int = 0,
    *,
    n_cuts: int = 4,
    atol: float = 0.0,
) -> LookaheadReport:
    """Check a factor for lookahead by perturbing the Panel after several cut rows.

    Args:
        factor: expression text, AST, library ``Factor`` or callable ``Panel -> (T, N)``.
        panel: the Panel to test on (more rows and assets make a stronger test).
        cuts: rows to cut after (each 0 <= c <= T - 2); default ``n_cuts`` rows spread
            between 20% of T and T - 2.
        seed: seed of the noise (cut k uses ``seed + k``).
        n_cuts: number of default cuts.
        atol: absolute tolerance of the comparison (0: exact, NaN equals NaN).

    Returns:
        A ``LookaheadReport``.

    Raises:
        LookaheadError: a panel shorter than 2 rows, a cut out of range, a factor that does not
            return a (T, N) array.
        ExprError: malformed expression text.
    """
    fn = _as_callable(factor)
    if panel.T < 2:
        raise LookaheadError(f"lookahead check needs at least 2 rows; panel has {panel.T}")
    cut_rows = list(cuts) if cuts is not None else _default_cuts(panel.T, n_cuts)
    for c in cut_rows:
        if not 0 <= int(c) <= panel.T - 2:
            raise LookaheadError(f"cut {c} out of range [0, {panel.T - 2}]")
    base = _evaluate(fn, panel)
    details: list[CutResult] = []
    for k, c in enumerate(cut_rows):
        c = int(c)
        out = _evaluate(fn, perturb_after(panel, c, seed + k))
        a, b = base[: c + 1], out[: c + 1]
        same = (np.abs(a - b) <= atol) | (np.isnan(a) & np.isnan(b))
        rows = np.flatnonzero(~same.all(axis=1))
        first = int(rows[0]) if rows.size else None
        details.append(
            CutResult(
                cut=c,
                cut_ts_us=int(panel.ts_us[c]),
                n_changed=int((~same).sum()),
                first_row=first,
                first_ts_us=None if first is None else int(panel.ts_us[first]),
            )
        )
    leaking = [d for d in details if d.first_row is not None]
    if not leaking:
        return LookaheadReport(False, None, None, tuple(details))
    worst = min(leaking, key=lambda d: (d.first_row, d.cut))
    return LookaheadReport(True, worst.first_ts_us, worst.cut, tuple(details))
