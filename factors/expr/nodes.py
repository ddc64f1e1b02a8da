"""AST nodes of the expression language: frozen, hashable, printable in canonical form.

Nodes compare and hash structurally, so equal subexpressions collapse to one key (the basis of
common-subexpression elimination and de-duplication). ``str(node)`` is the canonical form:
every infix operation fully parenthesized, numbers printed exactly (``repr`` of the float, or the
integer when it is integral), single spaces after commas and around infix operators; it satisfies
``parse(str(node)) == node``.

Invariants (checked on construction, so hand-built trees are as valid as parsed ones):
``Num`` values are finite and >= 0 (a negative number is ``Unary("-", Num(x))``), ``Field``
names are known fields, ``Call`` names are known operators with the right arity and integer
literal arguments where the operator requires them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass

from alphaforge.factors.errors import ExprError
from alphaforge.factors.expr.ops import BINARY_OPS, MAX_WINDOW, OPS, UNARY_OPS
from alphaforge.factors.fields import FIELDS

_EXACT_INT = 2**53


def suggest(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """A '; did you mean X?' suffix naming the closest candidate, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def known_names() -> tuple[str, ...]:
    """Every field and operator name (for suggestions)."""
    return (*FIELDS, *OPS)


class Node:
    """Base of all nodes."""

    __slots__ = ()

    def children(self) -> tuple[Node, ...]:
        """Direct sub-nodes (integer-literal arguments included)."""
        return ()

    def canonical(self) -> str:
        """The canonical printed form (same as ``str``)."""
        return str(self)

    @property
    def lookback(self) -> int:
        """Bars of history needed before the first complete value (the warm-up length)."""
        return max((c.lookback for c in self.children()), default=0)

    def walk(self) -> Iterator[Node]:
        """Every node of the tree, parents before children."""
        yield self
        for c in self.children():
            yield from c.walk()

    def fields(self) -> frozenset[str]:
        """Names of the fields the expression reads."""
        return frozenset(n.name for n in self.walk() if isinstance(n, Field))

    def depends_on_data(self) -> bool:
        """True when some field occurs in the tree (else the value is a constant)."""
        return any(isinstance(n, Field) for n in self.walk())


@dataclass(frozen=True, slots=True)
class Num(Node):
    """A non-negative finite number literal."""

    value: float

    def __post_init__(self) -> None:
        v = float(self.value)
        if not math.isfinite(v) or v < 0:
            raise ExprError(f"number literal must be finite and >= 0; got {v!r}", 0, repr(v))
        object.__setattr__(self, "value", v + 0.0)

    def __str__(self) -> str:
        v = self.value
        if v.is_integer() and v < _EXACT_INT:
            return str(int(v))
        return repr(v)

    @property
    def is_int(self) -> bool:
        """True when the value is an exact integer."""
        return self.value.is_integer()


@dataclass(frozen=True, slots=True)
class Field(Node):
    """A panel field such as ``close``."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in FIELDS:
            raise ExprError(
                f"unknown name {self.name!r}{suggest(self.name, known_names())}", 0, self.name
            )

    def __str__(self) -> str:
        return self.name

    @property
    def lookback(self) -> int:
        return FIELDS[self.name].lookback


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """A prefix operation: ``-x`` or ``not x``."""

    op: str
    arg: Node

    def __post_init__(self) -> None:
        if self.op not in UNARY_OPS:
            raise ExprError(f"unknown unary operator {self.op!r}", 0, self.op)

    def __str__(self) -> str:
        sep = " " if self.op == "not" else ""
        return f"({self.op}{sep}{self.arg})"

    def children(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """An infix operation: arithmetic, comparison or boolean."""

    op: str
    left: Node
    right: Node

    def __post_init__(self) -> None:
        if self.op not in BINARY_OPS:
            raise ExprError(f"unknown binary operator {self.op!r}", 0, self.op)

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


def check_call(name: str, args: tuple[Node, ...]) -> tuple[str, int] | None:
    """Validate a call; returns (message, index of the bad argument or -1) or None when valid."""
    spec = OPS.get(name)
    if spec is None:
        return f"unknown function {name!r}{suggest(name, known_names())}", -1
    if len(args) != spec.arity:
        return f"{name} takes {spec.arity} argument(s); got {len(args)}", -1
    for pos, minimum in spec.int_args:
        a = args[pos]
        if isinstance(a, Unary) and a.op == "-" and isinstance(a.arg, Num):
            what = "lag" if name == "ts_delay" else "integer argument"
            return (
                f"{name}: {what} must be >= {minimum}; got -{a.arg} "
                "(a negative lag would read the future)",
                pos,
            )
        if not isinstance(a, Num) or not a.is_int:
            return f"{name}: argument {pos + 1} must be an integer literal; got {a}", pos
        if not minimum <= a.value <= MAX_WINDOW:
            return f"{name}: argument {pos + 1} must be in [{minimum}, {MAX_WINDOW}]; got {a}", pos
    return None


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function call ``name(arg, ...)`` of an operator in ``OPS``."""

    name: str
    args: tuple[Node, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))
        problem = check_call(self.name, self.args)
        if problem is not None:
            raise ExprError(problem[0], 0, self.name)

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(a) for a in self.args)})"

    def children(self) -> tuple[Node, ...]:
        return self.args

    @property
    def int_values(self) -> tuple[int, ...]:
        """The integer-literal arguments, in position order."""
        spec = OPS[self.name]
        return tuple(int(self.args[p].value) for p in spec.int_positions)  # type: ignore[attr-defined]

    @property
    def data_args(self) -> tuple[Node, ...]:
        """The arguments that are expressions (not integer literals)."""
        ints = set(OPS[self.name].int_positions)
        return tuple(a for i, a in enumerate(self.args) if i not in ints)

    @property
    def lookback(self) -> int:
        base = max((a.lookback for a in self.data_args), default=0)
        return base + OPS[self.name].lookback(self.int_values)
