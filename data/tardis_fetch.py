"""Download Tardis.dev CSV datasets by exchange / data type / day / symbol, resumably.

URL: ``{base_url}/{exchange}/{data_type}/{YYYY}/{MM}/{DD}/{symbol}.csv.gz`` with
``Authorization: Bearer <key>``; the key comes from the argument or ``TARDIS_API_KEY`` and is
never printed, logged or put in an error message. Each file streams to a hidden temp file in the
destination directory and is renamed into place only when its size matches the response's
``Content-Length``; a file already present with the size the server announces is not fetched
again. (Tardis serves the first day of each month without a key.)
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alphaforge.data.errors import RequestRejected, SourceError
from alphaforge.data.manifest import fsync_dir, tmp_name

if TYPE_CHECKING:
    import requests  # imported where used: about 0.1 s a command may never need

DEFAULT_BASE_URL = "https://datasets.tardis.dev/v1"
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Fetched:
    """One downloaded (or already present) file.

    Attributes:
        path: local file.
        url: where it came from.
        bytes: file size.
        skipped: True when the file was already complete and not downloaded again.
    """

    path: Path
    url: str
    bytes: int
    skipped: bool


def tardis_symbol(symbol: str) -> str:
    """Symbol as used in dataset URLs and file names: upper case, ``/`` and ``:`` -> ``-``."""
    return symbol.replace("/", "-").replace(":", "-").upper()


def dataset_url(base_url: str, exchange: str, data_type: str, day: dt.date, symbol: str) -> str:
    """The datasets-API URL of one day's file."""
    return (
        f"{base_url.rstrip('/')}/{exchange}/{data_type}/"
        f"{day.year:04d}/{day.month:02d}/{day.day:02d}/{tardis_symbol(symbol)}.csv.gz"
    )


def local_name(exchange: str, data_type: str, day: dt.date, symbol: str) -> str:
    """``{exchange}_{data_type}_{YYYY-MM-DD}_{symbol}.csv.gz`` (detectable by data.tardis)."""
    return f"{exchange}_{data_type}_{day.isoformat()}_{tardis_symbol(symbol)}.csv.gz"


def _headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("TARDIS_API_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _raise_for(resp: requests.Response, url: str) -> None:
    code = resp.status_code
    if code < 400:
        return
    if code in (401, 403):
        raise RequestRejected(
            f"{url}: HTTP {code} unauthorized: set TARDIS_API_KEY to a key with access to this "
            "dataset (only the first day of a month is free)",
            status=code,
            url=url,
        )
    if code == 404:
        raise RequestRejected(
            f"{url}: HTTP 404: no such Tardis file (exchange, data type, "
            "date or symbol not available)",
            status=code,
            url=url,
        )
    if code < 500:
        raise RequestRejected(f"{url}: HTTP {code}: {resp.text[:200]}", status=code, url=url)
    raise SourceError(f"{url}: HTTP {code} from the Tardis datasets API")


def download_file(
    exchange: str,
    data_type: str,
    day: dt.date,
    symbol: str,
    dest_dir: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    session: requests.Session | None = None,
    base_url: str = DEFAULT_BASE_URL,
    timeout_s: float = 60.0,
) -> Fetched:
    """Download one day's Tardis CSV.gz into ``dest_dir`` (skipped when already complete).

    Args:
        exchange: Tardis exchange id (``binance-futures``, ``deribit``...).
        data_type: ``trades``, ``incremental_book_L2``, ``book_snapshot_25``...
        day: UTC date.
        symbol: exchange symbol.
        dest_dir: directory for the file (created).
        api_key: Tardis key; default ``TARDIS_API_KEY`` from the environment.
        session: an injectable requests.Session (connection pooling, tests).
        base_url: datasets API root.
        timeout_s: connect/read timeout in seconds.

    Raises:
        RequestRejected: 401/403 (bad or missing key), 404 (no such file), other 4xx.
        SourceError: 5xx, a connection failure, or a body shorter than Content-Length.
    """
    url = dataset_url(base_url, exchange, data_type, day, symbol)
    dest = Path(dest_dir) / local_name(exchange, data_type, day, symbol)
    dest.parent.mkdir(parents=True, exist_ok=True)
    import requests

    sess = session or requests.Session()
    try:
        resp = sess.get(url, headers=_headers(api_key), stream=True, timeout=timeout_s)
    except requests.RequestException as exc:
        raise SourceError(f"{url}: request failed: {type(exc).__name__}") from None
    with resp:
        _raise_for(resp, url)
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if expected is not None and dest.exists() and dest.stat().st_size == expected:
            return Fetched(dest, url, expected, skipped=True)
        tmp = tmp_name(dest)
        try:
            size = _stream_to(resp, tmp, url)
            if expected is not None and size != expected:
                raise SourceError(f"{url}: truncated body: got {size} of {expected} bytes")
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        finally:
            tmp.unlink(missing_ok=True)
    return Fetched(dest, url, size, skipped=False)


def _stream_to(resp: requests.Response, tmp: Path, url: str) -> int:
    import requests

    size = 0
    try:
        with open(tmp, "wb") as fh:
            for chunk in resp.iter_content(CHUNK, decode_unicode=False):
                fh.write(chunk)
                size += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except requests.RequestException as exc:
        raise SourceError(
            f"{url}: download interrupted, body truncated ({type(exc).__name__})"
        ) from None
    return size


def days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    """UTC days from ``start`` to ``end`` inclusive."""
    d = start
    while d <= end:
        yield d
        d += dt.timedelta(days=1)


def download_range(
    exchange: str,
    data_types: Iterable[str],
    symbols: Iterable[str],
    start: dt.date,
    end: dt.date,
    dest_dir: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    session: requests.Session | None = None,
    base_url: str = DEFAULT_BASE_URL,
    timeout_s: float = 60.0,
) -> list[Fetched]:
    """Download every (data type, symbol, day) with ``start <= day <= end``.

    Stops at the first error (files already fetched stay; a rerun skips them).
    See :func:`download_file` for the arguments and errors.
    """
    import requests

    sess = session or requests.Session()
    syms = list(symbols)
    return [
        download_file(
            exchange,
            data_type,
            day,
            symbol,
            dest_dir,
            api_key=api_key,
            session=sess,
            base_url=base_url,
            timeout_s=timeout_s,
        )
        for data_type in data_types
        for symbol in syms
        for day in days(start, end)
    ]
