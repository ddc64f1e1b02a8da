"""The fused elementwise kernel: a chain of unary/binary/where ops in one pass over memory.

A fused step is a small program over *slots*. Slots ``0 .. MAX_ARRAYS-1`` are the (T, N)
arrays the chain reads, passed as one tuple of ``MAX_ARRAYS`` flat arrays (unused ones are any
1-element array), so one compiled signature serves every program; slot ``MAX_ARRAYS + i`` is
scalar ``i`` (a constant, broadcast); slot ``MAX_ARRAYS + n_scalars + k`` is the result of
instruction ``k``. Each instruction is a row ``(kind, code, a, b, c)`` of an int64 array:
``kind`` 0 unary (``code`` of the unary family, operand ``a``), 1 binary (``a`` op ``b``), 2
where (``a`` ? ``b`` : ``c``); unused operands are -1. The last instruction is the result.

The kernel walks the flat cells in chunks of ``CHUNK`` and runs the whole program on each chunk,
with every intermediate in a chunk-sized register that stays in the CPU cache: the leaves are
read once and the result written once, where one kernel per op wrote (and page-faulted) a fresh
(T, N) array per op. Every op computes exactly the scalar function of its unfused kernel
(``ops_nb``), so results are identical bit for bit; the common ones (comparisons, min/max,
squares, neg/abs/sign/sqrt) as branch-free loops over the chunk that LLVM vectorises
(``_binary_cells``, ``_unary_cells``, ``_square``), the rest by a per-cell dispatch. Nothing
is generated: this one compiled interpreter runs every program, so a new expression shape
costs no compilation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from alphaforge.factors.expr.ops_nb import (
    ABS,
    ADD,
    DIV,
    LT,
    MAX,
    MIN,
    MUL,
    NE,
    NEG,
    POW,
    SIGN,
    SQRT,
    SUB,
    _binary_value,
    _unary_value,
)

UNARY, BINARY, WHERE = 0, 1, 2
MAX_ARRAYS = 8
"""(T, N) inputs of one fused step at most (``fuse.py`` keeps groups within it)."""
CHUNK = 1024
"""Cells per chunk: a register is 8 KiB, so a program's registers stay in L1/L2."""
_NAN = np.nan


@njit(cache=True, error_model="numpy")
def _arith(x: np.ndarray, y: np.ndarray, d: np.ndarray, m: int, code: int) -> None:
    """d = x op y on m cells, non-finite -> NaN (``ops_nb.arith_cells``' loop, vectorisable)."""
    if code == ADD:
        for i in range(m):
            d[i] = x[i] + y[i]
    elif code == SUB:
        for i in range(m):
            d[i] = x[i] - y[i]
    elif code == MUL:
        for i in range(m):
            d[i] = x[i] * y[i]
    else:
        for i in range(m):
            d[i] = x[i] / y[i]
    for i in range(m):
        if not abs(d[i]) < np.inf:
            d[i] = _NAN


@njit(cache=True, error_model="numpy")
def _finite_or_nan(d: np.ndarray, m: int) -> None:
    for i in range(m):
        d[i] = d[i] if abs(d[i]) < np.inf else _NAN


@njit(cache=True, error_model="numpy")
def _unary_cells(x: np.ndarray, d: np.ndarray, m: int, code: int) -> bool:
    """d = NEG, ABS, SIGN or SQRT of m cells by branch-free loops LLVM vectorises; the same
    bits as ``ops_nb._unary_value`` (NaN in -> NaN; non-finite results NaN). False for the
    other codes (LOG: libm's log is scalar anyway). Few loops on purpose: each vectorised
    loop adds about 0.15 s to the kernel's first compile."""
    if code <= ABS:  # NEG, ABS
        neg = code == NEG
        for i in range(m):
            d[i] = -x[i] if neg else abs(x[i])
    elif code == SIGN:
        for i in range(m):
            v = x[i]
            d[i] = _NAN if v != v else (1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0))
    elif code == SQRT:
        for i in range(m):
            v = x[i]
            d[i] = math.sqrt(v) if v >= 0.0 else _NAN
    else:
        return False
    _finite_or_nan(d, m)
    return True


