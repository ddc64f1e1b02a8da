"""HTTP layer for exchange sources: pooled session, retries, Binance weight budget, bans.

One :class:`HttpClient` per source (spot REST, USD-M REST, archive host). It

- retries connection errors, timeouts, truncated bodies and HTTP 5xx with exponential backoff
  and jitter (``delay = min(cap, base * 2**attempt) * U(0.5, 1)``);
- on HTTP 429 waits the server's ``Retry-After`` (every request of the client waits: the limiter
  holds them) and raises :class:`~data.errors.RateLimited` once the retry budget is spent;
- on HTTP 418 stops at once with :class:`~data.errors.IPBanned` naming until when;
- budgets each request by the endpoint's documented weight (:mod:`data.binance_weights`) in a
  per-minute window, following the server's own count in ``X-MBX-USED-WEIGHT-1M``;
- bounds concurrency with a semaphore.

``sleep`` and ``clock`` are injectable so tests run backoffs in microseconds.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from alphaforge.data.errors import IPBanned, RateLimited, RequestRejected, SourceError

__all__ = ["HttpClient", "RateLimitState", "RetryPolicy", "WeightLimiter"]

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
_RETRY_STATUS = frozenset({500, 502, 503, 504})

if TYPE_CHECKING:
    import requests


def _transient() -> tuple[type[Exception], ...]:
    """The requests errors worth a retry. ``requests`` is imported when a client first sends
    (about 0.1 s), not when a command that may never download starts."""
    import requests

    return (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """Snapshot of a client's rate-limit budget (for progress bars and JSON summaries).

    Attributes:
        used_weight: weight used in the current minute (server's count when known).
        limit: the per-minute weight limit of the exchange (0 = not weight-limited).
        in_flight: weight of requests sent but not yet answered.
        hold_until_s: epoch seconds until which requests wait (after a 429), or 0.
        requests: requests sent so far; retries: of which retries.
    """

    used_weight: int
    limit: int
    in_flight: int = 0
    hold_until_s: float = 0.0
    requests: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry budget and backoff shape (seconds)."""

    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError(f"RetryPolicy values must be >= 0, got {self}")


class WeightLimiter:
    """Per-minute request-weight budget that follows the server's ``X-MBX-USED-WEIGHT-1M``.

    Binance counts weight per IP in fixed one-minute windows. A request may start when
    ``used + in_flight + weight <= limit * headroom``; otherwise it waits for the next window.
    """

    def __init__(
        self,
        limit_per_minute: int,
        headroom: float = 0.9,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit_per_minute <= 0 or not 0 < headroom <= 1:
            raise ValueError(
                f"limit_per_minute must be > 0 and 0 < headroom <= 1, got "
                f"{limit_per_minute}, {headroom}"
            )
        self.limit = limit_per_minute
        self.budget = max(1, int(limit_per_minute * headroom))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Condition()
        self._window = -1
        self._used = 0
        self._in_flight = 0
        self.hold_until_s = 0.0

    def _roll(self, now: float) -> None:
        w = int(now // 60)
        if w != self._window:
            self._window, self._used = w, 0

    def acquire(self, weight: int) -> None:
        """Block until ``weight`` fits in the current window (and any 429 hold is over)."""
        weight = min(max(int(weight), 0), self.budget)
        while True:
            with self._lock:
                now = self._clock()
                self._roll(now)
                wait = self.hold_until_s - now
                if wait <= 0 and self._used + self._in_flight + weight <= self.budget:
                    self._in_flight += weight
                    return
                if wait <= 0:
                    wait = (self._window + 1) * 60 - now + 0.01
            self._sleep(max(wait, 0.0))

    def release(self, weight: int, used_header: str | None) -> None:
        """Record a finished request: the server's used weight if it sent one, else ours."""
        weight = min(max(int(weight), 0), self.budget)
        with self._lock:
            self._in_flight = max(0, self._in_flight - weight)
            self._roll(self._clock())
            server = _int_or_none(used_header)
            self._used = server if server is not None else self._used + weight
            self._lock.notify_all()

    def hold(self, seconds: float) -> None:
        """Make every request wait ``seconds`` from now (after a 429)."""
        with self._lock:
            self.hold_until_s = max(self.hold_until_s, self._clock() + seconds)

    def state(self) -> tuple[int, int, int, float]:
        with self._lock:
            self._roll(self._clock())
            return self._used, self.limit, self._in_flight, self.hold_until_s


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _utc(t_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t_ms / 1000))


def _retry_after_s(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_code(resp: requests.Response) -> tuple[int | None, str]:
    try:
        body = resp.json()
    except ValueError:
        return None, resp.text[:200]
    if isinstance(body, dict):
        code = body.get("code")
        return (int(code) if isinstance(code, int) else None), str(body.get("msg", body))[:200]
    return None, str(body)[:200]


class HttpClient:
    """A pooled, retrying, weight-budgeted HTTP client for one base URL.

    Args:
        base_url: e.g. ``https://fapi.binance.com``; paths are joined to it (absolute URLs pass).
        session: an injectable ``requests.Session`` (a pooled one is created when None).
        timeout_s: (connect, read) timeouts in seconds.
        retry: retry budget and backoff.
        limiter: weight budget, or None for hosts without weights (the archive).
        max_concurrency: requests in flight at once through this client.
        sleep, clock, rng: injectable for tests.
    """

    def __init__(
        self,
        base_url: str,
        session: requests.Session | None = None,
        timeout_s: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        limiter: WeightLimiter | None = None,
        max_concurrency: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.base_url = base_url.rstrip("/")
        if session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, max_concurrency))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.limiter = limiter
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._sleep, self._clock = sleep, clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self.bytes_received = 0
        self.banned_until_ms: int | None = None

    # ----------------------------------------------------------------- state
    def state(self) -> RateLimitState:
        """Current rate-limit state (used weight, limit, in flight, hold, counters)."""
        used, limit, in_flight, hold = (
            self.limiter.state() if self.limiter is not None else (0, 0, 0, 0.0)
        )
        return RateLimitState(used, limit, in_flight, hold, self._requests, self._retries)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    # ----------------------------------------------------------------- public calls
    def get_json(self, path: str, params: Mapping[str, Any] | None = None, weight: int = 1) -> Any:
        """GET ``path`` and decode its JSON body (a truncated or garbled body is retried)."""

        def decode(resp: requests.Response) -> Any:
            body = resp.content
            with self._lock:
                self.bytes_received += len(body)
            return json.loads(body)

        return self._request(path, params, weight, decode)

    def download(self, path: str, dest: IO[bytes], chunk_bytes: int = 1 << 20) -> str:
        """Stream ``path`` into ``dest`` (rewound and truncated on each retry); return sha256 hex.

        Raises:
            RequestRejected: HTTP 4xx (404 for a file that does not exist).
        """

        def stream(resp: requests.Response) -> str:
            dest.seek(0)
            dest.truncate()
            h = hashlib.sha256()
            for chunk in resp.iter_content(chunk_bytes):
                h.update(chunk)
                dest.write(chunk)
                with self._lock:
                    self.bytes_received += len(chunk)
            dest.flush()
            return h.hexdigest()

        return str(self._request(path, None, 0, stream, stream_body=True))

    # ----------------------------------------------------------------- core loop
    def _request(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        weight: int,
        handle: Callable[[requests.Response], Any],
        stream_body: bool = False,
    ) -> Any:
        url = self.url(path)
        attempt = 0
        while True:
            try:
                return self._attempt(url, params, weight, handle, stream_body)
            except _Retry as r:
                if attempt >= self.retry.max_retries:
                    raise r.final(url, attempt + 1) from r.cause
                delay = r.wait_s if r.wait_s is not None else self._backoff(attempt)
                attempt += 1
                with self._lock:
                    self._retries += 1
                self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.retry.backoff_cap_s, self.retry.backoff_base_s * 2.0**attempt)
        return cap * (0.5 + 0.5 * self._rng.random())

    def _attempt(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        weight: int,
        handle: Callable[[requests.Response], Any],
        stream_body: bool,
    ) -> Any:
        if self.banned_until_ms is not None and self._clock() * 1000 < self.banned_until_ms:
            raise IPBanned(
                f"{url}: not sent, this IP is banned until {_utc(self.banned_until_ms)} "
                "(HTTP 418 earlier)",
                until_ms=self.banned_until_ms,
            )
        if self.limiter is not None:
            self.limiter.acquire(weight)
        used_header: str | None = None
        transient = _transient()
        garbled: tuple[type[Exception], ...] = (*transient, ValueError)  # a truncated body
        try:
            with self._slots:
                with self._lock:
                    self._requests += 1
                try:
                    resp = self.session.get(
                        url, params=params, timeout=self.timeout_s, stream=stream_body
                    )
                except transient as exc:
                    raise _Retry(f"{type(exc).__name__}: {exc}", cause=exc) from exc
                with resp:
                    used_header = resp.headers.get(WEIGHT_HEADER)
                    self._check_status(resp, url)
                    try:
                        return handle(resp)
                    except garbled as exc:
                        raise _Retry(f"bad body: {type(exc).__name__}: {exc}", cause=exc) from exc
        finally:
            if self.limiter is not None:
                self.limiter.release(weight, used_header)

    def _check_status(self, resp: requests.Response, url: str) -> None:
        status = resp.status_code
        if status < 400:
            return
        retry_after = _retry_after_s(resp)
        if status == 418:
            wait = retry_after if retry_after is not None else 120.0
            until_ms = int((self._clock() + wait) * 1000)
            self.banned_until_ms = until_ms
            raise IPBanned(
                f"HTTP 418 from {url}: this IP is banned until {_utc(until_ms)} "
                f"(Retry-After {wait:g} s); all requests stopped",
                until_ms=until_ms,
            )
        if status == 429:
            wait = min(
                retry_after if retry_after is not None else 1.0, self.retry.max_retry_after_s
            )
            if self.limiter is not None:
                self.limiter.hold(wait)
            raise _Retry(f"HTTP 429 (Retry-After {retry_after})", wait_s=wait, status=429)
        if status in _RETRY_STATUS or status >= 500:
            raise _Retry(f"HTTP {status}", status=status)
        code, msg = _error_code(resp)
        raise RequestRejected(
            f"HTTP {status} from {url}: {msg}" + (f" (code {code})" if code is not None else ""),
            status=status,
            code=code,
            url=url,
        )


class _Retry(Exception):
    """Internal: a retryable failure of one attempt."""

    def __init__(
        self,
        why: str,
        wait_s: float | None = None,
        status: int | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(why)
        self.why, self.wait_s, self.status, self.cause = why, wait_s, status, cause

    def final(self, url: str, attempts: int) -> SourceError:
        msg = f"{url}: gave up after {attempts} attempt(s); last failure: {self.why}"
        if self.status == 429:
            return RateLimited(msg, retry_after_s=self.wait_s)
        return SourceError(msg)
