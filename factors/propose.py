"""The proposal loop: propose -> parse -> de-duplicate -> lookahead -> score (train) -> gate ->
one-shot holdout, with every trial in the ledger.

Sources: an OpenAI-compatible LLM (``LLMClient``) or the seeded ``OfflineGenerator`` (the
default without a key, and the baseline). Text from the LLM is data: candidates are parsed by
the expression language only; nothing is executed or interpolated into code, and instructions
inside the text have no effect. Scores shown to the LLM are train-period scores only; each
accepted factor's holdout is evaluated once: the research registry (``factors.registry``)
refuses a signal that already looked at this holdout, recognised by its values on the train
rows (``2 * f`` or ``f + 0`` of an earlier study's factor is a duplicate), and counts every
scored candidate as a trial on this data for the Deflated Sharpe Ratio.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphaforge.engine.defaults import DEFAULTS
from alphaforge.engine.panel import Panel
from alphaforge.engine.tradable import universe_values
from alphaforge.factors import ic
from alphaforge.factors.errors import BudgetExceeded, ExprError, FactorError, LLMError
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.llm import LLMClient
from alphaforge.factors.offline_gen import OfflineGenerator
from alphaforge.factors.propose_parse import Candidate, parse_candidates
from alphaforge.factors.propose_score import Ranks, RankSet, ScoreContext, TailLookahead, score_with
from alphaforge.factors.registry import HoldoutReused, Registry

F64 = np.ndarray


@dataclass(frozen=True, slots=True)
class Gate:
    """Acceptance thresholds on the TRAIN period.

    Attributes:
        min_abs_t: |t-stat| of the mean 1-horizon RankIC. min_sharpe: annualized Sharpe of
        the sign-aligned long-short after costs. max_corr: above this mean cross-sectional
        rank correlation with an accepted or library factor, a candidate is a duplicate.
    """

    min_abs_t: float = 3.0
    min_sharpe: float = 0.0
    max_corr: float = 0.9


@dataclass
class StudyConfig:
    """A proposal study's settings."""

    study: str = "default"
    rounds: int = 3
    per_round: int = 10
    split: float = 0.7
    horizon: int = 1
    lag: int = DEFAULTS.lag
    fee_bps: float = DEFAULTS.fee_bps
    slippage_bps: float = DEFAULTS.slippage_bps
    rebalance_every: int = DEFAULTS.rebalance_every
    gate: Gate = field(default_factory=Gate)
    seed: int = 0
    library_check: bool = True


@dataclass
class StudyResult:
    """Counts per status, accepted factors with train/holdout scores, cost and stop reason.

    ``cost`` and ``tokens`` are this run's LLM spend (cached replies cost nothing); the
    ledger books each call's tokens and cost on the first trial of its reply, and every call
    (also one whose reply held no usable candidate) in its ``calls`` table (Ledger.spend).
    """

    study: str
    source: str
    counts: dict[str, int]
    accepted: list[dict[str, Any]]
    rounds_run: int
    stop_reason: str
    cost: float
    tokens: int


def mean_rank_corr(a: F64, b: F64) -> float:
    """Mean over rows of the Spearman correlation of two (T, N) factors (NaN rows skipped)."""
    values = ic.cs_ic(a, b, "spearman", 3)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def score_train(values: F64, panel: Panel, cfg: StudyConfig) -> dict[str, float]:
    """Lean score: 1-horizon RankIC mean / t-stat and the sign-aligned long-short Sharpe
    (``propose_score.score_with`` on a context built for this call; a Study builds it once)."""
    return score_with(values, ScoreContext.build(panel, cfg), cfg)


def _constant(values: F64) -> bool:
    """All NaN, or every finite value equal."""
    finite = np.isfinite(values)
    if not finite.any():
        return True
    lo = np.min(values, where=finite, initial=np.inf)
    return bool(lo == np.max(values, where=finite, initial=-np.inf))


