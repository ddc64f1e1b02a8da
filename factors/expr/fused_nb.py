"""The fused elementwise kernel: a chain of unary/binary/where ops in one pass over memory.

A fused step is a small program over *slots*. Slots ``0 .. MAX_ARRAYS-1`` are the (T, N)
arrays the chain reads, passed as the fixed arguments ``a0 .. a7`` (flat; unused ones are any
1-element array), so one compiled signature serves every program; slot ``MAX_ARRAYS + i`` is
scalar ``i`` (a constant, broadcast); slot ``MAX_ARRAYS + n_scalars + k`` is the result of
instruction ``k``. Each instruction is a row ``(kind, code, a, b, c)`` of an int64 array:
``kind`` 0 unary (``code`` of the unary family, operand ``a``), 1 binary (``a`` op ``b``), 2
where (``a`` ? ``b`` : ``c``); unused operands are -1. The last instruction is the result.

The kernel walks the flat cells in chunks of ``CHUNK`` and runs the whole program on each chunk,
with every intermediate in a chunk-sized register that stays in the CPU cache: the leaves are
read once and the result written once, where one kernel per op wrote (and page-faulted) a fresh
(T, N) array per op. Every op computes exactly the scalar function of its unfused kernel
(``ops_nb``), so results are identical bit for bit. Nothing is generated: this one compiled
interpreter runs every program, so a new expression shape costs no compilation.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from alphaforge.factors.expr.ops_nb import ADD, DIV, MUL, SUB, _binary_value, _unary_value

UNARY, BINARY, WHERE = 0, 1, 2
MAX_ARRAYS = 8
"""(T, N) inputs of one fused step at most (``fuse.py`` keeps groups within it)."""
CHUNK = 1024
"""Cells per chunk: a register is 8 KiB, so a program's registers stay in L1/L2."""
PARALLEL_MIN_CELLS = 200_000
"""Programs over fewer cells run on the calling thread (``compile.PARALLEL_MIN_CELLS``)."""
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


@njit(cache=True)
def _view(a0, a1, a2, a3, a4, a5, a6, a7, regs, s, lo, m):  # type: ignore[no-untyped-def]
    """Cells lo..lo+m-1 of slot ``s`` (module doc): an input's slice or a register."""
    if s >= MAX_ARRAYS:
        return regs[s - MAX_ARRAYS, :m]
    if s < 4:
        if s == 0:
            return a0[lo : lo + m]
        if s == 1:
            return a1[lo : lo + m]
        if s == 2:
            return a2[lo : lo + m]
        return a3[lo : lo + m]
    if s == 4:
        return a4[lo : lo + m]
    if s == 5:
        return a5[lo : lo + m]
    if s == 6:
        return a6[lo : lo + m]
    return a7[lo : lo + m]


@njit(cache=True, error_model="numpy")
def _run_chunk(a0, a1, a2, a3, a4, a5, a6, a7, n_scalars, prog, regs, out, lo, m):  # type: ignore[no-untyped-def]
    """Run ``prog`` on cells lo..lo+m-1; the last instruction writes ``out`` directly."""
    n_instr = prog.shape[0]
    for k in range(n_instr):
        kind, code = prog[k, 0], prog[k, 1]
        # an unused operand (-1) reads register 0, which the op then ignores
        sa, sb, sc = prog[k, 2], prog[k, 3], prog[k, 4]
        x = _view(a0, a1, a2, a3, a4, a5, a6, a7, regs, sa if sa >= 0 else MAX_ARRAYS, lo, m)
        y = _view(a0, a1, a2, a3, a4, a5, a6, a7, regs, sb if sb >= 0 else MAX_ARRAYS, lo, m)
        z = _view(a0, a1, a2, a3, a4, a5, a6, a7, regs, sc if sc >= 0 else MAX_ARRAYS, lo, m)
        d = out[lo : lo + m] if k == n_instr - 1 else regs[n_scalars + k, :m]
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


