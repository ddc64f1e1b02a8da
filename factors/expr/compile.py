"""Compile ASTs into plans of numba kernel calls and evaluate them on a Panel.

A plan is the expression DAG in topological order: each distinct subexpression (by structural
equality, i.e. canonical form) is one step, computed once and freed after its last use
(common-subexpression elimination). Constants are (1, 1) arrays that the elementwise kernels
broadcast. Plans are cached by canonical form, so re-evaluating the same factor (in any spelling)
skips parsing and planning. Several expressions can share one plan (``evaluate_many``).
Chains of elementwise ops are then fused into single steps that make one pass over memory
(``fuse.py``, ``fused_nb.py``; identical results).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from alphaforge.engine.huge_pages import HUGE_AFTER_BYTES, huge_pages
from alphaforge.engine.panel import Panel
from alphaforge.engine.pool import PARALLEL_MIN_CELLS
from alphaforge.factors.errors import ExprError
from alphaforge.factors.expr import fused_nb, fused_run, kernels
from alphaforge.factors.expr.fuse import fusion_groups, group_program
from alphaforge.factors.expr.nodes import Binary, Call, Field, Node, Num, Unary
from alphaforge.factors.expr.ops import ADD, BINARY_OPS, DIV, MAX, MIN, MUL, OPS, UNARY_OPS
from alphaforge.factors.expr.parser import parse
from alphaforge.factors.fields import derive_field

F64 = npt.NDArray[np.float64]

_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Step:
    """One plan step: a kernel family, its op code, input step indices and integer params.

    ``family`` is ``const`` (value), ``field`` (name), ``fused`` (an elementwise chain run by
    ``fused_nb``, see ``fuse.py``) or a kernel family of ``ops.py``.
    """

    family: str
    code: int
    inputs: tuple[int, ...]
    params: tuple[int, ...] = ()
    value: float = 0.0
    name: str = ""
    program: tuple[tuple[int, int, int, int, int], ...] = ()
    """``fused`` steps only: the instructions over (inputs, earlier instructions)."""


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    """A compiled expression (or several sharing one plan), callable on a Panel.

    Attributes:
        nodes: the root ASTs.
        steps: the plan, topologically ordered, one step per distinct subexpression.
        roots: step index of each root.
        free_after: for each step, the steps whose values are dead once it has run.
    """

    nodes: tuple[Node, ...]
    steps: tuple[Step, ...]
    roots: tuple[int, ...]
    free_after: tuple[tuple[int, ...], ...]

    @property
    def node(self) -> Node:
        """The (first) root AST."""
        return self.nodes[0]

    @property
    def canonical(self) -> str:
        """Canonical form of the (first) root."""
        return str(self.nodes[0])

    @property
    def lookback(self) -> int:
        """Largest look-back of the roots, in bars."""
        return max(n.lookback for n in self.nodes)

    @property
    def fields(self) -> frozenset[str]:
        """Fields read by any root."""
        return frozenset().union(*(n.fields() for n in self.nodes))

    def __call__(self, panel: Panel) -> F64:
        """Evaluate the first root on ``panel``: (T, N) float64, a fresh array."""
        return self.run(panel)[0]

    def run(self, panel: Panel) -> list[F64]:
        """Evaluate every root on ``panel``.

        Raises:
            ExprError: a field the panel neither holds nor can derive.
        """
        if not isinstance(panel, Panel):
            raise ExprError(f"evaluate needs an engine.panel.Panel; got {type(panel).__name__}")
        shape = (panel.T, panel.N)
        vals: list[F64 | None] = [None] * len(self.steps)
        pool = BufferPool(shape)
        threads = numba.get_num_threads()
        if panel.T * panel.N < PARALLEL_MIN_CELLS:
            numba.set_num_threads(1)
        try:
            for i, step in enumerate(self.steps):
                vals[i] = _run_step(step, [vals[k] for k in step.inputs], panel, shape, pool.alloc)
                for k in self.free_after[i]:
                    v, vals[k] = vals[k], None
                    if v is not None and _owned(self.steps[k], v, panel):
                        pool.give(v)
        finally:
            numba.set_num_threads(threads)
        out: list[F64] = []
        for r in self.roots:
            v = vals[r]
            assert v is not None  # roots are never freed
            if v.shape != shape:
                v = np.full(shape, v[0, 0])
            elif self.steps[r].family == "field":
                v = v.copy()  # never hand out the panel's own array
            out.append(v)
        return out


def _owned(step: Step, value: F64, panel: Panel) -> bool:
    """Whether the plan allocated ``value`` (so it may recycle it): every kernel's result and
    a derived field (returns, vwap, a book field, a copy of a read-only stored field), never a
    (1, 1) constant nor an array the panel itself holds."""
    if step.family == "const":
        return False
    return step.family != "field" or value is not panel.fields.get(step.name)


class BufferPool:
    """The (T, N) intermediates of one plan run that are dead, handed out again as outputs.

    On this kind of machine (a VM whose host backs guest memory on first touch), writing into
    newly mapped memory costs more than most kernels' own work: an 80 MB result took 19-55 ms in
    fresh memory against 7-9 ms in a reused array, and up to 0.9 s when the guest had handed the
    pages back to the host. A plan frees each intermediate after its last use; instead of
    returning it to the allocator, the run keeps it here for the next step's result. A plan
    never holds more buffers than it would have held live arrays.

    A run that keeps many results (a shared plan of a whole library) takes new memory for each
    of them: once it has taken ``huge_pages.HUGE_AFTER_BYTES`` (1 GiB), further new arrays get
    numpy's huge-page advice, which faults many GB in faster on this machine
    (``engine.huge_pages``).
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._free: list[F64] = []
        self.new_bytes = 0
        """Bytes of new (T, N) arrays this pool has handed out."""

    def alloc(self, shape: tuple[int, ...]) -> F64:
        """A C-ordered float64 array of ``shape``: a dead intermediate when one fits."""
        if shape != self.shape:
            return np.empty(shape)
        if self._free:
            return self._free.pop()
        self.new_bytes += 8 * math.prod(shape)
        if self.new_bytes <= HUGE_AFTER_BYTES:
            return np.empty(shape)
        with huge_pages():
            return np.empty(shape)

    def give(self, a: F64) -> None:
        """Take back a dead intermediate that no live value shares (the caller's promise)."""
        if (a.shape == self.shape and a.dtype == np.float64 and a.flags.c_contiguous
                and a.flags.writeable):  # fmt: skip
            self._free.append(a)