def build_prompt(panel: Panel, k: int, best: list[tuple[str, dict[str, float]]],
                 worst: list[tuple[str, dict[str, float]]],
                 library: list[str]) -> list[dict[str, str]]:  # fmt: skip
    """Chat messages asking for k candidates as a JSON list (train scores only)."""
    from alphaforge.factors.expr.ops import OPS
    from alphaforge.factors.fields import available_fields

    ops = ", ".join(sorted(OPS))
    fields = ", ".join(sorted(available_fields(panel)))
    hist = "\n".join(
        f"- {e}: RankIC {s['rank_ic']:.4f}, t {s['t_stat']:.2f}, Sharpe {s['sharpe']:.2f}"
        for e, s in best
    ) or "- (none yet)"  # fmt: skip
    bad = "\n".join(f"- {e}" for e, _ in worst) or "- (none yet)"
    system = ("You propose cross-sectional crypto factors in a small expression language. "
              "Reply with a JSON list only: [{\"name\": str, \"expression\": str, "
              "\"rationale\": str}]. No code, no prose.")  # fmt: skip
    user = (f"Grammar: numbers, fields, + - * /, comparisons, and/or/not, function calls. "
            f"Time-series windows are integer literals; ts_delay lags are >= 0.\n"
            f"Fields: {fields}\nOperators: {ops}\n"
            f"Data: {panel.N} symbols, {panel.T} bars of {panel.interval_us} us.\n"
            f"Library (already known, do not repeat): {', '.join(library[:40])}\n"
            f"Best earlier candidates (train period):\n{hist}\nWorst:\n{bad}\n"
            f"Propose {k} new, diverse factors.")  # fmt: skip
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class Study:
    """State of one proposal study over a Panel (train/holdout split by time)."""

    def __init__(self, panel: Panel, cfg: StudyConfig, ledger: Ledger,
                 client: LLMClient | None = None,
                 progress: Callable[[str], None] | None = None) -> None:  # fmt: skip
        if not 0.1 <= cfg.split <= 0.95:
            raise FactorError(f"split must be in [0.1, 0.95]; got {cfg.split}")
        cut = int(panel.T * cfg.split)
        self.train, self.holdout = (
            panel.take_rows(slice(0, cut)),
            panel.take_rows(slice(cut, panel.T)),
        )
        self.cfg, self.ledger, self.client = cfg, ledger, client
        self.source = "llm" if client is not None else "offline"
        self.gen = OfflineGenerator(cfg.seed)
        self.progress = progress or (lambda _m: None)
        self.timings: dict[str, float] = {}
        """Seconds spent per stage: parse, evaluate, dedupe, lookahead, score, holdout, ledger
        (every ledger read and write), library (building the library's ranks)."""
        self.scores: dict[str, dict[str, float]] = {}
        self.accepted = RankSet()
        self.library = RankSet()
        with self._timed("library"):
            if cfg.library_check:
                self._library()
        self._ctx = ScoreContext.build(self.train, cfg)
        self._holdout_ctx: ScoreContext | None = None
        self._lookahead = TailLookahead(self.train, cfg.seed)
        self.registry = Registry(ledger.path)
        self.registry.record_study_data(cfg.study, self.train)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0

    def _library(self) -> None:
        from alphaforge.factors.expr import evaluate, parse
        from alphaforge.factors.library import list_factors

        factors = list_factors(panel=self.train)
        self.library = RankSet(capacity=len(factors))
        for f in factors:
            try:
                values = evaluate(f.expr, self.train)
            except FactorError:
                continue
            # keyed by canonical form, as candidates are ("-returns" prints as "(-returns)")
            self.library.add(str(parse(f.expr)), self.library.ranks(values))

    def _candidates(self, k: int) -> tuple[list[Candidate], dict[str, Any]]:
        elites = [e for e, _ in sorted(self.scores.items(), key=lambda kv: -abs(kv[1]["t_stat"]))][
            :8
        ]
        if self.client is None:
            return self.gen.propose(k, elites), {"model": None}
        ranked = sorted(self.scores.items(), key=lambda kv: -abs(kv[1]["t_stat"]))
        msgs = build_prompt(self.train, k, ranked[:5], ranked[-3:] if len(ranked) > 5 else [],
                            sorted(self.library))  # fmt: skip
        prompt_hash = hashlib.sha256(json.dumps(msgs).encode()).hexdigest()[:16]
        reply = self.client.chat(msgs, seed=self.cfg.seed)
        cands, notes = parse_candidates(reply.content)
        for note in notes:
            self.progress(f"reply: {note}")
        spent = 0 if reply.cached else 1  # a cached reply spent no tokens in this run
        self.ledger.record_call(
            self.cfg.study, model=reply.model, prompt_hash=prompt_hash,
            response_id=reply.response_id, prompt_tokens=spent * reply.prompt_tokens,
            completion_tokens=spent * reply.completion_tokens, cost=reply.cost,
            cached=reply.cached, n_candidates=len(cands),
        )  # fmt: skip
        return cands, {
            "model": reply.model, "prompt_hash": prompt_hash, "response_id": reply.response_id,
            "prompt_tokens": spent * reply.prompt_tokens, "cost": reply.cost,
            "completion_tokens": spent * reply.completion_tokens,
        }  # fmt: skip

    def _record(self, **kw: Any) -> int:
        with self._timed("ledger"):
            return self.ledger.record(**kw)

    def evaluate(self, cand: Candidate, prov: dict[str, Any]) -> str:
        """Run one candidate through every gate; record it; return its status."""
        from alphaforge.factors.expr import compile_expr, parse

        rec = dict(study=self.cfg.study, source=self.source, expression=cand.expression,
                   name=cand.name, rationale=cand.rationale, provenance=prov)  # fmt: skip
        try:
            with self._timed("parse"):
                node = parse(cand.expression)
                canon = str(node)
                fn = compile_expr(node)
        except ExprError as exc:
            self._record(status="rejected", reason=str(exc), **rec)
            return "rejected"
        with self._timed("ledger"):
            seen = self.ledger.seen(self.cfg.study, canon)
        if seen or canon in self.library:
            self._record(status="duplicate", canonical=canon, reason="same canonical form", **rec)
            return "duplicate"
        try:
            with self._timed("evaluate"):
                values = universe_values(fn(self.train), self.train)
        except FactorError as exc:
            self._record(status="rejected", canonical=canon, reason=str(exc), **rec)
            return "rejected"
        if _constant(values):
            self._record(status="rejected", canonical=canon, reason="constant or all NaN", **rec)
            return "rejected"
        with self._timed("dedupe"):
            z = self.accepted.ranks(values)
            hit = self.accepted.first_above(z, self.cfg.gate.max_corr) or (
                self.library.first_above(z, self.cfg.gate.max_corr)
            )
        if hit is not None:
            self._record(status="duplicate", canonical=canon,
                         reason=f"rank corr {hit[1]:.3f} with {hit[0]}", **rec)  # fmt: skip
            return "duplicate"
        with self._timed("lookahead"):
            leak_ts = self._lookahead.leak(fn)
        if leak_ts is not None:
            self._record(status="leak", canonical=canon, reason=str(leak_ts), **rec)
            return "leak"
        return self._gate(canon, fn, values, z, rec)

    def _gate(self, canon: str, fn: Callable[[Panel], F64], values: F64, z: Ranks,
              rec: dict[str, Any]) -> str:  # fmt: skip
        with self._timed("score"):
            s = score_with(values, self._ctx, self.cfg, z)
        self.scores[canon] = s
        with self._timed("ledger"):
            self.registry.record_trial(self.train, "propose", f"{canon}|lag={self.cfg.lag}",
                                       name=rec["name"], study=self.cfg.study,
                                       sr_per_bar=s["sharpe"] / math.sqrt(s["ppy"]),
                                       n_obs=int(s["n_obs"]))  # fmt: skip
        g = self.cfg.gate
        if not (abs(s["t_stat"]) >= g.min_abs_t and s["sharpe"] >= g.min_sharpe):
            self._record(status="failed_gate", canonical=canon, train=s, **rec)
            return "failed_gate"
        try:
            with self._timed("ledger"):
                self.registry.claim_holdout(self.train, self.holdout, values, source="propose",
                                            name=rec["name"], expression=canon,
                                            study=self.cfg.study)  # fmt: skip
        except HoldoutReused as exc:
            self._record(status="duplicate", canonical=canon, train=s, reason=str(exc), **rec)
            return "duplicate"
        tid = self._record(status="accepted", canonical=canon, train=s, **rec)
        self.accepted.add(canon, z)
        with self._timed("holdout"):
            if self._holdout_ctx is None:
                self._holdout_ctx = ScoreContext.build(self.holdout, self.cfg)
            held = score_with(universe_values(fn(self.holdout), self.holdout), self._holdout_ctx,
                              self.cfg)  # fmt: skip
        with self._timed("ledger"):
            self.ledger.record_holdout(tid, held)
        return "accepted"

    def run(self) -> StudyResult:
        """Rounds until the configured number, the budget, or a round with nothing new."""
        counts: dict[str, int] = {}
        stop, rounds = "rounds done", 0
        for r in range(self.cfg.rounds):
            try:
                cands, prov = self._candidates(self.cfg.per_round)
            except BudgetExceeded as exc:
                stop = f"budget: {exc}"
                break
            except LLMError as exc:
                stop = f"llm error: {exc}"
                break
            rounds += 1
            new = 0
            for i, c in enumerate(cands):
                # the call's tokens and cost are booked once, on the first trial of its reply
                free = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
                st = self.evaluate(c, prov if i == 0 else {**prov, **free})
                counts[st] = counts.get(st, 0) + 1
                new += st in ("accepted", "failed_gate")
            self.progress(f"round {r + 1}: {len(cands)} candidate(s), {counts}")
            if new == 0:
                stop = "a round brought nothing new"
                break
        rows = [r for r in self.ledger.rows(self.cfg.study) if r.status == "accepted"]
        cost = self.client.budget.spent_cost if self.client else 0.0  # this run's spend
        tokens = self.client.budget.spent_tokens if self.client else 0
        acc = [{"name": r.name, "expression": r.canonical, "train": r.train, "holdout": r.holdout}
               for r in rows]  # fmt: skip
        return StudyResult(self.cfg.study, self.source, counts, acc, rounds, stop, cost, tokens)


