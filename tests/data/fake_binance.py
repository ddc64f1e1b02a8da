"""A fake Binance (REST + data.binance.vision archive) on a loopback ThreadingHTTPServer.

It serves recorded real rows (klines from ../shared/data/real, REST responses, depth snapshots)
with Binance's request semantics (time/fromId pagination, page limits, -1121 for unknown symbols,
``X-MBX-USED-WEIGHT-1M``), archive zips and ``.CHECKSUM`` files built on the fly from real CSV
text, and injects faults on demand::

    fake.add_fault("/fapi/v1/klines", "429", retry_after=1)   # next matching request only
    fake.add_fault("", "500", count=3)                        # next 3 requests of any path

Fault kinds: ``429``, ``418``, ``500``, ``502``, ``503``, ``slow`` (sleep past the client's
timeout), ``truncate`` (half the body, then close), ``overlap`` (the page starts some rows
before what was asked), ``short_overlap`` (starts early and still holds ``limit`` rows, so the
page is short of new rows), ``stale`` (the page before the one asked for), ``repeat`` (rows
repeated inside the page), ``bad_checksum``, ``wrong_member`` (the zip holds another symbol's
CSV), ``corrupt_zip`` (damaged bytes, published with their own checksum).
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import io
import itertools
import json
import threading
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

KLINE_PATHS = {
    "/api/v3/klines": ("spot", 1000),
    "/fapi/v1/klines": ("usdm", 1500),
    "/fapi/v1/markPriceKlines": ("usdm_mark", 1500),
    "/fapi/v1/indexPriceKlines": ("usdm_index", 1500),
}
AGG_PATHS = {"/api/v3/aggTrades": "spot", "/fapi/v1/aggTrades": "usdm"}


@dataclass
class Fault:
    path_prefix: str
    kind: str
    count: int = 1
    retry_after: float | None = None
    delay_s: float = 1.0


def kline_rows_from_csv(text: bytes) -> list[list[Any]]:
    """Archive CSV text -> REST kline rows (ints for times/count, the CSV's strings otherwise)."""
    rows = []
    for line in text.decode().splitlines():
        f = line.strip().split(",")
        if not f or not f[0] or not f[0].isdigit():
            continue
        rows.append([int(f[0]), *f[1:6], int(f[6]), f[7], int(f[8]), f[9], f[10], f[11]])
    return rows


def read_text(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


class FakeBinance:
    """Loopback fake of Binance spot + USD-M REST and the bulk archive."""

    def __init__(self) -> None:
        self.klines: dict[tuple[str, str, str], list[list[Any]]] = {}
        self.agg_trades: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.funding: dict[str, list[dict[str, Any]]] = {}
        self.depth: dict[tuple[str, str], dict[str, Any]] = {}
        self.symbols: dict[str, list[dict[str, Any]]] = {"spot": [], "usdm": []}
        self.archive: dict[str, bytes] = {}  # "data/.../X.zip" -> CSV text inside
        self.faults: list[Fault] = []
        self.log: list[tuple[str, dict[str, str], int]] = []
        self.used_weight_override: int | None = None
        self.in_flight = 0
        self._keys: dict[tuple[str, str, str], list[int]] = {}
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._weight_window = (0, 0)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ data
    def add_klines(self, market: str, symbol: str, interval: str, rows: list[list[Any]]) -> None:
        key = (market, symbol, interval)
        merged = {r[0]: r for r in self.klines.get(key, [])}
        merged.update({r[0]: r for r in rows})
        self.klines[key] = [merged[k] for k in sorted(merged)]
        self._keys.pop(key, None)
        self.add_symbol(market.split("_")[0], symbol)

    def kline_keys(self, market: str, symbol: str, interval: str) -> list[int]:
        key = (market, symbol, interval)
        rows = self.klines[key]
        cached = self._keys.get(key)
        if cached is None or len(cached) != len(rows):
            cached = self._keys[key] = [int(r[0]) for r in rows]
        return cached

    def add_symbol(self, market: str, symbol: str, **extra: Any) -> None:
        known = {s["symbol"] for s in self.symbols[market]}
        if symbol not in known:
            self.symbols[market].append({"symbol": symbol, "status": "TRADING", **extra})
        else:
            for s in self.symbols[market]:
                if s["symbol"] == symbol:
                    s.update(extra)

    def add_archive_file(self, rel_zip_path: str, csv_text: bytes) -> None:
        self.archive[rel_zip_path.lstrip("/")] = csv_text

    def add_fault(self, path_prefix: str, kind: str, count: int = 1, **kw: Any) -> None:
        with self._lock:
            self.faults.append(Fault(path_prefix, kind, count, **kw))

    def requests_to(self, path_prefix: str) -> list[tuple[str, dict[str, str], int]]:
        return [r for r in self.log if r[0].startswith(path_prefix)]

    # ------------------------------------------------------------------ server
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeBinance:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if path.startswith(f.path_prefix) and f.count > 0:
                    f.count -= 1
                    if f.count == 0:
                        self.faults.remove(f)
                    return f
        return None

    def charge(self, weight: int) -> int:
        with self._lock:
            minute = int(time.time() // 60)
            w0, used = self._weight_window
            used = used + weight if w0 == minute else weight
            self._weight_window = (minute, used)
            return self.used_weight_override if self.used_weight_override is not None else used


def _weight(path: str, q: dict[str, str]) -> int:
    """The fake's own weight table (a few endpoints; see the Binance docs)."""
    limit = int(q.get("limit", "500"))
    if path.startswith("/fapi/v1/") and path.endswith(("klines", "Klines")):
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    return {
        "/api/v3/klines": 2,
        "/api/v3/aggTrades": 4,
        "/fapi/v1/aggTrades": 20,
        "/api/v3/exchangeInfo": 20,
    }.get(path, 1)


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeBinance
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def do_GET(self) -> None:
        fake = self.server_fake
        u = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        fault = fake.take_fault(u.path)
        with fake._lock:
            fake.log.append((u.path, q, len(fake.log)))
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._serve(fake, u.path, q, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _serve(self, fake: FakeBinance, path: str, q: dict[str, str], fault: Fault | None) -> None:
        kind = fault.kind if fault else ""
        if kind == "slow":
            time.sleep(fault.delay_s if fault else 1.0)
        if kind in ("429", "418"):
            ra = fault.retry_after if fault and fault.retry_after is not None else 1
            body = {
                "code": -1003,
                "msg": "Too many requests; IP banned" if kind == "418" else "Too many requests",
            }
            return self._send(int(kind), json.dumps(body).encode(), {"Retry-After": f"{ra:g}"})
        if kind in ("500", "502", "503"):
            return self._send(int(kind), b"<html>server error</html>", ctype="text/html")
        if path.startswith("/data/"):
            return self._archive(fake, path.lstrip("/"), kind)
        status, body = _rest(fake, path, q, kind)
        used = fake.charge(_weight(path, q))
        payload = json.dumps(body).encode()
        self._send(
            status, payload, {"X-MBX-USED-WEIGHT-1M": str(used)}, truncate=kind == "truncate"
        )

    def _archive(self, fake: FakeBinance, rel: str, kind: str) -> None:
        want_sum = rel.endswith(".CHECKSUM")
        zrel = rel[: -len(".CHECKSUM")] if want_sum else rel
        if zrel not in fake.archive:
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", ctype="text/xml")
        member = zrel.rsplit("/", 1)[-1][:-4] + ".csv"
        if kind == "wrong_member":  # the zip holds another symbol's file
            member = "NEARUSDT" + member[member.index("-") :]
        blob = build_zip(member, fake.archive[zrel])
        if kind == "corrupt_zip":  # corrupt on the server: its checksum matches the bad bytes
            blob = blob[: len(blob) // 2] + bytes(64) + blob[len(blob) // 2 + 64 :]
        if want_sum:
            digest = hashlib.sha256(blob).hexdigest()
            if kind == "bad_checksum":
                digest = hashlib.sha256(blob + b"x").hexdigest()
            text = f"{digest}  {zrel.rsplit('/', 1)[-1]}\n".encode()
            return self._send(200, text, ctype="text/plain")
        self._send(200, blob, ctype="application/zip", truncate=kind == "truncate")

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        ctype: str = "application/json",
        truncate: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)
        self.wfile.flush()


_ZIP_CACHE: dict[tuple[str, str], bytes] = {}


def build_zip(name: str, text: bytes) -> bytes:
    """A deterministic zip holding ``text`` as ``name`` (cached by content hash)."""
    key = (name, hashlib.sha256(text).hexdigest())
    if key not in _ZIP_CACHE:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text, compresslevel=1)
        _ZIP_CACHE[key] = buf.getvalue()
    return _ZIP_CACHE[key]


def _bad_symbol() -> tuple[int, dict[str, Any]]:
    return 400, {"code": -1121, "msg": "Invalid symbol."}


def _rest(fake: FakeBinance, path: str, q: dict[str, str], kind: str) -> tuple[int, Any]:
    if path in KLINE_PATHS:
        return _klines(fake, path, q, kind)
    if path in AGG_PATHS:
        return _agg(fake, AGG_PATHS[path], q, kind)
    if path == "/fapi/v1/fundingRate":
        rows = fake.funding.get(q.get("symbol", ""))
        if rows is None:
            return _bad_symbol()
        lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        lim = min(int(q.get("limit", 100)), 1000)
        return 200, [r for r in rows if lo <= r["fundingTime"] <= hi][:lim]
    if path in ("/api/v3/depth", "/fapi/v1/depth"):
        market = "spot" if path.startswith("/api") else "usdm"
        snap = fake.depth.get((market, q.get("symbol", "")))
        if snap is None:
            return _bad_symbol()
        lim = int(q.get("limit", 100))
        return 200, dict(snap, bids=snap["bids"][:lim], asks=snap["asks"][:lim])
    if path in ("/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo"):
        market = "spot" if path.startswith("/api") else "usdm"
        limit = 6000 if market == "spot" else 2400
        return 200, {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limit,
                }
            ],
            "symbols": fake.symbols[market],
        }
    return 404, {"code": -1, "msg": f"fake: no route {path}"}


def _klines(fake: FakeBinance, path: str, q: dict[str, str], kind: str) -> tuple[int, Any]:
    market, max_limit = KLINE_PATHS[path]
    sym = q.get("pair") if market == "usdm_index" else q.get("symbol")
    rows = fake.klines.get((market, sym or "", q.get("interval", "")))
    if rows is None:
        return _bad_symbol()
    limit = int(q.get("limit", 500))
    if not 1 <= limit <= max_limit:
        return 400, {
            "code": -1130,
            "msg": f"Illegal characters found in parameter 'limit'; "
            f"legal range is '1-{max_limit}'.",
        }
    lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
    keys = fake.kline_keys(market, sym or "", q.get("interval", ""))
    a, b = bisect.bisect_left(keys, lo), bisect.bisect_right(keys, hi)
    if a >= b:
        return 200, []
    idx = range(a, b) if "startTime" in q else range(max(a, b - limit), b)
    first = idx[0]
    if kind == "overlap":
        first = max(0, first - 3)
    page = rows[first : idx[0] + min(limit, len(idx))]
    if kind == "short_overlap":  # starts 3 rows early and still holds `limit` rows
        page = rows[max(0, first - 3) : max(0, first - 3) + min(limit, len(idx))]
    if kind == "stale":  # the page before the one asked for
        page = rows[max(0, first - limit) : first]
    if kind == "repeat":
        page = page[:2] + page + page[-2:]
    return 200, page


def _agg(fake: FakeBinance, market: str, q: dict[str, str], kind: str) -> tuple[int, Any]:
    rows = fake.agg_trades.get((market, q.get("symbol", "")))
    if rows is None:
        return _bad_symbol()
    limit = min(int(q.get("limit", 500)), 1000)
    if "fromId" in q:
        sel: Iterable[int] = (i for i, r in enumerate(rows) if r["a"] >= int(q["fromId"]))
    else:
        lo, hi = int(q.get("startTime", 0)), int(q.get("endTime", 2**62))
        if "startTime" in q and "endTime" in q and hi - lo >= 3_600_000:
            return 400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}
        sel = (i for i, r in enumerate(rows) if lo <= r["T"] <= hi)
    idx = list(itertools.islice(sel, limit))
    if not idx:
        return 200, []
    first = max(0, idx[0] - 2) if kind == "overlap" else idx[0]
    page = rows[first : idx[-1] + 1]
    if kind == "short_overlap":  # starts 2 rows early and still holds `limit` rows
        page = rows[max(0, idx[0] - 2) : max(0, idx[0] - 2) + len(idx)]
    if kind == "stale":
        page = rows[max(0, idx[0] - limit) : idx[0]]
    if kind == "repeat":
        page = page + page[-3:]
    return 200, page


