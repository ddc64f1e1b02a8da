"""Errors raised by the engine (Panel, weights, backtest, metrics, book, gap, report).

The tree::

    EngineError                      root of every engine error
    ├── ShapeError(ValueError)       arrays whose shapes do not line up
    ├── InputError(ValueError)       bad values: NaN price under a position, negative price, ...
    ├── OptionError(ValueError)      unknown option name or a parameter out of range
    ├── PanelError(ValueError)       Panel construction / lookup: unsorted or duplicate
    │                                timestamps, unknown field or symbol
    └── BookSequenceError(ValueError) an order-book diff stream with a sequence break
                                     (update ids do not chain) or a crossed rebuilt book

Messages name the argument, field or row at fault and the expected vs actual value.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of all engine errors."""


class ShapeError(EngineError, ValueError):
    """Arrays whose shapes do not line up (message gives both shapes)."""


class InputError(EngineError, ValueError):
    """A value that the engine cannot simulate (e.g. NaN price where a position is held)."""


class OptionError(EngineError, ValueError):
    """An unknown option or a parameter outside its valid range."""


class PanelError(EngineError, ValueError):
    """A Panel that cannot be built or queried as asked."""


class BookSequenceError(EngineError, ValueError):
    """A depth-diff stream that cannot be replayed: a sequence break (message names the symbol,
    the message's row, time and the expected vs actual update id) or a crossed rebuilt book."""
