"""The safe factor expression language: parse text to an AST, evaluate it on a Panel.

    >>> from factors.expr import parse
    >>> str(parse("cs_rank(ts_mean(returns,20))"))
    'cs_rank(ts_mean(returns, 20))'

See ``GRAMMAR.md`` beside this file for the grammar and the operator table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alphaforge.factors.errors import ExprError
from alphaforge.factors.expr.nodes import Binary, Call, Field, Node, Num, Unary
from alphaforge.factors.expr.parser import parse

if TYPE_CHECKING:
    from alphaforge.factors.expr.compile import CompiledExpr, evaluate

__all__ = [
    "Binary",
    "Call",
    "CompiledExpr",
    "ExprError",
    "Field",
    "Node",
    "Num",
    "Unary",
    "compile_expr",
    "evaluate",
    "parse",
]


def __getattr__(name: str) -> Any:
    # compile (and numba) load on first use so that parsing stays cheap
    if name in ("evaluate", "compile_expr", "CompiledExpr"):
        from alphaforge.factors.expr import compile as _compile

        return getattr(_compile, name)
    raise AttributeError(name)
