"""Lookahead detection: does a factor's value at row t depend on rows after t?

For a factor (expression text, AST, library ``Factor`` or any Python callable Panel -> (T, N))
two probes run at a set of cut rows c, each compared with the factor on the full Panel at
every row <= c (all rows, missing cells included: a value that appears or vanishes is a change):

- **truncation**: evaluate on the first c + 1 rows only. A causal factor gives the same values;
  one that reads any later row (its value, whether it exists, how many rows there are, a
  full-sample statistic) does not. It also catches leaks through *which* cells are missing,
  e.g. ranking only the assets that still have a price tomorrow.
- **perturbation**: replace every field (and the book) the factor reads at rows > c by noise
  and evaluate on the full-length panel (``factors.panel_reads`` records what it reads; if it
  reads more on a perturbed panel than on the data, everything is perturbed from then on).
  Signed fields get independent normal draws at each column's scale, non-negative ones are
  multiplied by ``exp(N(0, 1))``; 10 % of the finite cells become missing
  and every missing cell gets a value, so the missingness pattern moves as well.

Cuts (``plan_cuts``): every row of the first 32 (warm-up leaks back-filled from later data),
every row of a dense window of 512 rows starting where the factor first has a value (a leak on
1 % of random rows is missed by all 512 with probability 0.99^512 = 0.6 %), 16 cuts spread over
the panel and the last row but one. The dense and early cuts use truncation (each costs one
evaluation on a prefix); the spread cuts use both probes.

Tolerance: a change counts when it exceeds ``max(atol, rtol * scale)``, ``scale`` the largest
finite |value| of the factor (bit-identical values are expected from a deterministic causal
factor; the tolerance absorbs summation-order jitter of ~1e-15 x scale). The report names the
largest change, where it happened (row, time, symbol), the probe and the cut.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import BookLevels, Panel
from alphaforge.factors.errors import LookaheadError
from alphaforge.factors.expr.compile import compile_expr
from alphaforge.factors.expr.nodes import Node
from alphaforge.factors.panel_reads import BOOK, record_reads

F64 = npt.NDArray[np.float64]
Probe = Literal["truncate", "perturb"]

EARLY_ROWS = 32
"""Every one of the first rows is a truncation cut (warm-up leaks)."""
DENSE_ROWS = 512
"""Consecutive truncation cuts from the factor's first valid row (leaks on a few rows)."""
SPREAD_CUTS = 16
"""Cuts spread evenly over the panel, each with both probes."""
RTOL = 1e-9
"""Default tolerance relative to the factor's largest |value|."""
MIN_PREFIX_ROWS = 16
"""A factor that raises on a prefix shorter than this skips that cut instead of failing."""


class HasExpr(Protocol):
    """Anything with an expression text, e.g. a library ``Factor``."""

    @property
    def expr(self) -> str: ...


FactorLike = str | Node | HasExpr | Callable[[Panel], F64]


@dataclass(frozen=True, slots=True)
class Change:
    """One changed cell: where, how much, and which probe at which cut revealed it.

    Attributes:
        row, ts_us, symbol: the cell (ts_us in UTC microseconds).
        size: |full - probed| (inf when the value appeared or vanished).
        probe: "truncate" or "perturb". cut: the last row left intact.
    """

    row: int
    ts_us: int
    symbol: str
    size: float
    probe: str
    cut: int


