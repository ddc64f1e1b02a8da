"""The trial ledger: every candidate factor ever tried, with provenance, gates and scores.

An embedded SQLite file. The number of trials of a study (every proposal, accepted or not)
is recorded here; the trial count the Deflated Sharpe Ratio uses, and the holdout looks across
studies, are kept by ``factors.registry`` in the same file. Within a study the holdout is looked
at once per canonical expression: a second look raises HoldoutReused.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphaforge.factors.errors import FactorError
from alphaforge.factors.registry import HoldoutReused, connect

SCHEMA = """
create table if not exists trials (
    id integer primary key autoincrement,
    study text not null,
    created_at real not null,
    source text not null,          -- llm | offline | user
    model text,
    prompt_hash text,
    response_id text,
    prompt_tokens integer default 0,
    completion_tokens integer default 0,
    cost real default 0,
    name text,
    expression text not null,      -- as proposed
    canonical text,                -- canonical printed form (null when it did not parse)
    status text not null,          -- rejected | duplicate | leak | failed_gate | accepted
    reason text,
    rationale text,
    train json,
    holdout json,
    holdout_at real
);
create index if not exists trials_study on trials(study, canonical);
create table if not exists calls (
    id integer primary key autoincrement,
    study text not null,
    created_at real not null,
    model text,
    prompt_hash text,
    response_id text,
    prompt_tokens integer default 0,
    completion_tokens integer default 0,
    cost real default 0,
    cached integer default 0,
    n_candidates integer default 0
);
"""


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One ledger row as a mapping-friendly record."""

    id: int
    study: str
    source: str
    name: str | None
    expression: str
    canonical: str | None
    status: str
    reason: str | None
    train: dict[str, Any] | None
    holdout: dict[str, Any] | None
    model: str | None
    cost: float
    prompt_tokens: int
    completion_tokens: int


class Ledger:
    """SQLite-backed ledger of trials (see module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(SCHEMA)

    def _conn(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path)

    def record(self, study: str, source: str, expression: str, status: str, *,
               canonical: str | None = None, name: str | None = None, reason: str | None = None,
               rationale: str | None = None, train: Mapping[str, Any] | None = None,
               provenance: Mapping[str, Any] | None = None) -> int:  # fmt: skip
        """Add a trial; returns its id."""
        p = dict(provenance or {})
        with self._conn() as c:
            cur = c.execute(
                "insert into trials (study, created_at, source, model, prompt_hash, response_id,"
                " prompt_tokens, completion_tokens, cost, name, expression, canonical, status,"
                " reason, rationale, train) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (study, time.time(), source, p.get("model"), p.get("prompt_hash"),
                 p.get("response_id"), int(p.get("prompt_tokens", 0)),
                 int(p.get("completion_tokens", 0)), float(p.get("cost", 0.0)), name,
                 expression, canonical, status, reason, rationale,
                 json.dumps(dict(train)) if train is not None else None),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

    def record_call(self, study: str, *, model: str | None, prompt_hash: str | None,
                    response_id: str | None, prompt_tokens: int, completion_tokens: int,
                    cost: float, cached: bool, n_candidates: int) -> None:  # fmt: skip
        """Book one LLM call (also calls whose reply held no usable candidate)."""
        with self._conn() as c:
            c.execute(
                "insert into calls (study, created_at, model, prompt_hash, response_id,"
                " prompt_tokens, completion_tokens, cost, cached, n_candidates)"
                " values (?,?,?,?,?,?,?,?,?,?)",
                (study, time.time(), model, prompt_hash, response_id, int(prompt_tokens),
                 int(completion_tokens), float(cost), int(cached), int(n_candidates)),
            )  # fmt: skip

    def spend(self, study: str) -> dict[str, float]:
        """LLM calls, tokens and money a study spent (every call, cached ones at 0)."""
        with self._conn() as c:
            row = c.execute(
                "select count(*), coalesce(sum(prompt_tokens + completion_tokens), 0),"
                " coalesce(sum(cost), 0) from calls where study=? and cached=0",
                (study,),
            ).fetchone()
        return {"calls": int(row[0]), "tokens": int(row[1]), "cost": float(row[2])}

    def seen(self, study: str, canonical: str) -> bool:
        """Whether this canonical expression was already tried in the study."""
        with self._conn() as c:
            row = c.execute("select 1 from trials where study=? and canonical=? limit 1",
                            (study, canonical)).fetchone()  # fmt: skip
        return row is not None

    def record_holdout(self, trial_id: int, scores: Mapping[str, Any]) -> None:
        """Store the one-shot holdout score of a trial.

        Raises:
            HoldoutReused: the factor's holdout was already evaluated in this study.
        """
        with self._conn() as c:
            row = c.execute(
                "select study, canonical from trials where id=?", (trial_id,)
            ).fetchone()
            if row is None:
                raise FactorError(f"no trial {trial_id} in {self.path}")
            prior = c.execute(
                "select id from trials where study=? and canonical=? and holdout is not null",
                (row["study"], row["canonical"]),
            ).fetchone()
            if prior is not None:
                raise HoldoutReused(f"holdout of {row['canonical']!r} was already evaluated "
                                    f"(trial {prior['id']}); a second look is refused")  # fmt: skip
            c.execute("update trials set holdout=?, holdout_at=? where id=?",
                      (json.dumps(dict(scores)), time.time(), trial_id))  # fmt: skip

    def count(self, study: str) -> int:
        """Number of trials in the study (every proposal counts)."""
        with self._conn() as c:
            return int(
                c.execute("select count(*) from trials where study=?", (study,)).fetchone()[0]
            )

    def rows(self, study: str | None = None) -> list[TrialRow]:
        """Every trial (of one study or all), oldest first."""
        q = "select * from trials" + (" where study=?" if study else "") + " order by id"
        with self._conn() as c:
            raw = c.execute(q, (study,) if study else ()).fetchall()
        return [TrialRow(r["id"], r["study"], r["source"], r["name"], r["expression"],
                         r["canonical"], r["status"], r["reason"],
                         json.loads(r["train"]) if r["train"] else None,
                         json.loads(r["holdout"]) if r["holdout"] else None, r["model"],
                         float(r["cost"] or 0.0), int(r["prompt_tokens"] or 0),
                         int(r["completion_tokens"] or 0)) for r in raw]  # fmt: skip

    def studies(self) -> list[str]:
        """Names of the studies recorded."""
        with self._conn() as c:
            return [r[0] for r in c.execute("select distinct study from trials order by 1")]
