"""Run a fused program (``fused_nb``) on a plan step's inputs: sort the inputs into the
kernel's slots and split large programs into cell ranges run on a small thread pool."""

from __future__ import annotations

import numpy as np

from alphaforge.engine.pool import PARALLEL_MIN_CELLS, run_ranges
from alphaforge.factors.expr.fused_nb import CHUNK, MAX_ARRAYS, fused
from alphaforge.factors.expr.kernels import Alloc

__all__ = ["PARALLEL_MIN_CELLS", "run_program"]


_UNUSED = np.zeros(1)


def run_program(inputs: list[np.ndarray], prog: np.ndarray,
                alloc: Alloc = np.empty) -> np.ndarray:  # fmt: skip
    """Evaluate ``prog`` whose slots ``0 .. len(inputs)-1`` name ``inputs`` (each (T, N) or
    (1, 1)); returns (T, N), or (1, 1) when every input is (1, 1), in an array from ``alloc``
    (see ``kernels``).

    The inputs are sorted into the kernel's slots here: full arrays to the array tuple, (1, 1) ones
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
    args = tuple(arrays + [_UNUSED] * (MAX_ARRAYS - len(arrays)))
    sc = np.array(scalars, dtype=np.float64)
    n_cells = int(np.prod(shape))
    res = alloc(shape)
    out = res.reshape(-1)  # a view: ``res`` is C-ordered
    run_ranges(lambda lo, hi: fused(args, sc, renum, out, lo, hi), n_cells, n_cells, CHUNK)
    return res
