"""Recursive-descent parser: expression text -> AST (see GRAMMAR.md).

No Python evaluation is involved at any point: the text is tokenized by ``lexer.tokenize`` and
turned into ``nodes`` by the functions below; names resolve only to the field table and the
operator table. Errors are ``ExprError`` with the 0-based position and the token, and suggest the
closest valid name for unknown identifiers.
"""

from __future__ import annotations

import math

from alphaforge.factors.errors import ExprError
from alphaforge.factors.expr.lexer import Token, tokenize
from alphaforge.factors.expr.nodes import (
    Binary,
    Call,
    Field,
    Node,
    Num,
    Unary,
    check_call,
    known_names,
    suggest,
)
from alphaforge.factors.expr.ops import OPS
from alphaforge.factors.fields import FIELDS

MAX_DEPTH = 60
"""Deepest nesting (parentheses, calls, prefix operators) accepted."""

MAX_HEIGHT = MAX_DEPTH
"""Tallest expression tree accepted. A chain of binary operators is one level per operator
(``a + b + c`` is ``(a + b) + c``), and printing, analysing and compiling walk the tree
recursively; the canonical print parenthesises every level, so a taller tree could not be
parsed back (MAX_DEPTH)."""

_CMP = ("<", "<=", ">", ">=", "==", "!=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.heights: dict[int, int] = {}
        self.keep: list[Node] = []

    # ------------------------------------------------------------------ helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> ExprError:
        t = tok or self.tok
        shown = repr(t.text) if t.kind != "end" else "end of input"
        return ExprError(f"{message} at position {t.pos} (found {shown})", t.pos, t.text)

    def accept(self, text: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise self.error(f"expected {text!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    def height(self, node: Node) -> int:
        """Tree height of ``node`` (leaves are 1), memoised by identity; iterative."""
        todo = [node]
        while todo:
            n = todo[-1]
            kids = [c for c in n.children() if id(c) not in self.heights]
            if kids:
                todo.extend(kids)
                continue
            todo.pop()
            self.heights[id(n)] = 1 + max((self.heights[id(c)] for c in n.children()), default=0)
        return self.heights[id(node)]

    def binary(self, op: str, left: Node, right: Node) -> Node:
        """A Binary node, refused (at its operator) when the tree would exceed MAX_HEIGHT."""
        node = Binary(op, left, right)
        self.keep.append(node)  # ids stay valid while the parse holds a reference
        if self.height(node) > MAX_HEIGHT:
            raise self.error(
                f"expression tree deeper than {MAX_HEIGHT} levels (a chain of more than "
                f"{MAX_HEIGHT} operators); split it into smaller factors",
                self.tokens[self.i - 1] if self.i else None,
            )
        return node

    # ------------------------------------------------------------------ grammar
    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.error("unexpected token after a complete expression")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.accept("or"):
            node = self.binary("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.accept("and"):
            node = self.binary("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.accept("not"):
            self.enter()
            node: Node = Unary("not", self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        if self.tok.kind == "op" and self.tok.text in _CMP:
            op = self.tok.text
            self.i += 1
            node = self.binary(op, node, self.additive())
            if self.tok.kind == "op" and self.tok.text in _CMP:
                raise self.error("comparisons do not chain; combine them with 'and'")
        return node

    def additive(self) -> Node:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.tok.text
            self.i += 1
            node = self.binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.tok.text
            self.i += 1
            node = self.binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in ("-", "+"):
            op = self.tok.text
            self.i += 1
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return Unary("-", inner) if op == "-" else inner
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.i += 1
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error("number literal out of range", tok)
            return Num(value)
        if tok.kind == "name":
            self.i += 1
            if self.accept("("):
                return self.call(tok)
            if tok.text in FIELDS:
                return Field(tok.text)
            if tok.text in OPS:
                raise self.error(f"{tok.text!r} is a function; call it as {tok.text}(...)", tok)
            raise self.error(f"unknown name {tok.text!r}{suggest(tok.text, known_names())}", tok)
        if self.accept("("):
            self.enter()
            node = self.or_expr()
            self.expect(")")
            self.depth -= 1
            return node
        if tok.kind == "end":
            raise self.error("unexpected end of input; expected a number, name or '('")
        raise self.error(f"unexpected {tok.text!r}; expected a number, name or '('")

    def call(self, name_tok: Token) -> Node:
        name = name_tok.text
        if name not in OPS:
            hint = (
                f"{name!r} is a field, not a function"
                if name in FIELDS
                else f"unknown function {name!r}{suggest(name, known_names())}"
            )
            raise self.error(hint, name_tok)
        self.enter()
        args: list[Node] = []
        starts: list[Token] = []
        if not self.accept(")"):
            while True:
                starts.append(self.tok)
                args.append(self.or_expr())
                if self.accept(")"):
                    break
                self.expect(",")
        self.depth -= 1
        problem = check_call(name, tuple(args))
        if problem is not None:
            message, index = problem
            raise self.error(message, starts[index] if index >= 0 else name_tok)
        return Call(name, tuple(args))


def parse(text: str) -> Node:
    """Parse expression text into an AST.

    Args:
        text: the expression, e.g. ``"cs_rank(ts_mean(returns, 20))"``.

    Returns:
        The root ``Node``; ``str(node)`` is its canonical form.

    Raises:
        ExprError: with ``.pos`` (0-based offset) and ``.token`` of the first bad token, and the
            closest valid name for an unknown identifier.
    """
    return _Parser(text).parse()