def add_kline_archive(
    fake: FakeBinance,
    market: str,
    symbol: str,
    interval: str,
    text: bytes,
    daily: bool = True,
    rest: bool = True,
) -> None:
    """Publish archive CSV ``text`` (one month of klines) as its monthly zip and, when ``daily``,
    one zip per UTC day. USD-M files keep a header line, spot files have none (as Binance ships)."""
    lines = text.decode().splitlines()
    header = lines[0] if lines and not lines[0][:1].isdigit() else None
    body = [ln for ln in lines if ln[:1].isdigit()]
    if market == "usdm" and header is None:
        header = (
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore"
        )
    if market == "spot":
        header = None
    mdir = {"spot": "spot", "usdm": "futures/um"}[market]

    def render(rows: list[str]) -> bytes:
        return ("\n".join(([header] if header else []) + rows) + "\n").encode()

    by_day: dict[str, list[str]] = {}
    for ln in body if daily else body[:1]:
        t = int(ln.split(",", 1)[0])
        day = time.strftime("%Y-%m-%d", time.gmtime(t / (1e6 if t >= 10**14 else 1e3)))
        by_day.setdefault(day, []).append(ln)
    month = next(iter(by_day))[:7]
    base = f"data/{mdir}/{{period}}/klines/{symbol}/{interval}/{symbol}-{interval}-{{label}}.zip"
    fake.add_archive_file(base.format(period="monthly", label=month), render(body))
    if daily:
        for day, rows in by_day.items():
            fake.add_archive_file(base.format(period="daily", label=day), render(rows))
    if rest:
        fake.add_klines(market, symbol, interval, kline_rows_from_csv(text))