@dataclass(frozen=True, slots=True)
class CutResult:
    """The outcome of one probe at one cut.

    Attributes:
        cut: the last row left intact (rows > cut removed or replaced by noise).
        cut_ts_us: ``ts_us[cut]``, UTC microseconds.
        probe: "truncate" or "perturb".
        n_changed: number of (row, asset) cells at rows <= cut whose value changed.
        first_row: first changed row, or None.
        first_ts_us: ``ts_us[first_row]``, or None.
        max_change: the largest change (inf for a value that appeared or vanished; 0 if none).
    """

    cut: int
    cut_ts_us: int
    n_changed: int
    first_row: int | None
    first_ts_us: int | None
    probe: str = "perturb"
    max_change: float = 0.0


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """Result of ``check_lookahead``.

    Attributes:
        leaks: True when any probe changed a value at or before its cut by more than
            ``tolerance``.
        first_leak_ts_us: the earliest leaking row's timestamp over all cuts (UTC us), or None.
        first_leak_cut: the cut whose probe revealed that earliest leak, or None.
        details: one ``CutResult`` per (cut, probe), in cut order.
        largest: the largest change over every probe (None without a leak).
        tolerance: the absolute tolerance used.
        n_skipped: truncation cuts skipped because the factor raised on a very short prefix.
    """

    leaks: bool
    first_leak_ts_us: int | None
    first_leak_cut: int | None
    details: tuple[CutResult, ...]
    largest: Change | None = None
    tolerance: float = 0.0
    n_skipped: int = 0

    @property
    def n_cuts(self) -> int:
        """Number of distinct cut rows probed."""
        return len({d.cut for d in self.details})

    def describe(self, name: str = "factor") -> str:
        """One sentence: the verdict, with the largest change and where it happened."""
        if not self.leaks or self.largest is None:
            return (f"{name}: no value changed at or before any of {self.n_cuts} cuts when "
                    f"later rows were removed or replaced by noise "
                    f"(tolerance {self.tolerance:.3g})")  # fmt: skip
        c = self.largest
        when = _iso(c.ts_us)
        size = "appeared or vanished" if math.isinf(c.size) else f"changed by {c.size:.6g}"
        how = (f"only the first {c.cut + 1} rows were kept" if c.probe == "truncate"
               else f"rows after row {c.cut} were replaced by noise")  # fmt: skip
        n_bad = sum(d.n_changed for d in self.details)
        n_hit = sum(d.n_changed > 0 for d in self.details)
        return (f"{name} reads future data: its value at {when} (row {c.row}, {c.symbol}) {size} "
                f"(tolerance {self.tolerance:.3g}) when {how}; first affected time "
                f"ts_us={self.first_leak_ts_us}; {n_bad} cell(s) changed over "
                f"{n_hit} of {len(self.details)} probes")  # fmt: skip

    def raise_if_leaks(self, name: str = "factor") -> None:
        """Raise ``LookaheadError`` describing the largest and the first leak, if any."""
        if self.leaks:
            raise LookaheadError(self.describe(name))


