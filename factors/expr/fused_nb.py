"""The fused elementwise kernel: a chain of unary/binary/where ops in one pass over memory.

A fused step is a small program over *slots*. Slots ``0 .. n_leaves-1`` are the leaves, the
(T, N) arrays (or (1, 1) constants) the chain reads; slot ``n_leaves + k`` is the result of
instruction ``k``. Each instruction is a row ``(kind, code, a, b, c)`` of an int64 array:
``kind`` 0 unary (``code`` of the unary family, operand ``a``), 1 binary (``a`` op ``b``), 2
where (``a`` ? ``b`` : ``c``). The last instruction is the result.

The kernel walks the flat cells in chunks of ``CHUNK`` and runs the whole program on each chunk,
with every intermediate in a chunk-sized register that stays in the CPU cache: the leaves are
read once and the result written once, where one kernel per op wrote (and page-faulted) a fresh
(T, N) array per op. Every op computes exactly the scalar function of its unfused kernel
(``ops_nb``), so results are identical bit for bit. Nothing is generated: this one compiled
interpreter runs every program, so a new expression shape costs no compilation.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.typed import List

from alphaforge.factors.expr.ops_nb import ADD, DIV, MUL, SUB, _binary_value, _unary_value

UNARY, BINARY, WHERE = 0, 1, 2
CHUNK = 1024
"""Cells per chunk: a register is 8 KiB, so a program's registers stay in L1/L2."""
_TASK_CHUNKS = 64
"""Chunks per parallel task (registers are allocated once per task)."""
_NAN = np.nan


@njit(cache=True, error_model="numpy")
def _arith(x: np.ndarray, y: np.ndarray, d: np.ndarray, m: int, code: int) -> None:
    """d = x op y on m cells, non-finite -> NaN (``ops_nb.arith``'s loop, vectorisable)."""
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


@njit(cache=True, inline="always")
def _view(leaves, scalar, regs, s, lo, m):  # type: ignore[no-untyped-def]
    """Cells lo..lo+m-1 of slot ``s``: a leaf's slice, or a register (constants live in one)."""
    if s >= len(leaves) or scalar[s]:
        return regs[s, :m]
    return leaves[s][lo : lo + m]


@njit(cache=True, error_model="numpy")
def _run_chunk(leaves, scalar, prog, regs, out, lo, m):  # type: ignore[no-untyped-def]
    """Run ``prog`` on cells lo..lo+m-1; the last instruction writes ``out`` directly."""
    n_leaves = len(leaves)
    n_instr = prog.shape[0]
    for k in range(n_instr):
        kind, code = prog[k, 0], prog[k, 1]
        x = _view(leaves, scalar, regs, max(prog[k, 2], 0), lo, m)
        y = _view(leaves, scalar, regs, max(prog[k, 3], 0), lo, m)
        z = _view(leaves, scalar, regs, max(prog[k, 4], 0), lo, m)
        d = out[lo : lo + m] if k == n_instr - 1 else regs[n_leaves + k, :m]
        if kind == BINARY and code <= DIV:
            _arith(x, y, d, m, code)
        elif kind == BINARY:
            for i in range(m):
                d[i] = _binary_value(x[i], y[i], code)
        elif kind == UNARY:
            for i in range(m):
                d[i] = _unary_value(x[i], code)
        else:
            for i in range(m):
                c = x[i]
                d[i] = _NAN if math.isnan(c) else (y[i] if c != 0.0 else z[i])


@njit(cache=True, parallel=True, error_model="numpy")
def fused(leaves, scalar, prog, n_cells):  # type: ignore[no-untyped-def]
    """Evaluate a fused program (module doc) over ``n_cells`` flat cells.

    Args:
        leaves: typed list of flat float64 arrays, each of length ``n_cells`` or 1.
        scalar: (n_leaves,) bool, True where the leaf has length 1 (a constant).
        prog: (n_instr, 5) int64 instructions.
        n_cells: T * N.

    Returns:
        (n_cells,) float64, the last instruction's values.
    """
    out = np.empty(n_cells)
    n_leaves = len(leaves)
    n_chunks = (n_cells + CHUNK - 1) // CHUNK
    n_tasks = (n_chunks + _TASK_CHUNKS - 1) // _TASK_CHUNKS
    for task in prange(n_tasks):
        regs = np.empty((n_leaves + prog.shape[0], CHUNK))
        for s in range(n_leaves):
            if scalar[s]:
                regs[s, :] = leaves[s][0]
        for c in range(task * _TASK_CHUNKS, min(n_chunks, (task + 1) * _TASK_CHUNKS)):
            lo = c * CHUNK
            _run_chunk(leaves, scalar, prog, regs, out, lo, min(CHUNK, n_cells - lo))
    return out


def typed_leaves(arrays: list[np.ndarray]) -> List:
    """The leaves as the typed list ``fused`` takes (flat, C-contiguous, writable float64)."""
    out = List()
    for a in arrays:
        out.append(np.ascontiguousarray(a, dtype=np.float64).reshape(-1))
    return out
