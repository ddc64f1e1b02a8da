"""A client for any OpenAI-compatible chat-completions endpoint, with cache, retries and budget.

- ``base_url`` (e.g. ``https://api.openai.com/v1`` or a local server), ``model`` and the API
  key come from arguments or the environment (``ALPHAFORGE_LLM_BASE_URL``,
  ``ALPHAFORGE_LLM_MODEL``, ``ALPHAFORGE_LLM_API_KEY`` or ``OPENAI_API_KEY``). The key is
  never printed, logged or stored (not even in the cache key).
- Retries on connection errors, timeouts, 429 and 5xx with exponential backoff, honouring
  ``Retry-After``; other 4xx fail at once with the server's message. One overall deadline
  (``deadline_s``) bounds a call, retries, waits and a server that trickles its answer
  included; a ``Retry-After`` past the deadline fails the call at once.
- Usage missing or negative in a reply is replaced by a local estimate (4 characters a token),
  so a server cannot walk around the token budget; JSON nested deeper than
  ``MAX_JSON_NESTING`` is refused; the key is redacted from every error message.
- A response cache keyed by the request (model, messages, temperature, seed) makes a rerun
  cost nothing; cached answers are marked ``cached=True`` and cost 0.
- Usage (prompt/completion tokens) and cost from a price table (quote per 1M tokens) are
  accounted per call and per client; a ``Budget`` stops the loop cleanly (BudgetExceeded)
  before a call that would exceed calls, tokens or money already spent.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphaforge.factors.errors import BudgetExceeded, LLMError

if TYPE_CHECKING:
    import requests  # imported where used: about 0.1 s a command may never need

DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}
"""model -> (USD per 1M prompt tokens, USD per 1M completion tokens); unknown models cost 0
unless a price is configured."""


@dataclass
class Budget:
    """Limits of a study; None = unlimited. ``spent_*`` are updated by the client."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    spent_calls: int = 0
    spent_tokens: int = 0
    spent_cost: float = 0.0

    def check(self) -> None:
        """Raise BudgetExceeded when any limit is already reached."""
        for name, used, cap in (("calls", self.spent_calls, self.max_calls),
                                ("tokens", self.spent_tokens, self.max_tokens),
                                ("cost", self.spent_cost, self.max_cost)):  # fmt: skip
            if cap is not None and used >= cap:
                raise BudgetExceeded(f"LLM budget exhausted: {name} used {used} of {cap}")


@dataclass(frozen=True, slots=True)
class ChatResult:
    """One chat completion: the text, the response id, token usage and cost."""

    content: str
    response_id: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached: bool
    model: str


