"""Proposal-loop benchmark (issue 7): candidates gated and scored per second, and the LLM's
cost per accepted factor from the ledger.

Throughput: ``--candidates`` offline-generator proposals (seeded enumerative search) go through
``Study.evaluate`` (parse -> evaluate -> dedupe/correlation -> lookahead -> train score -> gate
-> holdout, every trial written to a SQLite ledger) on ``--cols`` assets x ``--rows`` bars of
synthetic 1-minute bars with 0.1% missing cells, with and without the library redundancy
check. Per-stage seconds come from ``Study.timings``; the per-study setup (the library's ranks,
forward returns, lookahead noise) is reported separately as ``setup_s``.

Anchor (same run, same candidates): ``SeedStudy``, the loop as first written (per candidate:
forward returns, ``ic.cs_ic`` against forward returns and against every accepted and library
factor's values, ``check_lookahead`` on the train tail with fresh noise, weights on every row),
with the missing-bar fix applied so that it runs at all. It is timed on the first
``--anchor-candidates`` candidates (it takes seconds per candidate with the library check), and
so is our loop again (``ours_anchor_subset``): the speed-ups compare the same candidates.
``--check`` first compares both loops candidate by candidate: the same status, the same reason,
train scores equal within rtol 1e-9.

LLM cost: a loopback fake OpenAI server (tests/factors/fake_openai.py) answers ``--llm-rounds``
prompts with ``--per-round`` candidates each (generator expressions mixed with a syntax error,
a library copy, a repeat and Python code) and a usage block (``--prompt-tokens`` and
``--completion-tokens`` per candidate); cost comes from the default price table. The cost per
accepted factor is the sum of the ledger rows' cost over the number of accepted rows (each call
is booked on the first trial of its reply), also priced for every model of the table.

JIT: a small study first compiles (or loads from NUMBA_CACHE_DIR) every kernel: ``jit_s``.

Run: ``python benchmarks/bench_propose.py --rows 50000 --cols 50 --candidates 20 --check``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.engine.backtest import run_backtest  # noqa: E402
from alphaforge.engine.defaults import DEFAULTS  # noqa: E402
from alphaforge.engine.metrics import sharpe_ratio  # noqa: E402
from alphaforge.engine.panel import Panel  # noqa: E402
from alphaforge.engine.weights import weights_from_signals  # noqa: E402
from alphaforge.factors import ic  # noqa: E402
from alphaforge.factors.errors import ExprError, FactorError  # noqa: E402
from alphaforge.factors.ledger import Ledger  # noqa: E402
from alphaforge.factors.llm import DEFAULT_PRICES, LLMClient  # noqa: E402
from alphaforge.factors.offline_gen import OfflineGenerator  # noqa: E402
from alphaforge.factors.propose import Gate, Study, StudyConfig, mean_rank_corr  # noqa: E402
from alphaforge.factors.propose_parse import Candidate  # noqa: E402
from alphaforge.factors.returns import execution_prices, forward_returns  # noqa: E402
from benchmarks.common import cpu_seconds, machine_info, markdown_table  # noqa: E402

MINUTE_US = 60_000_000
REBALANCE_EVERY = DEFAULTS.rebalance_every  # --rebalance-every overrides it
STAGES = ("parse", "evaluate", "dedupe", "lookahead", "score", "holdout", "ledger")


class SeedStudy(Study):
    """The proposal loop as first written (the anchor): every quantity per candidate."""

    def _library(self) -> None:
        from alphaforge.factors.expr import evaluate, parse
        from alphaforge.factors.library import list_factors

        self.lib_values: dict[str, Any] = {}
        for f in list_factors(panel=self.train):
            try:
                self.lib_values[str(parse(f.expr))] = evaluate(f.expr, self.train)
            except FactorError:
                continue

    def evaluate(self, cand: Candidate, prov: dict[str, Any]) -> str:
        from alphaforge.factors.expr import evaluate, parse
        from alphaforge.factors.lookahead import check_lookahead

        rec = dict(study=self.cfg.study, source=self.source, expression=cand.expression,
                   name=cand.name, rationale=cand.rationale, provenance=prov)  # fmt: skip
        lib = getattr(self, "lib_values", {})
        acc: dict[str, Any] = self.__dict__.setdefault("acc_values", {})
        try:
            with self._timed("parse"):
                node = parse(cand.expression)
        except ExprError as exc:
            self._record(status="rejected", reason=str(exc), **rec)
            return "rejected"
        canon = str(node)
        with self._timed("ledger"):
            seen = self.ledger.seen(self.cfg.study, canon)
        if seen or canon in lib:
            self._record(status="duplicate", canonical=canon, reason="same canonical form", **rec)
            return "duplicate"
        try:
            with self._timed("evaluate"):
                values = evaluate(node, self.train)
        except FactorError as exc:
            self._record(status="rejected", canonical=canon, reason=str(exc), **rec)
            return "rejected"
        if not np.isfinite(values).any() or np.nanstd(values) == 0:
            self._record(status="rejected", canonical=canon, reason="constant or all NaN", **rec)
            return "rejected"
        with self._timed("dedupe"):
            hit = None
            for other, vals in (*acc.items(), *lib.items()):
                c = mean_rank_corr(values, vals)
                if abs(c) > self.cfg.gate.max_corr:
                    hit = (other, c)
                    break
        if hit is not None:
            self._record(status="duplicate", canonical=canon,
                         reason=f"rank corr {hit[1]:.3f} with {hit[0]}", **rec)  # fmt: skip
            return "duplicate"
        with self._timed("lookahead"):
            tail = self.train.take_rows(slice(max(0, self.train.T - 400), self.train.T))
            report = check_lookahead(node, tail, n_cuts=2, seed=self.cfg.seed)
        if report.leaks:
            self._record(status="leak", canonical=canon, reason=str(report.first_leak_ts_us),
                         **rec)  # fmt: skip
            return "leak"
        with self._timed("score"):
            s = seed_score(values, self.train, self.cfg)
        self.scores[canon] = s
        g = self.cfg.gate
        if not (abs(s["t_stat"]) >= g.min_abs_t and s["sharpe"] >= g.min_sharpe):
            self._record(status="failed_gate", canonical=canon, train=s, **rec)
            return "failed_gate"
        tid = self._record(status="accepted", canonical=canon, train=s, **rec)
        acc[canon] = values
        with self._timed("holdout"):
            held = seed_score(evaluate(node, self.holdout), self.holdout, self.cfg)
        with self._timed("ledger"):
            self.ledger.record_holdout(tid, held)
        return "accepted"


def fill_prices(px: Any) -> Any:
    """The seed loop's price fill: last positive price carried forward down each column
    (leading gaps stay NaN). The product's gate now fills like ``alphaforge backtest``."""
    ok = px > 0
    rows = np.where(ok, np.arange(px.shape[0])[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    out = np.take_along_axis(px, rows, axis=0)
    return np.where(out > 0, out, np.nan)


def seed_score(values: Any, panel: Panel, cfg: StudyConfig) -> dict[str, float]:
    """The first score_train: forward returns, cs_ic and weights on every row, per call (plus
    the missing-bar handling, without which it raises on gaps)."""
    fwd = forward_returns(panel, (cfg.horizon,), cfg.lag)[0]
    summ = ic.ic_summary(ic.cs_ic(values, fwd, "spearman", 3), cfg.horizon)
    sign = 1.0 if not (summ["mean"] < 0) else -1.0
    w = weights_from_signals(sign * values, "rank")
    if cfg.rebalance_every > 1:
        w[np.arange(panel.T) % cfg.rebalance_every != 0] = np.nan
    w[~np.isfinite(execution_prices(panel, cfg.lag))] = np.nan
    open_ = panel.fields.get("open")
    res = run_backtest(w, close=fill_prices(panel["close"]),
                       open=None if open_ is None else fill_prices(open_), lag=cfg.lag,
                       fee_bps=cfg.fee_bps, slippage_bps=cfg.slippage_bps)  # fmt: skip
    return {"rank_ic": float(summ["mean"]), "t_stat": float(summ["t_stat"]),
            "sharpe": float(sharpe_ratio(res.returns, panel.periods_per_year)),
            "sign": sign, "n_obs": int(panel.T), "ppy": float(panel.periods_per_year)}  # fmt: skip


PLANTED = "cs_zscore(ts_mean(taker_buy_volume / volume, 5))"


def make_panel(rows: int, cols: int, seed: int, strength: float = 0.002) -> Panel:
    """1m bars whose next open-to-open return follows PLANTED (times ``strength``) plus noise;
    OHLCV, quote volume, trades, taker volume; 0.1% missing cells."""
    from alphaforge.factors.expr import evaluate

    rng = np.random.default_rng(seed)
    ts = (np.arange(1, rows + 1, dtype=np.int64) + 28_000_000) * MINUTE_US
    symbols = tuple(f"S{i:03d}" for i in range(cols))
    volume = rng.lognormal(3.0, 0.8, (rows, cols))
    taker = volume * rng.beta(5, 5, (rows, cols))
    base = Panel(ts, symbols, {"volume": volume, "taker_buy_volume": taker}, None, MINUTE_US)
    signal = np.nan_to_num(evaluate(PLANTED, base))
    r = np.zeros((rows, cols))
    r[2:] = strength * signal[:-2] + rng.normal(0.0, 0.001, (rows - 2, cols))
    open_ = 100.0 * np.cumprod(1.0 + r, axis=0)  # decision at s-2 earns open[s]/open[s-1]
    close = np.vstack([open_[1:], open_[-1:]]) * np.exp(rng.normal(0, 2e-4, (rows, cols)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, (rows, cols)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, (rows, cols)))
    fields = {"open": open_, "high": high, "low": low, "close": close, "volume": volume,
              "quote_volume": volume * (high + low) / 2, "trades": np.floor(volume * 2) + 1.0,
              "taker_buy_volume": taker}  # fmt: skip
    knock = rng.random((rows, cols)) < 0.001
    for a in fields.values():
        a[knock] = np.nan
    return Panel(ts, symbols, fields, None, MINUTE_US)


def study_cfg(library: bool, seed: int) -> StudyConfig:
    return StudyConfig(
        library_check=library,
        seed=seed,
        gate=Gate(min_abs_t=3.0, min_sharpe=0.0),
        rebalance_every=REBALANCE_EVERY,
    )


def run_loop(cls: type[Study], panel: Panel, cands: list[Candidate], library: bool,
             seed: int) -> dict[str, Any]:  # fmt: skip
    """Setup + every candidate through ``cls.evaluate``; wall/CPU seconds, stages, rows."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp) / "bench.sqlite")
        t0, c0 = time.perf_counter(), cpu_seconds()
        study = cls(panel, study_cfg(library, seed), ledger)
        setup_s = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), cpu_seconds()
        statuses = [study.evaluate(c, {"model": None}) for c in cands]
        wall, cpu = time.perf_counter() - t1, cpu_seconds() - c1
        rows = ledger.rows()
    return {"setup_s": setup_s, "setup_cpu_s": c1 - c0, "wall_s": wall, "cpu_s": cpu,
            "per_s": len(cands) / wall, "statuses": statuses,
            "stages": {k: study.timings.get(k, 0.0) for k in STAGES},
            "rows": [(r.status, r.reason, r.train) for r in rows]}  # fmt: skip


def check_parity(ours: dict[str, Any], seed_run: dict[str, Any]) -> None:
    """Same status and reason per candidate; train scores within rtol 1e-9."""
    for k, (a, b) in enumerate(zip(ours["rows"], seed_run["rows"], strict=False)):
        assert a[0] == b[0], f"candidate {k}: status {a[0]} vs seed loop {b[0]} ({a[1]}, {b[1]})"
        if a[1] and a[1].startswith("rank corr"):
            name_a, name_b = a[1].split(" with ", 1)[1], b[1].split(" with ", 1)[1]
            assert name_a == name_b, (k, a[1], b[1])
            assert abs(float(a[1].split()[2]) - float(b[1].split()[2])) <= 1e-3, (k, a, b)
        else:
            assert a[1] == b[1], (k, a[1], b[1])
        if a[2] is not None:
            for key in ("rank_ic", "t_stat", "sharpe"):
                np.testing.assert_allclose(a[2][key], b[2][key], rtol=1e-9, err_msg=f"{k} {key}")


def llm_cost(panel: Panel, args: argparse.Namespace) -> dict[str, Any]:
    """Scripted fake-LLM study; cost per accepted factor from the ledger rows."""
    from tests.factors.fake_openai import FakeOpenAI, completion

    gen = OfflineGenerator(args.seed + 101)
    extras = ["ts_mean(close, ", "-returns", "__import__('os').system('true')"]
    k = args.per_round
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        seen: list[str] = []
        good = [PLANTED, "cs_rank(ts_mean(taker_buy_volume / volume, 3))",
                "cs_zscore(ts_decay_linear(taker_buy_volume / volume, 10))"]  # fmt: skip
        for _ in range(args.llm_rounds):
            exprs = [*good[:1]] + [c.expression for c in gen.propose(max(k - 5, 1))]
            good = good[1:]
            exprs += [*extras, seen[0] if seen else extras[0]][: k - len(exprs)]
            seen += exprs
            body = json.dumps([{"name": f"c{i}", "expression": e, "rationale": "bench"}
                               for i, e in enumerate(exprs)])  # fmt: skip
            usage = {"prompt_tokens": args.prompt_tokens,
                     "completion_tokens": args.completion_tokens * len(exprs)}  # fmt: skip
            fake.push(200, completion(body, **usage))
        client = LLMClient(base_url=fake.base_url, api_key="bench", model="gpt-4o-mini")
        ledger = Ledger(Path(tmp) / "llm.sqlite")
        cfg = StudyConfig(rounds=args.llm_rounds, per_round=k, seed=args.seed)
        res = Study(panel, cfg, ledger, client).run()
        rows = ledger.rows()
    accepted = sum(r.status == "accepted" for r in rows)
    cost = sum(r.cost for r in rows)
    pt, ct = sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows)
    per_model = {m: (pt * p[0] + ct * p[1]) / 1e6 / accepted if accepted else None
                 for m, p in DEFAULT_PRICES.items()}  # fmt: skip
    return {"calls": len(fake.requests), "trials": len(rows), "accepted": accepted,
            "counts": res.counts, "prompt_tokens": pt, "completion_tokens": ct,
            "cost_usd": cost, "cost_per_accepted_usd": cost / accepted if accepted else None,
            "tokens_per_accepted": (pt + ct) / accepted if accepted else None,
            "cost_per_accepted_by_model": per_model, "stop_reason": res.stop_reason}  # fmt: skip


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=50_000, help="bars (T)")
    ap.add_argument("--cols", type=int, default=50, help="assets (N)")
    ap.add_argument("--candidates", type=int, default=20, help="offline candidates timed")
    ap.add_argument("--anchor-candidates", type=int, default=4, help="seed-loop candidates")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (best kept)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed small studies (JIT)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rebalance-every",
        type=int,
        default=None,
        help="bars between rebalances (default: the product's default)",
    )
    ap.add_argument("--check", action="store_true", help="parity with the seed loop first")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--llm-rows", type=int, default=5_000, help="bars of the LLM-cost study")
    ap.add_argument("--llm-rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--prompt-tokens", type=int, default=2_000, help="per call")
    ap.add_argument("--completion-tokens", type=int, default=60, help="per candidate")
    return ap.parse_args()


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    panel = make_panel(args.rows, args.cols, args.seed)
    cands = OfflineGenerator(args.seed).propose(args.candidates)
    out: dict[str, Any] = {}
    for library in (False, True):
        tag = "library" if library else "no_library"
        if args.check:
            small = make_panel(3_000, 12, args.seed + 1)
            check_parity(run_loop(Study, small, cands, library, args.seed),
                         run_loop(SeedStudy, small, cands, library, args.seed))  # fmt: skip
        runs = [run_loop(Study, panel, cands, library, args.seed) for _ in range(args.repeat)]
        ours = min(runs, key=lambda r: r["wall_s"])
        sub = cands[: args.anchor_candidates]
        ours_sub = run_loop(Study, panel, sub, library, args.seed)
        seed_run = run_loop(SeedStudy, panel, sub, library, args.seed)
        if args.check:
            check_parity(ours, seed_run)
        out[tag] = {"ours": ours, "ours_anchor_subset": ours_sub, "seed_loop": seed_run}
    return out


def main() -> None:
    global REBALANCE_EVERY
    args = parse_args()
    if args.rebalance_every is not None:
        REBALANCE_EVERY = args.rebalance_every
    t0 = time.perf_counter()
    for _ in range(max(args.warmup, 1)):
        warm = make_panel(800, 8, args.seed + 2)
        for library in (False, True):
            run_loop(Study, warm, OfflineGenerator(3).propose(6), library, args.seed)
            run_loop(SeedStudy, warm, OfflineGenerator(3).propose(3), library, args.seed)
    jit_s = time.perf_counter() - t0
    res = throughput(args)
    cost = llm_cost(make_panel(args.llm_rows, args.cols, args.seed + 7), args)
    table = []
    for tag, pair in res.items():
        for impl, r in pair.items():
            row = {"case": tag, "loop": impl, "candidates": len(r["statuses"]),
                   "setup_s": r["setup_s"], "cand/s": r["per_s"],
                   "cpu_s/cand": r["cpu_s"] / max(len(r["statuses"]), 1)}  # fmt: skip
            row.update({f"{k}_s": v for k, v in r["stages"].items()})
            table.append(row)
    for pair in res.values():
        # on the same candidates (the anchor subset)
        pair["speedup_wall"] = pair["ours_anchor_subset"]["per_s"] / pair["seed_loop"]["per_s"]
        pair["speedup_cpu"] = pair["seed_loop"]["cpu_s"] / pair["ours_anchor_subset"]["cpu_s"]
        for r in pair.values():
            if isinstance(r, dict):
                r.pop("rows", None)
    doc = {"rows": args.rows, "cols": args.cols, "jit_s": jit_s, "throughput": res,
           "llm_cost": cost, "machine": machine_info("numba", "scipy")}  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return
    cols = ["case", "loop", "candidates", "setup_s", "cand/s", "cpu_s/cand",
            *(f"{k}_s" for k in STAGES)]  # fmt: skip
    print(markdown_table(table, cols))
    print({k: round(v["speedup_wall"], 2) for k, v in res.items()}, f"jit_s={jit_s:.1f}")
    print(json.dumps(cost, indent=2, default=str))


if __name__ == "__main__":
    main()