def _full(a: F64, shape: tuple[int, int]) -> F64:
    return a if a.shape == shape else np.full(shape, a[0, 0])


def _run_step(step: Step, args: list[F64 | None], panel: Panel, shape: tuple[int, int],
              alloc: kernels.Alloc = np.empty) -> F64:  # fmt: skip
    xs: list[F64] = [a for a in args if a is not None]
    fam, code = step.family, step.code
    if fam == "const":
        return np.full((1, 1), step.value)
    if fam == "field":
        arr = derive_field(panel, step.name)
        # read-only inputs (memory maps, Arrow buffers) would make numba compile a second
        # specialization of every kernel (tens of seconds): copy them once instead
        return arr if arr.flags.writeable else arr.copy()
    if fam == "unary":
        return kernels.unary(xs[0], code, alloc)
    if fam == "binary":
        a, b = np.ascontiguousarray(xs[0]), np.ascontiguousarray(xs[1])
        if code <= DIV and a.shape == shape and b.shape in (shape, (1, 1)):
            return kernels.arith(a, b, code, alloc)
        if code in (ADD, MUL) and a.shape == (1, 1) and b.shape == shape:
            return kernels.arith(b, a, code, alloc)  # commutative: the scalar goes right
        return kernels.binary(a, b, code, alloc)
    if fam == "where":
        return kernels.where(xs[0], xs[1], xs[2], alloc)
    if fam == "fused":
        return _run_fused(step, xs, shape, alloc)
    if fam == "cs":
        q = step.params[0] if step.params else 0
        return kernels.cross_section(_full(xs[0], shape), code, q, alloc)
    n = step.params[0]
    if fam == "ts_shift":
        return kernels.ts_shift(_full(xs[0], shape), n, code, alloc)
    if fam == "ts_window":
        return kernels.ts_window(_full(xs[0], shape), n, code, alloc)
    if fam == "ts_pair":
        x, y = _full(xs[0], shape), _full(xs[1], shape)
        return kernels.ts_pair(x, y, n, code, alloc)
    if fam == "ts_ewm":
        return kernels.ts_ewm(_full(xs[0], shape), n, alloc)
    raise ExprError(f"internal: unknown kernel family {fam!r}")


def _run_fused(step: Step, xs: list[F64], shape: tuple[int, int], alloc: kernels.Alloc) -> F64:
    out: F64 = fused_run.run_program(xs, np.array(step.program, dtype=np.int64), alloc)
    return out