# (x < y, x == y, x > y) -> 1.0 weights of each comparison code, LT .. NE
_CMP_WEIGHTS = np.array(
    [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0],
     [1.0, 0.0, 1.0]]
)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _binary_cells(x: np.ndarray, y: np.ndarray, d: np.ndarray, m: int, code: int) -> bool:
    """d = x op y on m cells for the comparisons (one loop: x < y, x == y and x > y weighted
    by ``_CMP_WEIGHTS``, exactly 0.0 or 1.0) and MIN / MAX (one loop) by branch-free loops
    that LLVM vectorises; the same bits as ``ops_nb._binary_value``: NaN if either is NaN,
    ``min``/``max`` keep ``x`` unless ``y`` is strictly smaller/larger (Python's rule, so
    -0.0 and 0.0 come out as the scalar code gives them). False for other codes."""
    if LT <= code <= NE:
        wl, we, wg = (
            _CMP_WEIGHTS[code - LT, 0],
            _CMP_WEIGHTS[code - LT, 1],
            _CMP_WEIGHTS[code - LT, 2],
        )
        for i in range(m):
            a, b = x[i], y[i]
            lt = wl if a < b else 0.0
            eq = we if a == b else 0.0
            gt = wg if a > b else 0.0
            d[i] = lt + eq + gt
    elif MIN <= code <= MAX:
        want_min = code == MIN
        for i in range(m):
            a, b = x[i], y[i]
            take = (b < a) if want_min else (b > a)
            d[i] = b if take else a
    else:
        return False
    for i in range(m):
        nan = (x[i] != x[i]) | (y[i] != y[i]) | ~(abs(d[i]) < np.inf)
        d[i] = _NAN if nan else d[i]
    return True


@njit(cache=True, error_model="numpy")
def _square(x: np.ndarray, d: np.ndarray, m: int) -> None:
    """d = x ** 2 as ``ops_nb._pow`` computes it (x * x; NaN in or overflow -> NaN)."""
    for i in range(m):
        d[i] = x[i] * x[i]
    _finite_or_nan(d, m)


@njit(cache=True)
def _view(arrays, regs, s, lo, m):  # type: ignore[no-untyped-def]
    """Cells lo..lo+m-1 of slot ``s`` (module doc): an input's slice or a register."""
    if s >= MAX_ARRAYS:
        return regs[s - MAX_ARRAYS, :m]
    return arrays[s][lo : lo + m]


@njit(cache=True)
def _is_scalar(s: int, n_scalars: int) -> bool:
    """Slot ``s`` holds a constant (module doc)."""
    return MAX_ARRAYS <= s < MAX_ARRAYS + n_scalars


@njit(cache=True, error_model="numpy")
def _run_chunk(arrays, n_scalars, prog, regs, out, lo, m):  # type: ignore[no-untyped-def]
    """Run ``prog`` on cells lo..lo+m-1; the last instruction writes ``out`` directly."""
    n_instr = prog.shape[0]
    for k in range(n_instr):
        kind, code = prog[k, 0], prog[k, 1]
        # an unused operand (-1) reads register 0, which the op then ignores
        sa, sb, sc = prog[k, 2], prog[k, 3], prog[k, 4]
        x = _view(arrays, regs, sa if sa >= 0 else MAX_ARRAYS, lo, m)
        y = _view(arrays, regs, sb if sb >= 0 else MAX_ARRAYS, lo, m)
        z = _view(arrays, regs, sc if sc >= 0 else MAX_ARRAYS, lo, m)
        d = out[lo : lo + m] if k == n_instr - 1 else regs[n_scalars + k, :m]
        if kind == BINARY and code <= DIV:
            _arith(x, y, d, m, code)
        elif kind == BINARY and code == POW and _is_scalar(sb, n_scalars) and y[0] == 2.0:
            _square(x, d, m)
        elif kind == BINARY:
            if not _binary_cells(x, y, d, m, code):
                for i in range(m):
                    d[i] = _binary_value(x[i], y[i], code)
        elif kind == UNARY:
            if not _unary_cells(x, d, m, code):
                for i in range(m):
                    d[i] = _unary_value(x[i], code)
        else:
            for i in range(m):
                c = x[i]
                d[i] = _NAN if math.isnan(c) else (y[i] if c != 0.0 else z[i])


@njit(cache=True, nogil=True, error_model="numpy")
def fused(arrays, scalars, prog, out, lo, hi):  # type: ignore[no-untyped-def]
    """Evaluate a fused program (module doc) on flat cells lo..hi-1 into ``out``.

    Releases the GIL, so ``fused_run.run_program`` runs disjoint cell ranges on several threads (one
    compiled function: a numba ``parallel=True`` version took 3 s more to compile).

    Args:
        arrays: tuple of ``MAX_ARRAYS`` flat float64 inputs of length ``out.size`` (slots
            0-7; unused ones: any 1-element array).
        scalars: (S,) float64 constants (slots 8 .. 8 + S - 1).
        prog: (n_instr, 5) int64 instructions.
        out: (n_cells,) float64, written at lo..hi-1.
    """
    n_scalars = scalars.shape[0]
    regs = np.empty((max(1, n_scalars + prog.shape[0]), CHUNK))
    for i in range(n_scalars):
        regs[i, :] = scalars[i]
    for c0 in range(lo, hi, CHUNK):
        _run_chunk(arrays, n_scalars, prog, regs, out, c0,
                   min(CHUNK, hi - c0))  # fmt: skip
