"""The operator table of the expression language: arity, integer arguments, look-back, kernel.

Every function callable in an expression is listed in ``OPS``. An ``OpSpec`` says

- ``arity``: the exact number of positional arguments;
- ``int_args``: argument positions that must be integer literals (windows, lags, spans,
  bucket counts) with their minimum value, checked at parse time;
- ``kind``: ``elem`` (elementwise), ``ts`` (time series, per column) or ``cs``
  (cross-sectional, per row);
- ``family`` and ``code``: which kernel of ``factors/expr/ops_nb.py`` computes it
  (``compile.py`` maps a family to its kernel function);
- ``lookback(ints)``: the bars of extra history the op adds on top of its inputs' look-back.

This module imports no numba so that parsing stays cheap; the kernels live in ``ops_nb``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# Kernel op codes (mirrored as constants in ops_nb; test_expr_ops checks they agree).
# unary family
NEG, ABS, LOG, SIGN, SQRT, NOT = 0, 1, 2, 3, 4, 5
# binary family
ADD, SUB, MUL, DIV, LT, LE, GT, GE, EQ, NE, AND, OR, MIN, MAX, POW, SPOW = range(16)
# ts_shift family
DELAY, DELTA, PCT = 0, 1, 2
# ts_window family
MEAN, SUM, STD, ZSCORE, TMIN, TMAX, ARGMIN, ARGMAX, RANK, SKEW, PROD, DECAY = range(12)
# ts_pair family
CORR, COV = 0, 1
# cs family
CS_RANK, CS_ZSCORE, CS_DEMEAN, CS_SCALE, CS_QUANTILE = range(5)

MAX_WINDOW = 1_000_000
"""Largest integer argument accepted (a window longer than the panel gives all NaN)."""

Family = Literal["unary", "binary", "where", "ts_shift", "ts_window", "ts_pair", "ts_ewm", "cs"]


def _zero(ints: tuple[int, ...]) -> int:
    return 0


def _window(ints: tuple[int, ...]) -> int:
    return ints[0] - 1


def _lag(ints: tuple[int, ...]) -> int:
    return ints[0]


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One operator of the language.

    Attributes:
        name: the function name in expressions.
        kind: ``elem``, ``ts`` or ``cs``.
        arity: exact number of arguments.
        int_args: ``(position, minimum)`` for each argument that must be an integer literal.
        family: kernel family in ``ops_nb``.
        code: op code within the family.
        lookback: extra history in bars given the integer arguments (in position order).
        doc: one line: what it computes, NaN and warm-up semantics.
    """

    name: str
    kind: Literal["elem", "ts", "cs"]
    arity: int
    int_args: tuple[tuple[int, int], ...]
    family: Family
    code: int
    lookback: Callable[[tuple[int, ...]], int]
    doc: str

    @property
    def int_positions(self) -> tuple[int, ...]:
        """Positions of integer-literal arguments."""
        return tuple(p for p, _ in self.int_args)


def _elem(name: str, arity: int, family: Family, code: int, doc: str) -> OpSpec:
    return OpSpec(name, "elem", arity, (), family, code, _zero, doc)


def _ts(name: str, family: Family, code: int, min_w: int, doc: str, arity: int = 2) -> OpSpec:
    look = _lag if family == "ts_shift" else _window
    return OpSpec(name, "ts", arity, ((arity - 1, min_w),), family, code, look, doc)


def _cs(name: str, code: int, doc: str, arity: int = 1) -> OpSpec:
    ints = ((1, 1),) if arity == 2 else ()
    return OpSpec(name, "cs", arity, ints, "cs", code, _zero, doc)


_SPECS = [
    _elem("abs", 1, "unary", ABS, "|x|"),
    _elem("log", 1, "unary", LOG, "natural log; NaN for x <= 0"),
    _elem("sign", 1, "unary", SIGN, "-1, 0 or 1; NaN stays NaN"),
    _elem("sqrt", 1, "unary", SQRT, "square root; NaN for x < 0"),
    _elem("power", 2, "binary", POW, "x ** y; NaN where the result is not finite or real"),
    _elem("signed_power", 2, "binary", SPOW, "sign(x) * |x| ** y (the paper's SignedPower)"),
    _elem("min", 2, "binary", MIN, "elementwise minimum; NaN if either is NaN"),
    _elem("max", 2, "binary", MAX, "elementwise maximum; NaN if either is NaN"),
    _elem("clip", 3, "binary", MIN, "min(max(x, lo), hi); NaN if any is NaN"),
    _elem("where", 3, "where", 0, "b if cond != 0 else c; NaN where cond is NaN"),
    _ts("ts_delay", "ts_shift", DELAY, 0, "x[t - d]; lag d >= 0; NaN for the first d rows"),
    _ts("ts_delta", "ts_shift", DELTA, 1, "x[t] - x[t - d]"),
    _ts("ts_pct_change", "ts_shift", PCT, 1, "x[t] / x[t - d] - 1; NaN where x[t - d] == 0"),
    _ts("ts_mean", "ts_window", MEAN, 1, "rolling mean over w rows"),
    _ts("ts_sum", "ts_window", SUM, 1, "rolling sum over w rows"),
    _ts("ts_std", "ts_window", STD, 2, "rolling sample standard deviation (ddof=1)"),
    _ts("ts_zscore", "ts_window", ZSCORE, 2, "(x - ts_mean) / ts_std; NaN when std is 0"),
    _ts("ts_min", "ts_window", TMIN, 1, "rolling minimum"),
    _ts("ts_max", "ts_window", TMAX, 1, "rolling maximum"),
    _ts("ts_argmin", "ts_window", ARGMIN, 1, "1-based position of the minimum, oldest = 1"),
    _ts("ts_argmax", "ts_window", ARGMAX, 1, "1-based position of the maximum, oldest = 1"),
    _ts("ts_rank", "ts_window", RANK, 1, "percentile rank of x[t] in its window, in (0, 1]"),
    _ts("ts_skew", "ts_window", SKEW, 3, "rolling bias-corrected skewness"),
    _ts("ts_product", "ts_window", PROD, 1, "rolling product"),
    _ts("ts_decay_linear", "ts_window", DECAY, 1, "weighted mean, weights w..1 newest first"),
    _ts("ts_corr", "ts_pair", CORR, 2, "rolling Pearson correlation of x and y", arity=3),
    _ts("ts_cov", "ts_pair", COV, 2, "rolling sample covariance (ddof=1)", arity=3),
    _ts("ts_ewm", "ts_ewm", 0, 1, "EWMA, alpha = 2/(span+1), NaN until span values"),
    _cs("cs_rank", CS_RANK, "percentile rank across assets, in (0, 1], ties averaged"),
    _cs("cs_zscore", CS_ZSCORE, "(x - row mean) / row std (ddof=1)"),
    _cs("cs_demean", CS_DEMEAN, "x - row mean"),
    _cs("cs_scale", CS_SCALE, "x / sum(|x|) across the row"),
    _cs("cs_quantile", CS_QUANTILE, "bucket 1..q of x within its row (pd.qcut)", arity=2),
]

OPS: dict[str, OpSpec] = {s.name: s for s in _SPECS}
"""Every callable operator, by name."""

UNARY_OPS = {"-": NEG, "not": NOT}
"""Prefix operators -> unary kernel code."""

BINARY_OPS = {
    "+": ADD,
    "-": SUB,
    "*": MUL,
    "/": DIV,
    "<": LT,
    "<=": LE,
    ">": GT,
    ">=": GE,
    "==": EQ,
    "!=": NE,
    "and": AND,
    "or": OR,
}
"""Infix operators -> binary kernel code."""

KEYWORDS = frozenset({"and", "or", "not"})
"""Reserved words (boolean operators), never field or function names."""