def leaderboard(ledger: Ledger, study: str) -> list[dict[str, Any]]:
    """Scored trials of a study, best |train t-stat| first, with the Deflated Sharpe of each
    (per-bar Sharpe from the annualized one; n_trials = the distinct trials the research
    registry holds on the study's data over every study, command and API call, or every trial
    of the study for a ledger written before the registry existed)."""
    from alphaforge.factors.dsr import deflated_sharpe_ratio

    rows = ledger.rows(study)
    count = Registry(ledger.path).study_trial_count(study)
    n_trials = count.n_trials if count is not None else len(rows)
    scored = [r for r in rows if r.train]
    sharpes = [float(t["sharpe"]) for t in (r.train or {} for r in scored)
               if math.isfinite(t["sharpe"])]  # fmt: skip
    out: list[dict[str, Any]] = []
    for r in scored:
        t = r.train or {}
        dsr = math.nan
        if len(sharpes) >= 2 and math.isfinite(t.get("sharpe", math.nan)):
            ppy = float(t.get("ppy", 365 * 24 * 60))
            per_bar = np.asarray(sharpes) / math.sqrt(ppy)
            d = deflated_sharpe_ratio(sr=t["sharpe"] / math.sqrt(ppy), n_obs=int(t["n_obs"]),
                                      n_trials=n_trials, trial_sharpes=per_bar)  # fmt: skip
            dsr = d.dsr
        out.append({"id": r.id, "name": r.name, "expression": r.canonical, "source": r.source,
                    "status": r.status, "train_rank_ic": t.get("rank_ic"),
                    "train_t": t.get("t_stat"),
                    "train_sharpe": t.get("sharpe"), "dsr": dsr,
                    "holdout_sharpe": (r.holdout or {}).get("sharpe"),
                    "holdout_rank_ic": (r.holdout or {}).get("rank_ic")})  # fmt: skip
    out.sort(
        key=lambda d: (
            -abs(d["train_t"])
            if d["train_t"] is not None and math.isfinite(d["train_t"])
            else math.inf
        )
    )
    return out
