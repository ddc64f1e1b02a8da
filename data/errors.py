"""Errors raised by the data layer (sources, store, validation).

The tree::

    DataError                              root of every data-layer error
    ├── SchemaError(ValueError)            a file/table whose columns or types are not as declared
    ├── SourceError(OSError)               a remote source failed after all retries
    │   ├── RateLimited                    HTTP 429 (carries retry_after_s)
    │   ├── IPBanned                       HTTP 418: stop at once (carries until_ms)
    │   └── RequestRejected                other HTTP 4xx: a wrong request (status, code)
    ├── ChecksumMismatch(ValueError)       an archive zip whose sha256 differs from .CHECKSUM
    ├── UnknownSymbol(KeyError)            the exchange does not know the symbol
    ├── StoreError(OSError)                the parquet store could not be read or written
    │   └── ConcurrentWriteError           other writers kept committing the same partition first
    ├── ParameterError(ValueError)         an argument outside its documented range
    └── ValidationFailed(RuntimeError)     `validate --fail-on` threshold reached

Messages name the file, field, row or URL at fault, plus expected vs actual.
"""

from __future__ import annotations


class DataError(Exception):
    """Root of all data-layer errors."""


class SchemaError(DataError, ValueError):
    """A file or table whose columns or types differ from the declared schema."""


class SourceError(DataError, OSError):
    """A remote source failed (after retries where retrying makes sense)."""


class RateLimited(SourceError):
    """HTTP 429 from the exchange.

    Attributes:
        retry_after_s: seconds the server asked us to wait (Retry-After), or None.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IPBanned(SourceError):
    """HTTP 418: the IP is banned; all requests stop at once.

    Attributes:
        until_ms: epoch milliseconds until which the ban holds, when known.
    """

    def __init__(self, message: str, until_ms: int | None = None) -> None:
        super().__init__(message)
        self.until_ms = until_ms


class RequestRejected(SourceError):
    """HTTP 4xx other than 418/429: retrying the same request cannot help.

    Attributes:
        status: the HTTP status code.
        code: the exchange's error code from a JSON body (Binance ``-1121``), or None.
        url: the URL requested.
    """

    def __init__(self, message: str, status: int, code: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.url = url


class ChecksumMismatch(DataError, ValueError):
    """An archive file whose sha256 differs from its published .CHECKSUM."""


class UnknownSymbol(DataError, KeyError):
    """The exchange (or the store) does not know the symbol."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StoreError(DataError, OSError):
    """The parquet store could not be read or written as asked."""


class ConcurrentWriteError(StoreError):
    """Another writer committed the same partition first, on every retry (object stores)."""


class ParameterError(DataError, ValueError):
    """An argument outside its documented range (e.g. ``generate_market(n_symbols=0)``)."""


class ValidationFailed(DataError, RuntimeError):
    """Validation found issues at or above the `--fail-on` severity."""