def _iso(ts_us: int) -> str:
    import datetime as dt

    t = dt.datetime.fromtimestamp(ts_us / 1e6, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


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


def nanmedian_rows(x: F64) -> F64:
    """``np.nanmedian(x, axis=0)`` (bit for bit) by one sort along the rows: numpy's version
    runs a Python-level loop over the columns of an array holding NaN. All-NaN columns: NaN."""
    s = np.sort(x, axis=0)  # NaN sorts last
    k = (~np.isnan(x)).sum(axis=0)
    lo = np.maximum((k - 1) // 2, 0)[None]
    hi = np.maximum(k // 2, 0)[None]
    if s.shape[0] == 0:
        return np.full(x.shape[1:], np.nan)
    lo = np.minimum(lo, s.shape[0] - 1)
    hi = np.minimum(hi, s.shape[0] - 1)
    vlo = np.take_along_axis(s, lo, axis=0)[0]
    vhi = np.take_along_axis(s, hi, axis=0)[0]
    with np.errstate(invalid="ignore"):
        med = np.where(lo[0] == hi[0], vlo, (vlo + vhi) / 2.0)
    return np.where(k > 0, med, np.nan)


@dataclass(frozen=True, slots=True)
class _ColumnNoise:
    """Per-column noise parameters of one (T, ...) array (they read the whole array, so one
    computation serves every cut): ``scale`` the std (1 where unknown or 0), ``level`` the
    median of |a| (``scale`` where unknown or 0), ``known`` the columns with any finite value,
    ``signed`` whether any finite value is negative."""

    scale: F64
    level: F64
    known: npt.NDArray[np.bool_]
    signed: bool


def _column_noise(a: F64) -> _ColumnNoise:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        spread = np.nanstd(a, axis=0)
        level = nanmedian_rows(np.abs(a))
    known = np.isfinite(spread)
    scale = np.where(known & (spread > 0), spread, 1.0)
    level = np.where(np.isfinite(level) & (level > 0), level, scale)
    finite = np.isfinite(a)
    return _ColumnNoise(scale, level, known, bool((a[finite] < 0).any()))


def _noise(a: F64, cut: int, rng: np.random.Generator, col: _ColumnNoise) -> F64:
    """A copy of ``a`` (rows first) with rows > cut replaced by noise, missingness included.

    Fields with negative values (returns, funding, imbalances) get independent normal draws at
    the column's scale, so signs change too; non-negative fields (prices, volumes, book levels)
    are multiplied by ``exp(N(0, 1))`` (zeros and missing cells get the column's median times
    ``exp(N(0, 1))``) and stay non-negative. Then 10 % of the cells that had a value lose it, so
    which cells are missing after the cut changes as well. All-missing columns stay missing.
    ``col``: ``_column_noise(a)``.
    """
    out = np.array(a, dtype=np.float64, copy=True)
    tail = out[cut + 1 :]
    if tail.size == 0:
        return out
    draw = rng.normal(0.0, 1.0, tail.shape)
    drop = rng.random(tail.shape) < 0.1
    had = np.isfinite(tail)
    if col.signed:
        noisy = draw * col.scale
    else:
        base = np.where(had & (tail != 0.0), tail, col.level)
        noisy = base * np.exp(draw)
    tail[...] = np.where(col.known & ~(had & drop), noisy, np.nan)
    return out


class Perturber:
    """``perturb_after`` for many cuts of one Panel: the column statistics the noise is scaled
    by are computed once (they read whole columns), not once per cut.

    Each array's noise comes from its own stream, seeded by (seed, the array's place among the
    sorted field names and then the book's four arrays), so perturbing only some arrays gives
    them the same noise as perturbing all."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self._fields = {k: _column_noise(v) for k, v in panel.fields.items()}
        b = panel.book
        levels = () if b is None else (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty)
        self._book = None if b is None else [_column_noise(a) for a in levels]

    def after(self, cut: int, seed: int = 0, reads: Collection[str] | None = None) -> Panel:
        """``perturb_after(panel, cut, seed)``; with ``reads`` (field names, ``BOOK`` for the
        book: ``factors.panel_reads``) only those arrays are perturbed, the others are the
        panel's own (shared, not copied)."""
        p = self.panel
        names = sorted(p.fields)
        fields = {
            k: _noise(p.fields[k], cut, _stream(seed, i), self._fields[k])
            if reads is None or k in reads
            else p.fields[k]
            for i, k in enumerate(names)
        }
        book = p.book
        if book is not None and self._book is not None and (reads is None or BOOK in reads):
            arrays = (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty)
            book = BookLevels(*(_noise(a, cut, _stream(seed, len(names) + i), c)
                                for i, (a, c) in enumerate(zip(arrays, self._book,
                                                               strict=True))))  # fmt: skip
        return Panel(p.ts_us, p.symbols, fields, book, p.interval_us, p.meta)


def _stream(seed: int, place: int) -> np.random.Generator:
    """The noise stream of the array at ``place`` (``Perturber``)."""
    return np.random.default_rng([int(seed), place])


def perturb_after(panel: Panel, cut: int, seed: int = 0) -> Panel:
    """A copy of ``panel`` whose values at rows > ``cut`` are noise (fields and book).

    Args:
        panel: the Panel.
        cut: last row kept intact, 0 <= cut < T.
        seed: noise seed.
    """
    return Perturber(panel).after(cut, seed)


def _default_cuts(n_rows: int, n_cuts: int) -> list[int]:
    cuts = np.linspace(n_rows * 0.2, n_rows - 2, n_cuts).astype(np.int64)
    return sorted({int(c) for c in cuts})


def plan_cuts(n_rows: int, first_valid: int = 0) -> dict[int, tuple[Probe, ...]]:
    """The default cut rows and the probes run at each (see module docstring).

    Args:
        n_rows: T, rows of the panel (>= 2).
        first_valid: first row where the factor has a finite value.
    """
    last = n_rows - 2
    plan: dict[int, tuple[Probe, ...]] = {}
    for c in range(min(EARLY_ROWS, last + 1)):
        plan[c] = ("truncate",)
    for c in range(first_valid, min(first_valid + DENSE_ROWS, last + 1)):
        plan[c] = ("truncate",)
    for c in np.linspace(n_rows * 0.05, last, SPREAD_CUTS).astype(np.int64):
        plan[int(c)] = ("truncate", "perturb")
    plan[last] = ("truncate", "perturb")
    return dict(sorted(plan.items()))


def _evaluate(fn: Callable[[Panel], F64], panel: Panel) -> F64:
    out = np.asarray(fn(panel), dtype=np.float64)
    if out.shape != (panel.T, panel.N):
        raise LookaheadError(
            f"factor returned shape {out.shape} on a panel of {panel.T} rows x {panel.N} assets;"
            f" expected {(panel.T, panel.N)}: a factor must be computed from the panel it is "
            "given (precomputed values cannot be checked this way: pass them as an array with "
            "their availability times)"
        )
    return out


def _compare(base: F64, probed: F64, tol: float) -> tuple[npt.NDArray[np.bool_], F64]:
    """(changed cells, |change| with inf where a value appeared or vanished)."""
    a_ok, b_ok = np.isfinite(base), np.isfinite(probed)
    with np.errstate(invalid="ignore"):
        size = np.where(a_ok & b_ok, np.abs(base - probed), np.where(a_ok == b_ok, 0.0, np.inf))
    # +inf/-inf values equal in both: no change; different non-finite values: a change
    nonfinite_diff = ~a_ok & ~b_ok & ~((base == probed) | (np.isnan(base) & np.isnan(probed)))
    size = np.where(nonfinite_diff, np.inf, size)
    return size > tol, size


def check_lookahead(
    factor: FactorLike,
    panel: Panel,
    cuts: Sequence[int] | None = None,
    seed: int = 0,
    *,
    n_cuts: int | None = None,
    atol: float = 0.0,
    rtol: float = RTOL,
    probes: Sequence[Probe] = ("truncate", "perturb"),
) -> LookaheadReport:
    """Check a factor for lookahead by truncating and perturbing the Panel after cut rows.

    Args:
        factor: expression text, AST, library ``Factor`` or callable ``Panel -> (T, N)``.
        panel: the Panel to test on (more rows and assets make a stronger test).
        cuts: rows to cut after (each 0 <= c <= T - 2), each probed with ``probes``; default
            ``plan_cuts`` (or, with ``n_cuts``, that many perturbation cuts spread between
            20 % of T and T - 2, the lean check ``propose`` runs).
        seed: seed of the noise (the k-th perturbation uses ``seed + k``).
        atol, rtol: a change counts above ``max(atol, rtol * max|factor|)``.
        probes: the probes run at explicit ``cuts``.

    Returns:
        A ``LookaheadReport``; ``.describe()`` says what changed, by how much and where.

    Raises:
        LookaheadError: a panel shorter than 2 rows, a cut out of range, a factor that does not
            return a (T, N) array for the panel it is given.
        ExprError: malformed expression text.
    """
    fn = _as_callable(factor)
    if panel.T < 2:
        raise LookaheadError(f"lookahead check needs at least 2 rows; panel has {panel.T}")
    recorder = record_reads(panel)
    base = _evaluate(fn, recorder)
    reads: set[str] | None = set(recorder.reads)  # what to perturb (None: everything)
    finite = np.isfinite(base)
    scale = float(np.max(np.abs(base), where=finite, initial=0.0)) if finite.any() else 0.0
    tol = max(float(atol), float(rtol) * scale)
    if cuts is not None:
        plan = {int(c): tuple(probes) for c in cuts}
    elif n_cuts is not None:
        plan = {c: ("perturb",) for c in _default_cuts(panel.T, n_cuts)}
    else:
        rows = np.flatnonzero(finite.any(axis=1))
        plan = plan_cuts(panel.T, int(rows[0]) if rows.size else 0)
    for c in plan:
        if not 0 <= c <= panel.T - 2:
            raise LookaheadError(f"cut {c} out of range [0, {panel.T - 2}]")
    details: list[CutResult] = []
    largest: Change | None = None
    skipped = k = 0
    perturber: Perturber | None = None
    for c, kinds in plan.items():
        for probe in kinds:
            if probe == "truncate":
                try:
                    with warnings.catch_warnings():  # e.g. "mean of empty slice" on a prefix
                        warnings.simplefilter("ignore")
                        out = _evaluate(fn, panel.take_rows(slice(0, c + 1)))
                except LookaheadError:
                    raise
                except Exception as exc:
                    if c + 1 < MIN_PREFIX_ROWS:
                        skipped += 1
                        continue
                    raise LookaheadError(
                        f"factor raised {type(exc).__name__} on the first {c + 1} rows: {exc}"
                    ) from exc
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    perturber = perturber or Perturber(panel)
                    probed = record_reads(perturber.after(c, seed + k, reads))
                    out = _evaluate(fn, probed)
                    if reads is not None and not probed.reads <= reads:
                        # it read on noise what it had not read on the data: perturb all
                        reads = None
                        out = _evaluate(fn, perturber.after(c, seed + k))
                k += 1
            changed, size = _compare(base[: c + 1], out[: c + 1], tol)
            rows = np.flatnonzero(changed.any(axis=1))
            first = int(rows[0]) if rows.size else None
            biggest = float(size[changed].max()) if rows.size else 0.0
            details.append(CutResult(c, int(panel.ts_us[c]), int(changed.sum()), first,
                                     None if first is None else int(panel.ts_us[first]),
                                     probe, biggest))  # fmt: skip
            if rows.size and (largest is None or biggest > largest.size):
                r, j = np.unravel_index(int(np.argmax(np.where(changed, size, -1.0))), size.shape)
                largest = Change(int(r), int(panel.ts_us[r]), str(panel.symbols[j]), biggest,
                                 probe, c)  # fmt: skip
    leaking = [d for d in details if d.first_row is not None]
    if not leaking:
        return LookaheadReport(False, None, None, tuple(details), None, tol, skipped)
    worst = min(leaking, key=lambda d: (d.first_row, d.cut))
    return LookaheadReport(True, worst.first_ts_us, worst.cut, tuple(details), largest, tol,
                           skipped)  # fmt: skip
