"""Errors raised by factors (expression language, library, scoring, proposals).

The tree::

    FactorError                         root of every factor error
    ├── ExprError(ValueError)           bad expression text: carries .pos (0-based char offset)
    │                                   and .token; message suggests the closest valid name
    ├── UnknownFactor(KeyError)         no library factor of that name
    ├── LookaheadError(ValueError)      a factor that reads values from after its decision time
  ├── ScoreError(ValueError)          inputs that cannot be scored (shapes, horizons, too few rows)
    └── LLMError(RuntimeError)          the chat-completions endpoint failed after retries
        └── BudgetExceeded              a call/token/money budget stops the proposal loop
"""

from __future__ import annotations


class FactorError(Exception):
    """Root of all factor errors."""


class ExprError(FactorError, ValueError):
    """A malformed expression.

    Attributes:
        pos: 0-based character offset of the offending token in the source text.
        token: the offending token text ('' at end of input).
    """

    def __init__(self, message: str, pos: int = 0, token: str = "") -> None:
        super().__init__(message)
        self.pos = pos
        self.token = token


class UnknownFactor(FactorError, KeyError):
    """No library factor of that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class LookaheadError(FactorError, ValueError):
    """A factor whose value at t depends on data after t."""


class ScoreError(FactorError, ValueError):
    """Inputs that cannot be scored."""


class LLMError(FactorError, RuntimeError):
    """The LLM endpoint failed after retries, or answered with an unusable body."""


class BudgetExceeded(LLMError):
    """A configured budget (calls, tokens, money) is used up."""
