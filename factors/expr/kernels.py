"""The expression language's kernels as the plan calls them: each takes its (T, N) float64
result from ``alloc`` and runs a ``nogil`` range kernel of ``ops_nb`` / ``ts_nb`` over ranges
of rows, column blocks or cells on the shared threads (``pool.run_ranges``). Inputs are
C-ordered float64, (T, N) or (1, 1) where an op broadcasts a scalar.

Each takes ``alloc(shape)``, which returns the C-ordered float64 array the result is written to
(default ``np.empty``): a plan passes its pool of freed intermediates (``compile.BufferPool``),
since on this kind of machine touching newly mapped memory costs more than the kernels' own
work. Every kernel writes every cell of its result, so a recycled buffer's old values never
show through.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from alphaforge.engine.pool import run_ranges
from alphaforge.factors.expr import ops_nb, ts_nb

F64 = npt.NDArray[np.float64]
Alloc = Callable[[tuple[int, ...]], F64]
"""Returns a writable C-ordered float64 array of the given shape (contents undefined)."""

ARITH_CHUNK = 8192
"""Cells per range boundary of ``arith`` (ranges start on whole chunks)."""


def _blocks(n_cols: int) -> int:
    return (n_cols + ts_nb.BLOCK - 1) // ts_nb.BLOCK


def unary(x: F64, code: int, alloc: Alloc = np.empty) -> F64:
    """``ops_nb.unary_rows`` over all rows."""
    out = alloc(x.shape)
    run_ranges(lambda lo, hi: ops_nb.unary_rows(x, out, code, lo, hi), x.shape[0], x.size)
    return out


def arith(a: F64, b: F64, code: int, alloc: Alloc = np.empty) -> F64:
    """ADD, SUB, MUL or DIV of C-contiguous (T, N) ``a`` and ``b`` (T, N) or (1, 1)
    (``ops_nb.arith_cells``)."""
    out = alloc(a.shape)
    af, bf, of = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    run_ranges(lambda lo, hi: ops_nb.arith_cells(af, bf, of, lo, hi, code), af.size, af.size,
               ARITH_CHUNK)  # fmt: skip
    return out


def binary(a: F64, b: F64, code: int, alloc: Alloc = np.empty) -> F64:
    """Elementwise binary op, (1, 1) inputs broadcast (``ops_nb.binary_rows``)."""
    out = alloc((max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])))
    run_ranges(lambda lo, hi: ops_nb.binary_rows(a, b, out, code, lo, hi), out.shape[0],
               out.size)  # fmt: skip
    return out


def where(c: F64, a: F64, b: F64, alloc: Alloc = np.empty) -> F64:
    """``a`` where ``c != 0`` else ``b``, NaN where ``c`` is NaN (``ops_nb.where_rows``)."""
    shape = tuple(max(x.shape[i] for x in (c, a, b)) for i in (0, 1))
    out = alloc(shape)
    run_ranges(lambda lo, hi: ops_nb.where_rows(c, a, b, out, lo, hi), out.shape[0], out.size)
    return out


def cross_section(x: F64, code: int, q: int, alloc: Alloc = np.empty) -> F64:
    """Per-row rank, zscore, demean, scale or quantile (``ops_nb.cross_section_rows``)."""
    out = alloc(x.shape)
    run_ranges(lambda lo, hi: ops_nb.cross_section_rows(x, out, code, q, lo, hi), x.shape[0],
               x.size)  # fmt: skip
    return out


def ts_shift(x: F64, d: int, code: int, alloc: Alloc = np.empty) -> F64:
    """DELAY, DELTA or PCT by ``d`` rows (``ts_nb.ts_shift_rows``)."""
    out = alloc(x.shape)
    run_ranges(lambda lo, hi: ts_nb.ts_shift_rows(x, out, d, code, lo, hi), x.shape[0], x.size)
    return out


def ts_window(x: F64, w: int, code: int, alloc: Alloc = np.empty) -> F64:
    """Rolling statistic over ``w`` rows per column (``ts_nb.window_kernel``: the family's own
    kernel, so a first run compiles only the families it uses)."""
    out = alloc(x.shape)
    kernel = ts_nb.window_kernel(code, w)
    run_ranges(lambda lo, hi: kernel(x, out, w, code, lo, hi), _blocks(x.shape[1]), x.size)
    return out


def ts_pair(x: F64, y: F64, w: int, code: int, alloc: Alloc = np.empty) -> F64:
    """Rolling CORR or COV of two (T, N) arrays (``ts_nb.ts_pair_blocks``)."""
    out = alloc(x.shape)
    run_ranges(lambda lo, hi: ts_nb.ts_pair_blocks(x, y, out, w, code, lo, hi),
               _blocks(x.shape[1]), x.size)  # fmt: skip
    return out


def ts_ewm(x: F64, span: int, alloc: Alloc = np.empty) -> F64:
    """EWMA with alpha = 2 / (span + 1) per column (``ts_nb.ts_ewm_blocks``)."""
    out = alloc(x.shape)
    run_ranges(lambda lo, hi: ts_nb.ts_ewm_blocks(x, out, span, lo, hi), _blocks(x.shape[1]),
               x.size)  # fmt: skip
    return out
