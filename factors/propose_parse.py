"""Robust extraction of candidate factors from an LLM's reply (text is data, never code).

Accepts a JSON list of {name, expression, rationale} objects, possibly inside code fences,
surrounded by prose, wrapped in an object ({"factors": [...]}) or cut off mid-way (partial
JSON: every complete object before the cut is kept). Nothing in the text is executed or
interpolated anywhere; the expression strings go to the expression-language parser only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from alphaforge.factors.llm import MAX_JSON_NESTING, json_nesting

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
MAX_TEXT = 200_000
MAX_FIELD = 2_000


@dataclass(frozen=True, slots=True)
class Candidate:
    """One proposed factor as the model wrote it (strings truncated to MAX_FIELD chars)."""

    name: str
    expression: str
    rationale: str


def _objects(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        for key in ("factors", "candidates", "proposals"):
            if isinstance(value.get(key), list):
                return [v for v in value[key] if isinstance(v, dict)]
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _scan_objects(text: str) -> list[dict[str, Any]]:
    """Every complete top-level {...} JSON object in text (partial JSON / prose tolerant)."""
    out: list[dict[str, Any]] = []
    dec = json.JSONDecoder()
    i = 0
    while True:
        j = text.find("{", i)
        if j < 0:
            return out
        try:
            obj, end = dec.raw_decode(text, j)
        except ValueError:
            i = j + 1
            continue
        out.extend(_objects(obj))
        i = end


def parse_candidates(text: str) -> tuple[list[Candidate], list[str]]:
    """Candidates found in ``text`` and notes on what was skipped.

    Returns:
        (candidates in order, notes) — an entry without a string ``expression`` is skipped
        with a note; a reply with no JSON at all gives no candidates and a note.
    """
    text = text[:MAX_TEXT]
    notes: list[str] = []
    if json_nesting(text) > MAX_JSON_NESTING:
        return [], [f"reply JSON nested deeper than {MAX_JSON_NESTING} levels: ignored"]
    blocks = _FENCE.findall(text) or [text]
    found: list[dict[str, Any]] = []
    for block in blocks:
        s = block.strip()
        start = min((k for k in (s.find("["), s.find("{")) if k >= 0), default=-1)
        if start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(s, start)
            found.extend(_objects(value))
        except ValueError:
            partial = _scan_objects(s[start:])
            if partial:
                notes.append(f"malformed JSON: kept {len(partial)} complete object(s)")
            found.extend(partial)
    if not found:
        notes.append("no JSON candidates in the reply")
    cands: list[Candidate] = []
    for k, obj in enumerate(found):
        expr = obj.get("expression", obj.get("expr"))
        if not isinstance(expr, str) or not expr.strip():
            notes.append(f"entry {k}: no string 'expression'")
            continue
        name = obj.get("name")
        cands.append(Candidate(str(name)[:MAX_FIELD] if name is not None else f"candidate_{k}",
                               expr.strip()[:MAX_FIELD],
                               str(obj.get("rationale", ""))[:MAX_FIELD]))  # fmt: skip
    return cands, notes
