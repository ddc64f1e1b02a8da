"""``alphaforge score --library``: the whole library (and the user's expressions from a file)
ranked in one call (factors.rank_library), with progress on stderr and ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphaforge.cli.render import table_text, to_json
from alphaforge.engine.formatting import fmt
from alphaforge.factors.errors import ScoreError

COLUMNS = (("rank", "rank"), ("name", "factor"), ("group", "group"), ("rank_ic", "RankIC"),
           ("t_stat", "t"), ("icir", "ICIR"), ("sharpe", "net Sharpe"),
           ("gross_sharpe", "gross Sharpe"), ("breakeven_bps", "break-even bps"),
           ("dsr", "DSR"))  # fmt: skip


def read_expressions(path: str | Path) -> dict[str, str]:
    """Expressions from a text file: one per line, ``name = expression`` or a bare expression
    (named ``expr<line>``); blank lines and ``#`` comments are skipped.

    Raises:
        ScoreError: an unreadable file, a duplicate name or an empty expression (file and
            line named).
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{p}: cannot read the expressions file ({exc})") from None
    out: dict[str, str] = {}
    for i, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, expr = line.partition("=")
        if sep and name.strip().isidentifier() and not expr.startswith("="):
            name, expr = name.strip(), expr.strip()
        else:
            name, expr = f"expr{i}", line
        if not expr:
            raise ScoreError(f"{p}:{i}: {name!r} has no expression")
        if name in out:
            raise ScoreError(f"{p}:{i}: the name {name!r} is used twice")
        out[name] = expr
    return out


def check_expressions(exprs: dict[str, str], path: str, check: Any) -> None:
    """``check(text)`` for each expression, re-raising with the file and name in the message."""
    for name, text in exprs.items():
        try:
            check(text)
        except Exception as exc:  # the expression language's own error, made to name the line
            raise type(exc)(f"{path}: {name}: {exc}", *getattr(exc, "args", ())[1:]) from None


def render_ranking(ranking: Any, top: int | None, as_json: bool) -> str:
    """The ranking as a table (best ``top`` rows) or JSON (every row)."""
    doc = ranking.to_dict()
    if as_json:
        return to_json(doc)
    rows = [[fmt(r[k]) for k, _ in COLUMNS] for r in ranking.rows[:top]]
    t = ranking.trials
    head = (f"{len(ranking.rows)} factors ranked by |t| of RankIC h={ranking.horizon} on "
            f"{ranking.n_rows} bars x {ranking.n_assets} assets; {t['n_trials']} trials on "
            f"this data, Sharpe needed to beat luck {fmt(t['sr_needed_annual'])}")  # fmt: skip
    text = "".join(f"WARNING: {w}\n" for w in ranking.warnings)
    text += table_text(head, [h for _, h in COLUMNS], rows, width=160)
    if ranking.split:
        text += f"ranked on the first {ranking.split['train_rows']} rows (train split)\n"
    for s in ranking.skipped:
        text += f"skipped {s['name']}: needs {s['needs']}\n"
    return text + f"execution: {ranking.execution}\n"
