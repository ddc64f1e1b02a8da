"""Fusion of a plan's elementwise chains into single steps (see ``fused_nb``).

An elementwise step (unary, binary, where) is *inlined* into its consumer when that consumer is
elementwise too, is its only consumer, and the step is not a root: its value then never needs
to exist as a (T, N) array. Each elementwise step that is not inlined heads a group: itself and
everything inlined into it, transitively. A group of two or more ops becomes one ``fused`` step
whose inputs are the group's leaves (fields, constants, time-series and cross-sectional
results, shared elementwise values) and whose program lists the ops in plan order. So does a
group of one op, unless it is +, -, * or / (``arith`` is already one vectorised pass): the
fused kernel's branch-free loops for comparisons, min/max, squares and most unary ops are 2-3x
faster than the per-cell dispatch of ``binary_rows`` / ``unary_rows``. Groups that read more
than ``fused_nb.MAX_ARRAYS`` arrays (the kernel's fixed arity) keep one kernel per op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from alphaforge.factors.expr.ops import DIV

ELEMENTWISE = frozenset({"unary", "binary", "where"})
KIND = {"unary": 0, "binary": 1, "where": 2}  # fused_nb.UNARY, BINARY, WHERE


class StepLike(Protocol):
    """What fusion reads of a plan step (``compile.Step``)."""

    @property
    def family(self) -> str: ...
    @property
    def code(self) -> int: ...
    @property
    def inputs(self) -> tuple[int, ...]: ...


def fusion_groups(
    steps: Sequence[StepLike], roots: Sequence[int], max_arrays: int = 8
) -> dict[int, list[int]]:
    """Head step index -> the group's steps in plan order, for groups (other than a lone +, -,
    *, /) that read at most ``max_arrays`` non-constant inputs (``fused_nb.MAX_ARRAYS``; a
    larger group keeps one kernel per op)."""
    consumers: list[set[int]] = [set() for _ in steps]
    for i, s in enumerate(steps):
        for k in s.inputs:
            consumers[k].add(i)
    keep = set(roots)
    owner: dict[int, int] = {}
    for i, s in enumerate(steps):
        if s.family not in ELEMENTWISE or i in keep or len(consumers[i]) != 1:
            continue
        (c,) = consumers[i]
        if steps[c].family in ELEMENTWISE:
            owner[i] = c

    def head(i: int) -> int:
        while i in owner:
            i = owner[i]
        return i

    groups: dict[int, list[int]] = {}
    for i, s in enumerate(steps):
        if s.family in ELEMENTWISE:
            groups.setdefault(head(i), []).append(i)
    out = {}
    for h, g in groups.items():
        arrays = [k for k in group_program(steps, g)[0] if steps[k].family != "const"]
        lone = steps[g[0]] if len(g) == 1 else None
        lone_arith = lone is not None and lone.family == "binary" and lone.code <= DIV
        if not lone_arith and len(arrays) <= max_arrays:  # DIV: ADD, SUB, MUL, DIV are 0..3
            out[h] = g
    return out


def group_program(
    steps: Sequence[StepLike], group: Sequence[int]
) -> tuple[tuple[int, ...], tuple[tuple[int, int, int, int, int], ...]]:
    """(leaf step indices, program rows ``(kind, code, a, b, c)``) of one group.

    Slots ``0..len(leaves)-1`` are the leaves in first-use order; slot ``len(leaves) + k`` is
    instruction ``k``'s result; unused operands are -1.
    """
    members = set(group)
    leaves: list[int] = []
    for i in group:
        for k in steps[i].inputs:
            if k not in members and k not in leaves:
                leaves.append(k)
    slot_of = {k: n for n, k in enumerate(leaves)}
    for n, i in enumerate(group):
        slot_of[i] = len(leaves) + n
    rows = []
    for i in group:
        s = steps[i]
        ops = [slot_of[k] for k in s.inputs] + [-1] * (3 - len(s.inputs))
        rows.append((KIND[s.family], s.code, ops[0], ops[1], ops[2]))
    return tuple(leaves), tuple(rows)
