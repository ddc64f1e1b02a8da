"""Tokenizer of the expression language.

Tokens: NUMBER (``20``, ``0.5``, ``.5``, ``1e-3``), NAME (``[A-Za-z_][A-Za-z0-9_]*``; the
keywords ``and``, ``or``, ``not`` become OP tokens), OP (``+ - * / < <= > >= == != ( ) ,``) and
END. Anything else (quotes, ``.`` after a name, ``[``, ``;``, ``=``, ``&``, ...) is an ``ExprError``
naming the position and the character, so no Python syntax can get through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from alphaforge.factors.errors import ExprError
from alphaforge.factors.expr.ops import KEYWORDS

MAX_LENGTH = 20_000
"""Longest expression text accepted, in characters."""

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|[-+*/<>(),])
    """,
    re.VERBOSE,
)

_HINTS = {
    ".": "attribute access is not part of the language",
    "[": "indexing is not part of the language",
    "]": "indexing is not part of the language",
    "'": "strings are not part of the language",
    '"': "strings are not part of the language",
    ";": "statements are not part of the language; write one expression",
    "=": "assignment is not part of the language; use '==' to compare",
    "&": "use 'and'",
    "|": "use 'or'",
    "~": "use 'not'",
    "!": "use 'not' (or '!=' to compare)",
    "^": "use power(x, y)",
    "?": "use where(cond, a, b)",
    ":": "use where(cond, a, b)",
    "%": "no modulo operator",
}

Kind = Literal["num", "name", "op", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, text and 0-based character offset."""

    kind: Kind
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an END token.

    Raises:
        ExprError: a character outside the language (with its position and a hint), a number
            glued to a name (``2abc``), or text longer than ``MAX_LENGTH``.
    """
    if not isinstance(text, str):
        raise ExprError(f"expression must be a str; got {type(text).__name__}", 0, "")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression is {len(text)} chars; limit {MAX_LENGTH}", MAX_LENGTH, "")
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            hint = _HINTS.get(ch, "not part of the language")
            raise ExprError(f"unexpected character {ch!r} at position {i}: {hint}", i, ch)
        kind = m.lastgroup
        word = m.group()
        if kind == "num":
            nxt = m.end()
            if nxt < len(text) and (text[nxt].isalnum() or text[nxt] in "_."):
                raise ExprError(
                    f"malformed number {text[i : nxt + 1]!r} at position {i}", i, text[i : nxt + 1]
                )
            tokens.append(Token("num", word, i))
        elif kind == "name":
            tokens.append(Token("op" if word in KEYWORDS else "name", word, i))
        elif kind == "op":
            tokens.append(Token("op", word, i))
        i = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens
