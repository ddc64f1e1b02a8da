"""Shared test fixtures: the real-data folder, seeds, and a writable numba cache."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = (ROOT.parent / "shared" / "data" / "real").resolve()

settings.register_profile(
    "alphaforge",
    deadline=None,
    derandomize=True,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("alphaforge")


def require_shared() -> bool:
    """True when CI demands the real-data tests run (ALPHAFORGE_REQUIRE_SHARED=1)."""
    return os.environ.get("ALPHAFORGE_REQUIRE_SHARED", "") == "1"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Path of ../shared/data/real; skips (or fails in CI) when it is absent."""
    if not SHARED_REAL.is_dir():
        if require_shared():
            pytest.fail(f"ALPHAFORGE_REQUIRE_SHARED=1 but {SHARED_REAL} is missing")
        pytest.skip(f"real data folder {SHARED_REAL} is absent (a fresh clone without ../shared)")
    return SHARED_REAL


@pytest.fixture(scope="session")
def klines_only_panel(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A day of the real DOTUSDT and LINKUSDT 1-minute perpetual klines, ingested into a store
    holding nothing else (no metrics, no books, no funding): for errors naming a missing
    dataset."""
    import alphaforge as af

    store = af.Store(tmp_path_factory.mktemp("klines_only") / "store")
    store.ingest(real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz",
                 real_dir / "binance_futures_klines" / "LINKUSDT-1m-2026-02.csv.gz",
                 market="usdm")  # fmt: skip
    return store.panel(start="2026-02-03", end="2026-02-04")


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own research ledger (trial counts and holdout looks), also for the
    CLI subprocesses it starts, so no test's count depends on which tests ran before it."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    monkeypatch.setenv("ALPHAFORGE_LEDGER", str(path))


class S3Server:
    """An S3-compatible server (moto) on a free loopback port, started by the tests.

    Attributes:
        endpoint: ``http://127.0.0.1:<port>``. env: the environment a child process (or the
        CLI) needs to reach it with test credentials.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.env = {"ALPHAFORGE_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}  # fmt: skip
        self._n = 0

    def bucket(self) -> str:
        """Create a new empty bucket; its name."""
        import botocore.session

        self._n += 1
        name = f"alphaforge-test-{os.getpid()}-{self._n}"
        client = botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=self.endpoint,
            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        client.create_bucket(Bucket=name)
        return name


class _AtomicConditionalWrites:
    """WSGI middleware: one mutating request (PUT, POST, DELETE) at a time.

    S3 checks a write's condition (``If-None-Match``) and stores the object in one atomic
    step, and it keeps every key through concurrent writes and deletes. moto does neither on
    its request threads: it checks that a key is absent and then stores it in two steps, and its
    key store is not guarded against concurrent mutation (a delete of one key racing the store
    of another). Serialising the mutating requests gives the test server S3's semantics; reads
    stay concurrent.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            with self.lock:  # the whole request, body included, inside the lock
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def s3_server() -> Any:
    """A moto S3 server on loopback for the whole session (port chosen by the OS), with
    S3's atomic writes (``_AtomicConditionalWrites``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server  # type: ignore[attr-defined]  # werkzeug's server: app and port
    wsgi.app = _AtomicConditionalWrites(wsgi.app)
    port = wsgi.server_port  # the OS-chosen port
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """``s3_server`` with its endpoint and credentials in this test's environment."""
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    return s3_server
