"""Turn what a user calls a factor into (T, N) values, with a lookahead verdict.

Four kinds of factor enter ``score``, ``backtest``, ``sweep``, ``walkforward`` and the API:

- a library name or expression text: parsed and compiled by the expression language, which
  has no operator that reads a later row. Verdict ``safe``: "safe by construction".
- a Python callable ``Panel -> (T, N)``: run through ``factors.lookahead.check_lookahead``
  (truncation and perturbation at early, dense and spread cuts). A leak raises
  ``LookaheadError`` naming the largest change and where; otherwise verdict ``checked``.
- a (T, N) array with ``available_us``, the UTC microsecond time each value became known
  ((T,) per row or (T, N) per cell): every finite value must be known by its bar's time
  (bars are indexed by availability time). A later one raises ``LookaheadError`` naming the
  row, symbol and both times; otherwise verdict ``checked``.
- a bare (T, N) array: nothing can be checked. Verdict ``unverified``; every result shows it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import Panel
from alphaforge.engine.tradable import universe_values
from alphaforge.factors.errors import ExprError, LookaheadError, ScoreError, UnknownFactor

F64 = npt.NDArray[np.float64]
FactorInput = str | F64 | Callable[[Panel], Any]


@dataclass(frozen=True, slots=True)
class LookaheadVerdict:
    """How a factor was cleared of reading the future.

    Attributes:
        status: "safe" (expression language), "checked" (callable or array with availability
            times, check passed) or "unverified" (a bare array).
        detail: one sentence for tables and reports.
    """

    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """{"status", "detail"}."""
        return {"status": self.status, "detail": self.detail}


SAFE = LookaheadVerdict(
    "safe", "safe by construction: the expression language cannot read a later row"
)
UNVERIFIED = LookaheadVerdict(
    "unverified",
    "UNVERIFIED: precomputed values without availability times; lookahead cannot be checked "
    "(pass available_us, or pass the factor as a function of the panel)",
)


class ResolvedFactor(NamedTuple):
    """(name, canonical expression or None, (T, N) values, lookahead verdict)."""

    name: str
    expr: str | None
    values: F64
    lookahead: LookaheadVerdict


def check_availability(available_us: npt.ArrayLike, values: F64, panel: Panel) -> None:
    """Every finite value must be known by its bar's time.

    Args:
        available_us: (T,) or (T, N) int64 UTC microseconds when each value became known.
        values: (T, N) factor values.

    Raises:
        LookaheadError: a value known after its bar (row, symbol and both times named), or
            availability times of the wrong shape.
    """
    avail = np.asarray(available_us)
    if avail.shape == (panel.T,):
        avail = np.broadcast_to(avail[:, None], (panel.T, panel.N))
    if avail.shape != (panel.T, panel.N):
        raise LookaheadError(
            f"available_us has shape {avail.shape}; expected (T,) = ({panel.T},) or "
            f"(T, N) = {(panel.T, panel.N)}"
        )
    late = np.isfinite(values) & (avail.astype(np.int64) > panel.ts_us[:, None])
    if late.any():
        r, j = np.argwhere(late)[0]
        raise LookaheadError(
            f"precomputed factor value at row {r} ({panel.symbols[j]}, bar time "
            f"ts_us={int(panel.ts_us[r])}) became available at ts_us={int(avail[r, j])}, "
            f"after its bar; {int(late.sum())} value(s) are used before they were known"
        )


def _callable_name(fn: Callable[..., Any]) -> str:
    return f"<{getattr(fn, '__name__', type(fn).__name__)}>"


def resolve_factor(
    factor: FactorInput, panel: Panel, *, available_us: npt.ArrayLike | None = None
) -> ResolvedFactor:
    """Name, canonical expression, (T, N) values and lookahead verdict of a factor.

    Values are NaN where the symbol is outside the universe at that row (the Panel's
    ``tradable`` field is 0), so no command ranks, scores or trades a symbol that is not listed.

    Args:
        factor: library name, expression text, callable ``Panel -> (T, N)`` or (T, N) array.
        panel: the data.
        available_us: for an array, when each value became known (see module docstring).

    Raises:
        LookaheadError: a callable that reads later rows, an array value known after its bar.
        ScoreError: an array or callable result of the wrong shape; ExprError / UnknownFactor
            from the expression language for bad text.
    """
    if isinstance(factor, str):
        return _expression(factor, panel)
    if callable(factor):
        from alphaforge.factors.lookahead import check_lookahead

        name = _callable_name(factor)
        report = check_lookahead(factor, panel)
        report.raise_if_leaks(name)
        values = np.ascontiguousarray(factor(panel), dtype=np.float64)
        verdict = LookaheadVerdict("checked", "checked: " + report.describe(name).split(": ", 1)[1])
        return ResolvedFactor(name, None, universe_values(values, panel), verdict)
    arr = np.ascontiguousarray(factor, dtype=np.float64)
    if arr.shape != (panel.T, panel.N):
        raise ScoreError(f"factor array has shape {arr.shape}; panel is {(panel.T, panel.N)}")
    if available_us is None:
        return ResolvedFactor("<array>", None, universe_values(arr, panel), UNVERIFIED)
    check_availability(available_us, arr, panel)
    verdict = LookaheadVerdict(
        "checked", "checked: every precomputed value was available by its bar's time"
    )
    return ResolvedFactor("<array>", None, universe_values(arr, panel), verdict)


_BARE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_factor_text(factor: str, panel: Panel | None = None) -> str:
    """The canonical expression of a library name or expression text, checked without
    evaluating it: commands call this for every factor they were given before any work starts.

    A bare name that is neither a library factor nor a field is an unknown factor (the closest
    library names suggested); with ``panel``, every field the expression reads must be one the
    panel holds or can derive (the error names the field and the dataset it comes from).

    Raises:
        UnknownFactor: an unknown bare name.
        ExprError: a malformed expression, or a field the panel cannot feed.
    """
    from alphaforge.factors.expr import parse
    from alphaforge.factors.fields import FIELDS, SOURCES, available_fields
    from alphaforge.factors.library import LIBRARY

    text = factor.strip()
    if text in LIBRARY:
        text = LIBRARY[text].expr
    elif _BARE_NAME.match(text) and text not in FIELDS:
        close = difflib.get_close_matches(text, [*LIBRARY, *FIELDS], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownFactor(f"unknown factor {text!r}: not a library factor or a field{hint} "
                            "(`alphaforge factors list` shows the library)")  # fmt: skip
    node = parse(text)
    if panel is not None:
        lacking = sorted(node.fields() - available_fields(panel))
        if lacking:
            where = "; ".join(f"{f} needs {SOURCES[f]}" for f in lacking if f in SOURCES)
            raise ExprError(
                f"{factor.strip()!r} reads {', '.join(lacking)}, which this panel neither holds "
                f"nor can derive" + (f" ({where})" if where else ""),
                0,
                lacking[0],
            )
    return str(node)


def _expression(factor: str, panel: Panel) -> ResolvedFactor:
    from alphaforge.factors.expr import evaluate, parse

    name = factor.strip()
    node = parse(check_factor_text(name, panel))
    values = np.ascontiguousarray(evaluate(node, panel), dtype=np.float64)
    if values.shape != (panel.T, panel.N):
        raise ScoreError(
            f"{name!r} evaluated to shape {values.shape}; panel is {(panel.T, panel.N)}"
        )
    return ResolvedFactor(name, str(node), universe_values(values, panel), SAFE)