@njit(cache=True, nogil=True, error_model="numpy")
def fused(a0, a1, a2, a3, a4, a5, a6, a7, scalars, prog, out, lo, hi):  # type: ignore[no-untyped-def]
    """Evaluate a fused program (module doc) on flat cells lo..hi-1 into ``out``.

    Releases the GIL, so ``run_program`` runs disjoint cell ranges on several threads (one
    compiled function: a numba ``parallel=True`` version took 3 s more to compile).

    Args:
        a0 .. a7: flat float64 inputs of length ``out.size`` (slots 0-7; unused: any array).
        scalars: (S,) float64 constants (slots 8 .. 8 + S - 1).
        prog: (n_instr, 5) int64 instructions.
        out: (n_cells,) float64, written at lo..hi-1.
    """
    n_scalars = scalars.shape[0]
    regs = np.empty((max(1, n_scalars + prog.shape[0]), CHUNK))
    for i in range(n_scalars):
        regs[i, :] = scalars[i]
    for c0 in range(lo, hi, CHUNK):
        _run_chunk(a0, a1, a2, a3, a4, a5, a6, a7, n_scalars, prog, regs, out, c0,
                   min(CHUNK, hi - c0))  # fmt: skip


_UNUSED = np.zeros(1)


def run_program(inputs: list[np.ndarray], prog: np.ndarray) -> np.ndarray:
    """Evaluate ``prog`` whose slots ``0 .. len(inputs)-1`` name ``inputs`` (each (T, N) or
    (1, 1)); returns (T, N), or (1, 1) when every input is (1, 1).

    The inputs are sorted into the kernel's slots here: full arrays to ``a0 ..``, (1, 1) ones
    to the scalars, and the program's operands renumbered to match.

    Raises:
        ValueError: more than ``MAX_ARRAYS`` full inputs.
    """
    full = [x for x in inputs if x.shape != (1, 1)]
    if len(full) > MAX_ARRAYS:
        raise ValueError(f"a fused step reads at most {MAX_ARRAYS} arrays; got {len(full)}")
    shape = full[0].shape if full else (1, 1)
    slot = np.empty(len(inputs) + prog.shape[0], dtype=np.int64)
    arrays: list[np.ndarray] = []
    scalars: list[float] = []
    for i, x in enumerate(inputs):
        if x.shape == (1, 1):
            slot[i] = -1 - len(scalars)  # scalar j -> -1 - j until their count is known
            scalars.append(float(x[0, 0]))
        else:
            slot[i] = len(arrays)
            a = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
            arrays.append(a if a.flags.writeable else a.copy())  # one compiled signature
    head = slot[: len(inputs)]
    head[head < 0] = MAX_ARRAYS - 1 - head[head < 0]
    slot[len(inputs) :] = MAX_ARRAYS + len(scalars) + np.arange(prog.shape[0])
    ops = prog[:, 2:]
    renum = prog.copy()
    renum[:, 2:] = np.where(ops < 0, -1, slot[np.maximum(ops, 0)])
    args = arrays + [_UNUSED] * (MAX_ARRAYS - len(arrays))
    sc = np.array(scalars, dtype=np.float64)
    n_cells = int(np.prod(shape))
    out = np.empty(n_cells)
    n_threads = numba.get_num_threads() if n_cells >= PARALLEL_MIN_CELLS else 1
    step = max(CHUNK, -(-n_cells // (n_threads * CHUNK)) * CHUNK)  # whole chunks per thread
    ranges = [(lo, min(n_cells, lo + step)) for lo in range(0, n_cells, step)]

    def run(r: tuple[int, int]) -> None:
        a = args
        fused(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], sc, renum, out, r[0], r[1])

    if len(ranges) <= 1:
        run((0, n_cells))
    else:
        list(_pool().map(run, ranges))
    return out.reshape(shape)


_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The threads that run cell ranges of fused programs (created on first use)."""
    if not _POOL:
        n = int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))
        _POOL.append(ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="af-fused"))
    return _POOL[0]