def _fuse(steps: list[Step], roots: tuple[int, ...]) -> tuple[list[Step], tuple[int, ...]]:
    """The plan with each elementwise chain as one ``fused`` step (``fuse.py``)."""
    groups = fusion_groups(steps, roots, fused_nb.MAX_ARRAYS)
    inlined = {i for h, g in groups.items() for i in g if i != h}
    new_index: dict[int, int] = {}
    out: list[Step] = []
    for i, s in enumerate(steps):
        if i in inlined:
            continue
        if i in groups:
            leaves, prog = group_program(steps, groups[i])
            s = Step("fused", 0, tuple(new_index[k] for k in leaves), program=prog)
        else:
            s = Step(s.family, s.code, tuple(new_index[k] for k in s.inputs), s.params,
                     s.value, s.name)  # fmt: skip
        new_index[i] = len(out)
        out.append(s)
    return out, tuple(new_index[r] for r in roots)


def _plan(nodes: Sequence[Node], fuse: bool = True) -> CompiledExpr:
    """The plan of ``nodes``; ``fuse=False`` keeps one kernel per op (the fusion tests'
    reference)."""
    memo: dict[Node, int] = {}
    steps: list[Step] = []

    def add(step: Step) -> int:
        steps.append(step)
        return len(steps) - 1

    def visit(n: Node) -> int:
        if n in memo:
            return memo[n]
        if isinstance(n, Num):
            i = add(Step("const", 0, (), value=n.value))
        elif isinstance(n, Field):
            i = add(Step("field", 0, (), name=n.name))
        elif isinstance(n, Unary):
            i = add(Step("unary", UNARY_OPS[n.op], (visit(n.arg),)))
        elif isinstance(n, Binary):
            i = add(Step("binary", BINARY_OPS[n.op], (visit(n.left), visit(n.right))))
        elif isinstance(n, Call) and n.name == "clip":
            x, lo, hi = (visit(a) for a in n.args)
            i = add(Step("binary", MIN, (add(Step("binary", MAX, (x, lo))), hi)))
        elif isinstance(n, Call):
            spec = OPS[n.name]
            ins = tuple(visit(a) for a in n.data_args)
            i = add(Step(spec.family, spec.code, ins, n.int_values))
        else:
            raise ExprError(f"not an expression node: {type(n).__name__}")
        memo[n] = i
        return i

    roots = tuple(visit(n) for n in nodes)
    if fuse:
        steps, roots = _fuse(steps, roots)
    last: dict[int, int] = {}
    for i, step in enumerate(steps):
        for k in step.inputs:
            last[k] = i
    keep = set(roots)
    free: list[list[int]] = [[] for _ in steps]
    for k, i in last.items():
        if k not in keep:
            free[i].append(k)
    return CompiledExpr(tuple(nodes), tuple(steps), roots, tuple(tuple(f) for f in free))


_PLANS: dict[str, CompiledExpr] = {}


def _as_node(expr: str | Node) -> Node:
    if isinstance(expr, Node):
        return expr
    if isinstance(expr, str):
        return parse(expr)
    raise ExprError(f"expression must be a str or a Node; got {type(expr).__name__}")


def compile_expr(expr: str | Node) -> CompiledExpr:
    """Compile (or fetch from the cache, keyed by canonical form) one expression.

    Raises:
        ExprError: malformed text (see ``parse``).
    """
    node = _as_node(expr)
    key = str(node)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _CACHE_SIZE:
            _PLANS.clear()
        plan = _PLANS[key] = _plan([node])
    return plan


def evaluate(expr: str | Node, panel: Panel) -> F64:
    """Evaluate an expression on a Panel.

    Args:
        expr: expression text or AST.
        panel: the Panel; derived fields (returns, vwap, book fields) are computed on demand.

    Returns:
        (T, N) float64, NaN where undefined (warm-up, missing inputs, see GRAMMAR.md).

    Raises:
        ExprError: malformed text, or a field the panel neither holds nor can derive.
    """
    return compile_expr(expr)(panel)


def evaluate_many(exprs: Sequence[str | Node], panel: Panel) -> list[F64]:
    """Evaluate several expressions in one plan, sharing common subexpressions across them.

    Returns:
        One (T, N) float64 array per expression, in order.
    """
    nodes = [_as_node(e) for e in exprs]
    if not nodes:
        return []
    return _plan(nodes).run(panel)