@dataclass
class LLMClient:
    """OpenAI-compatible chat client (see module docstring)."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    deadline_s: float = 180.0
    max_retries: int = 4
    backoff_s: float = 1.0
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    cache_dir: str | None = None
    budget: Budget = field(default_factory=Budget)
    session: requests.Session | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self.base_url = (self.base_url or os.environ.get("ALPHAFORGE_LLM_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")  # fmt: skip
        self.model = self.model or os.environ.get("ALPHAFORGE_LLM_MODEL") or "gpt-4o-mini"
        if self.api_key is None:
            self.api_key = (os.environ.get("ALPHAFORGE_LLM_API_KEY")
                            or os.environ.get("OPENAI_API_KEY"))  # fmt: skip
        import requests

        self.session = self.session or requests.Session()

    @property
    def has_key(self) -> bool:
        """Whether an API key is configured (the proposal loop goes offline without one)."""
        return bool(self.api_key)

    def _cache_path(self, payload: Mapping[str, Any]) -> Path | None:
        if not self.cache_dir:
            return None
        key = hashlib.sha256(json.dumps([self.base_url, payload], sort_keys=True).encode())
        return Path(self.cache_dir) / f"{key.hexdigest()}.json"

    def chat(self, messages: Sequence[Mapping[str, str]], *, temperature: float = 0.7,
             seed: int | None = None) -> ChatResult:  # fmt: skip
        """One chat completion (cached when a cache_dir is set).

        Raises:
            BudgetExceeded: the budget is already used up.
            LLMError: the endpoint failed after retries, or answered without content.
        """
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages),
                                   "temperature": temperature}  # fmt: skip
        if seed is not None:
            payload["seed"] = seed
        path = self._cache_path(payload)
        if path is not None and path.is_file():
            return self._result(json.loads(path.read_text()), cached=True)
        self.budget.check()
        body = self._post(payload)
        result = self._result(body, cached=False, prompt=payload["messages"])
        self.budget.spent_calls += 1
        self.budget.spent_tokens += result.prompt_tokens + result.completion_tokens
        self.budget.spent_cost += result.cost
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(body))
            os.replace(tmp, path)
        return result

    def _post(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt"
        deadline = time.monotonic() + self.deadline_s
        import requests

        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * (2**attempt)
            try:
                status, text, resp_headers = self._attempt(url, payload, headers, deadline)
            except (requests.RequestException, OSError) as exc:
                last = f"{type(exc).__name__}"
            else:
                if status == 200:
                    return self._json(text, url)
                last = f"HTTP {status}: {self._redact(text[:200])}"
                if status != 429 and status < 500:
                    raise LLMError(f"{url}: {last}")
                retry_after = resp_headers.get("Retry-After")
                if retry_after is not None and retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            if attempt < self.max_retries:
                if wait >= deadline - time.monotonic():
                    raise LLMError(f"{url}: {last}; the next try (in {wait:g} s) would pass the "
                                   f"{self.deadline_s:g} s deadline of the call")  # fmt: skip
                self.sleep(wait)
        raise LLMError(f"{url}: failed after {self.max_retries + 1} attempts ({last})")

    def _attempt(self, url: str, payload: Mapping[str, Any], headers: Mapping[str, str],
                 deadline: float) -> tuple[int, str, Mapping[str, str]]:  # fmt: skip
        """One request in a worker thread, abandoned (its connection closed) at the deadline,
        so a server trickling bytes or never answering cannot hold the call."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise LLMError(f"{url}: no answer within the {self.deadline_s:g} s deadline")
        import requests

        session = self.session or requests.Session()

        def request() -> tuple[int, str, Mapping[str, str]]:
            resp = session.post(url, json=payload, headers=headers,
                                timeout=min(self.timeout_s, left))  # fmt: skip
            if len(resp.content) > MAX_BODY_BYTES:
                raise LLMError(f"{url}: response larger than {MAX_BODY_BYTES} bytes")
            return resp.status_code, resp.text, dict(resp.headers)

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm-call")
        try:
            return pool.submit(request).result(timeout=left)
        except FutureTimeout:
            session.close()  # unblocks the worker's socket read
            self.session = requests.Session()
            raise LLMError(
                f"{url}: the answer was still arriving at the {self.deadline_s:g} s "
                "deadline of the call"
            ) from None
        finally:
            pool.shutdown(wait=False)

    def _json(self, text: str, url: str) -> dict[str, Any]:
        if json_nesting(text) > MAX_JSON_NESTING:
            raise LLMError(f"{url}: response JSON nested deeper than {MAX_JSON_NESTING} levels")
        try:
            data = json.loads(text)
        except ValueError:
            raise LLMError(f"{url}: response is not JSON") from None
        if not isinstance(data, dict):
            raise LLMError(f"{url}: response is not a JSON object")
        return data

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def _result(self, body: Mapping[str, Any], cached: bool,
                prompt: Any = None) -> ChatResult:  # fmt: skip
        try:
            content = str(body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise LLMError("chat response has no choices[0].message.content") from None
        raw_usage = body.get("usage")
        usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
        pt = _tokens(usage.get("prompt_tokens"), json.dumps(prompt) if prompt else "")
        ct = _tokens(usage.get("completion_tokens"), content)
        model = str(body.get("model") or self.model)
        price = self.prices.get(model) or self.prices.get(str(self.model)) or (0.0, 0.0)
        cost = 0.0 if cached else (pt * price[0] + ct * price[1]) / 1e6
        return ChatResult(content, str(body.get("id", "")), pt, ct, cost, cached, model)


MAX_BODY_BYTES = 8 << 20
"""Largest chat response read (a chat completion is kilobytes)."""

MAX_JSON_NESTING = 64
"""Deepest JSON nesting accepted from a server or inside a reply (json.loads recurses)."""


def json_nesting(text: str) -> int:
    """Deepest bracket nesting of ``text`` (strings skipped), counted without recursion."""
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _tokens(reported: Any, text: str) -> int:
    """Reported token count, or a local estimate (4 characters a token) when the report is
    missing, not a number or negative."""
    estimate = -(-len(text) // 4)
    try:
        n = int(reported)
    except (TypeError, ValueError):
        return estimate
    return n if n >= 0 else estimate
