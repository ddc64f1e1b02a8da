"""`alphaforge propose` / `alphaforge leaderboard` end to end through the CLI against a loopback
fake OpenAI-compatible server: counts, ledger, cache, budget, offline fallback, key secrecy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.factors.ledger import Ledger
from alphaforge.factors.llm import DEFAULT_PRICES
from tests.factors.fake_openai import FakeOpenAI, completion

KEY = "sk-cli-test-KEY-9f3a1c"
CALL_COST = (1200 * DEFAULT_PRICES["gpt-4o-mini"][0] + 300 * DEFAULT_PRICES["gpt-4o-mini"][1]) / 1e6
ROUND1 = [
    {"name": "flow", "expression": "cs_zscore(ts_mean(taker_buy_volume / volume, 5))"},
    {"name": "rev", "expression": "-cs_rank(ts_delta(close, 3))"},
    {"name": "bad", "expression": "ts_mean(close, "},
]
ROUND2 = [
    {"name": "vol", "expression": "cs_zscore(ts_rank(trades, 10))"},
    {"name": "range", "expression": "cs_rank((high - low) / close)"},
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("ALPHAFORGE_LLM_API_KEY", "OPENAI_API_KEY", "ALPHAFORGE_STORE",
                "ALPHAFORGE_LLM_BASE_URL", "ALPHAFORGE_LLM_MODEL"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _reply(cands: list[dict[str, str]], rid: str) -> dict:
    return completion("```json\n" + json.dumps(cands) + "\n```", prompt_tokens=1200,
                      completion_tokens=300, rid=rid)  # fmt: skip


def _propose(base: Path, *extra: str, url: str | None = None) -> tuple[int, str, str]:
    args = ["propose", "--rounds", "2", "--per-round", "3", "--bars", "600", "--json",
            "--ledger", str(base / "ledger.sqlite"), "--cache-dir", str(base / "cache"),
            "--min-t", "0", "--min-sharpe", "-1000", *extra]  # fmt: skip
    if url is not None:
        args += ["--base-url", url]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def _assert_no_key(base: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text
    files = [p for p in base.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files)  # the cache was written
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


def test_llm_study_ledger_leaderboard_cache_and_secrecy(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAFORGE_LLM_API_KEY", KEY)
    with FakeOpenAI() as fake:
        fake.push(200, _reply(ROUND1, "r-1"))
        fake.push(200, _reply(ROUND2, "r-2"))
        code, out, err = _propose(env, url=fake.base_url)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["source"] == "llm"
        assert doc["rounds"] == 2
        assert sum(doc["counts"].values()) == 5
        assert doc["counts"]["rejected"] == 1  # the syntax error
        assert doc["tokens"] == 2 * 1500
        assert doc["cost"] == pytest.approx(2 * CALL_COST, rel=1e-12)
        assert len(fake.requests) == 2
        assert all(h["Authorization"] == f"Bearer {KEY}" for h, _ in fake.requests)

        rows = Ledger(env / "ledger.sqlite").rows("default")
        assert [r.name for r in rows] == ["flow", "rev", "bad", "vol", "range"]
        # each call is booked once (on the first trial of its reply), not once per candidate
        assert sum(r.cost for r in rows) == pytest.approx(2 * CALL_COST, rel=1e-12)
        assert sum(r.prompt_tokens for r in rows) == 2 * 1200

        board = CliRunner().invoke(app, ["leaderboard", "--json", "--ledger",
                                         str(env / "ledger.sqlite")])  # fmt: skip
        assert board.exit_code == 0, board.stderr
        listed = json.loads(board.stdout)
        scored = {r.id for r in rows if r.train is not None}
        assert {r["id"] for r in listed} == scored
        assert len(scored) == 4
        assert {r["name"] for r in listed} == {"flow", "rev", "vol", "range"}

        # the same command again is served from the cache: no request, no cost
        code2, out2, err2 = _propose(env, url=fake.base_url)
        assert code2 == 0, err2
        assert len(fake.requests) == 2
        again = json.loads(out2)
        assert again["cost"] == 0.0
        assert again["tokens"] == 0
        # round 1 again: two seen before, the syntax error again; nothing new, stop
        assert again["counts"] == {"duplicate": 2, "rejected": 1}
        assert "nothing new" in again["stop_reason"]
        rerun = Ledger(env / "ledger.sqlite").rows("default")[len(rows) :]
        assert len(rerun) == 3
        assert sum(r.cost for r in rerun) == 0.0
        assert sum(r.prompt_tokens + r.completion_tokens for r in rerun) == 0  # nothing spent
    _assert_no_key(env, out, err, out2, err2, board.stdout, board.stderr)


def test_max_calls_stops_with_a_budget_reason(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFORGE_LLM_API_KEY", KEY)
    with FakeOpenAI() as fake:
        fake.push(200, _reply(ROUND1, "r-1"))
        fake.push(200, _reply(ROUND2, "r-2"))
        code, out, err = _propose(env, "--max-calls", "1", "--rounds", "3", url=fake.base_url)
        assert code == 0, err
        assert len(fake.requests) == 1
    doc = json.loads(out)
    assert doc["rounds"] == 1
    assert doc["stop_reason"].startswith("budget:")
    assert "calls used 1 of 1" in doc["stop_reason"]
    _assert_no_key(env, out, err)


def test_without_a_key_falls_back_to_the_offline_generator(env: Path) -> None:
    with FakeOpenAI() as fake:
        code, out, err = _propose(env, "--rounds", "1", url=fake.base_url)
        assert fake.requests == []  # no key: the endpoint is never called
    assert code == 0, err
    assert "note: no LLM key" in err
    doc = json.loads(out)
    assert doc["source"] == "offline"
    assert sum(doc["counts"].values()) == 3
    assert doc["cost"] == 0.0
    rows = Ledger(env / "ledger.sqlite").rows("default")
    assert {r.source for r in rows} == {"offline"}


def test_a_failing_endpoint_exits_non_zero_and_never_prints_the_key(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAI() as fake:
        fake.push(401, f"bad key {KEY}")
        monkeypatch.setenv("ALPHAFORGE_LLM_API_KEY", KEY)
        res = CliRunner().invoke(app, ["propose", "--base-url", fake.base_url, "--rounds", "1",
                                       "--bars", "400", "--json"])  # fmt: skip
    assert res.exit_code == 1
    assert KEY not in res.output
    assert "llm error" in res.output
