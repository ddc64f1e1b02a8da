"""A loopback fake of an OpenAI-compatible chat-completions server, scripted by the tests."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion(content: str, *, prompt_tokens: int = 100, completion_tokens: int = 50,
               rid: str = "chatcmpl-1", model: str = "gpt-4o-mini") -> dict[str, Any]:  # fmt: skip
    """A chat-completions response body."""
    return {"id": rid, "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}  # fmt: skip


class FakeOpenAI:
    """Serves scripted replies in order: (status, body dict or text, headers, delay_s).

    A header ``X-Fake-Trickle-S`` in a scripted reply (not sent) makes the server write the
    body one byte every that many seconds (at most 40 bytes, then it stops).

    When the script is empty it repeats ``default`` (a 200 with an empty list).
    Every request is recorded in ``requests`` as (headers dict, json body).
    """

    def __init__(self) -> None:
        self.script: deque[tuple[int, Any, dict[str, str], float]] = deque()
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.default = (200, completion("[]"), {}, 0.0)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                fake.requests.append((dict(self.headers), json.loads(raw or b"{}")))
                status, body, headers, delay = (
                    fake.script.popleft() if fake.script else fake.default
                )
                trickle = float(headers.pop("X-Fake-Trickle-S", 0.0)) if headers else 0.0
                if delay:
                    time.sleep(delay)
                data = (
                    body
                    if isinstance(body, bytes)
                    else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
                )
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if trickle:  # one byte at a time, bounded: at most 40 bytes are sent
                        for b in data[:40]:
                            self.wfile.write(bytes([b]))
                            self.wfile.flush()
                            time.sleep(trickle)
                        return
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def push(self, status: int, body: Any, headers: dict[str, str] | None = None,
             delay: float = 0.0) -> None:  # fmt: skip
        self.script.append((status, body, dict(headers or {}), delay))

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
