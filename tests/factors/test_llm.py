"""LLM client against a loopback fake server: retries, Retry-After, timeouts, cache, usage,
cost, budget, secrecy of the key; robust reply parsing."""

from __future__ import annotations

import time

import pytest

from alphaforge.factors.errors import BudgetExceeded, LLMError
from alphaforge.factors.llm import Budget, LLMClient
from alphaforge.factors.propose_parse import parse_candidates
from tests.factors.fake_openai import FakeOpenAI, completion

MSG = [{"role": "user", "content": "hi"}]


def _client(fake: FakeOpenAI, **kw) -> tuple[LLMClient, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("api_key", "sk-test-SECRET")
    c = LLMClient(base_url=fake.base_url, model="gpt-4o-mini", timeout_s=0.5, max_retries=3,
                  backoff_s=0.01, sleep=sleeps.append, **kw)  # fmt: skip
    return c, sleeps


def test_usage_cost_and_key_secrecy() -> None:
    with FakeOpenAI() as fake:
        fake.push(200, completion("[]", prompt_tokens=1000, completion_tokens=500))
        c, _ = _client(fake)
        r = c.chat(MSG)
        assert (r.prompt_tokens, r.completion_tokens) == (1000, 500)
        assert r.cost == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
        assert fake.requests[0][0]["Authorization"] == "Bearer sk-test-SECRET"
        assert "SECRET" not in repr(c)
        assert c.budget.spent_calls == 1
        assert c.budget.spent_tokens == 1500


def test_429_retry_after_then_success_and_5xx() -> None:
    with FakeOpenAI() as fake:
        fake.push(429, {"error": "slow down"}, {"Retry-After": "2"})
        fake.push(503, "unavailable")
        fake.push(200, completion('[{"expression": "close"}]'))
        c, sleeps = _client(fake)
        assert "close" in c.chat(MSG).content
        assert sleeps[0] == 2.0  # honoured Retry-After
        assert len(fake.requests) == 3


def test_timeout_then_success_and_hard_4xx() -> None:
    with FakeOpenAI() as fake:
        fake.push(200, completion("late"), delay=1.5)
        fake.push(200, completion("on time"))
        c, _ = _client(fake)
        assert c.chat(MSG).content == "on time"
        fake.push(400, {"error": {"message": "bad model"}})
        with pytest.raises(LLMError, match="HTTP 400"):
            c.chat([{"role": "user", "content": "other"}])


def test_gives_up_after_retries() -> None:
    with FakeOpenAI() as fake:
        for _ in range(4):
            fake.push(500, "boom")
        c, sleeps = _client(fake)
        with pytest.raises(LLMError, match="failed after 4 attempts"):
            c.chat(MSG)
        assert len(sleeps) == 3


def test_cache_makes_a_rerun_free(tmp_path) -> None:
    with FakeOpenAI() as fake:
        fake.push(200, completion("[1]"))
        c, _ = _client(fake, cache_dir=str(tmp_path))
        first = c.chat(MSG, seed=1)
        again = c.chat(MSG, seed=1)
        assert again.cached
        assert again.cost == 0.0
        assert again.content == first.content
        assert len(fake.requests) == 1
        assert not any("SECRET" in p.read_text() for p in tmp_path.iterdir())


def test_budget_stops_cleanly() -> None:
    with FakeOpenAI() as fake:
        c, _ = _client(fake, budget=Budget(max_calls=1))
        c.chat(MSG)
        with pytest.raises(BudgetExceeded, match="calls used 1 of 1"):
            c.chat([{"role": "user", "content": "second"}])
        assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("text", "exprs"),
    [
        ('[{"name": "a", "expression": "cs_rank(close)", "rationale": "x"}]', ["cs_rank(close)"]),
        ('Sure!\n```json\n[{"expression": "returns"}]\n```\nHope it helps.', ["returns"]),
        ('Here: [{"expression": "volume"}, {"expression": "trades"}] thanks', ["volume", "trades"]),
        ('{"factors": [{"expression": "vwap"}]}', ["vwap"]),
        ('[{"expression": "open"}, {"expression": "hi', ["open"]),
        ("no json at all", []),
        ('[{"name": "n"}, {"expression": 5}]', []),
    ],
)
def test_reply_parsing(text: str, exprs: list[str]) -> None:
    cands, _notes = parse_candidates(text)
    assert [c.expression for c in cands] == exprs


def test_a_trickling_server_cannot_hold_a_call_past_its_deadline() -> None:
    with FakeOpenAI() as fake:
        fake.push(200, completion("[]"), {"X-Fake-Trickle-S": "0.25"})
        client = LLMClient(base_url=fake.base_url, api_key="k", deadline_s=1.0, max_retries=0)
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="deadline"):
            client.chat([{"role": "user", "content": "x"}])
        assert time.monotonic() - t0 < 8.0  # bounded by the deadline, not by the server


def test_retry_after_past_the_deadline_fails_at_once() -> None:
    slept: list[float] = []
    with FakeOpenAI() as fake:
        fake.push(429, {"error": "slow down"}, {"Retry-After": "86400"})
        client = LLMClient(base_url=fake.base_url, api_key="k", deadline_s=30.0,
                           sleep=slept.append)  # fmt: skip
        with pytest.raises(LLMError, match="would pass the 30 s deadline"):
            client.chat([{"role": "user", "content": "x"}])
    assert slept == []


@pytest.mark.parametrize("usage", [None, {"prompt_tokens": -5, "completion_tokens": -9},
                                   {"prompt_tokens": "many"}])  # fmt: skip
def test_missing_or_negative_usage_is_estimated_and_budgeted(usage: object) -> None:
    body = completion("x" * 400)
    body["usage"] = usage
    with FakeOpenAI() as fake:
        fake.push(200, body)
        fake.push(200, body)
        client = LLMClient(base_url=fake.base_url, api_key="k", budget=Budget(max_tokens=120))
        res = client.chat([{"role": "user", "content": "y" * 80}])
        assert res.completion_tokens == 100  # 400 characters / 4
        assert res.prompt_tokens > 20
        with pytest.raises(BudgetExceeded):
            client.chat([{"role": "user", "content": "again"}])


def test_an_echoed_key_is_redacted_and_deep_json_refused() -> None:
    key = "sk-very-secret-123456"
    with FakeOpenAI() as fake:
        fake.push(401, f"invalid key {key}")
        client = LLMClient(base_url=fake.base_url, api_key=key, max_retries=0)
        with pytest.raises(LLMError) as info:
            client.chat([{"role": "user", "content": "x"}])
        assert key not in str(info.value)
        assert "***" in str(info.value)
        fake.push(200, "[" * 100_000)
        with pytest.raises(LLMError, match="nested deeper"):
            client.chat([{"role": "user", "content": "x"}])
