"""Where the store lives: object-storage settings and the tier policy, from the environment or
the ``[storage]`` table of ``alphaforge.toml``.

Resolution order: environment > ``[storage]`` in ``$ALPHAFORGE_CONFIG`` or ``./alphaforge.toml``
> built-in defaults. Keys (environment name in brackets)::

    [storage]
    endpoint = "http://127.0.0.1:9000"   # [ALPHAFORGE_S3_ENDPOINT, AWS_ENDPOINT_URL] S3-compatible
    region = "us-east-1"                 # [AWS_REGION, AWS_DEFAULT_REGION]
    access_key = "..."                   # [AWS_ACCESS_KEY_ID]      never printed
    secret_key = "..."                   # [AWS_SECRET_ACCESS_KEY]  never printed
    cold = "s3://bucket/alphaforge"      # [ALPHAFORGE_COLD_STORE] the cold tier of a local store
    warm_days = 90                       # [ALPHAFORGE_WARM_DAYS] months ending within N days: warm
    hot_dir = ".alphaforge-hot"          # [ALPHAFORGE_HOT_DIR] memory-mapped Arrow IPC read cache
    hot_mb = 2048                        # [ALPHAFORGE_HOT_MB] size bound of that cache (0: off)
    price_hot = 0.0                      # USD per GB-month of each tier, for `store ls`
    price_warm = 0.08
    price_cold = 0.023

Credentials are held in :class:`StorageConfig` fields that its ``repr`` hides; no command prints
them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alphaforge.data.errors import ParameterError

TIERS = ("hot", "warm", "cold")
DEFAULT_PRICES = {"hot": 0.0, "warm": 0.08, "cold": 0.023}
"""USD per GB-month: local SSD block storage vs S3 Standard list prices (override in config)."""

_KEYS = {"endpoint", "region", "access_key", "secret_key", "session_token", "cold", "warm_days",
         "hot_dir", "hot_mb", "price_hot", "price_warm", "price_cold"}  # fmt: skip


@dataclass(frozen=True)
class StorageConfig:
    """Object-storage connection and tier policy (see the module docstring for the keys).

    Attributes:
        endpoint: S3-compatible endpoint URL (``http://host:port``), None for AWS itself.
        region: S3 region.
        access_key, secret_key, session_token: credentials (None: the SDKs' default chain).
        cold: URI of the cold tier of a local store (``s3://bucket/prefix``), or None.
        warm_days: a month whose end is within this many days of now stays warm.
        hot_dir: folder of the hot read cache, or None (off).
        hot_mb: size bound of the hot cache in MB.
        prices: USD per GB-month by tier.
    """

    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    cold: str | None = None
    warm_days: int = 90
    hot_dir: str | None = None
    hot_mb: int = 2048
    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))


def _file_table(path: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    p = Path(path or os.environ.get("ALPHAFORGE_CONFIG", "alphaforge.toml"))
    if not p.is_file():
        return {}, str(p)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{p}: invalid TOML: {exc}") from None
    table = doc.get("storage", {})
    if not isinstance(table, dict):
        raise ParameterError(f"{p}: [storage] must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ParameterError(f"{p}: unknown key(s) {unknown} in [storage]; known: {sorted(_KEYS)}")
    return table, str(p)


def load_storage_config(path: str | os.PathLike[str] | None = None) -> StorageConfig:
    """The storage settings: environment over the ``[storage]`` table over defaults.

    Raises:
        ParameterError: an unreadable file, an unknown key or a value of the wrong type
            (names the file and key).
    """
    table, where = _file_table(path)
    env = os.environ

    def pick(key: str, *names: str) -> Any:
        for n in names:
            if env.get(n):
                return env[n]
        return table.get(key)

    cfg = StorageConfig()
    values: dict[str, Any] = {
        "endpoint": pick(
            "endpoint", "ALPHAFORGE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
        ),
        "region": pick("region", "AWS_REGION", "AWS_DEFAULT_REGION"),
        "access_key": pick("access_key", "AWS_ACCESS_KEY_ID"),
        "secret_key": pick("secret_key", "AWS_SECRET_ACCESS_KEY"),
        "session_token": pick("session_token", "AWS_SESSION_TOKEN"),
        "cold": pick("cold", "ALPHAFORGE_COLD_STORE"),
        "warm_days": pick("warm_days", "ALPHAFORGE_WARM_DAYS"),
        "hot_dir": pick("hot_dir", "ALPHAFORGE_HOT_DIR"),
        "hot_mb": pick("hot_mb", "ALPHAFORGE_HOT_MB"),
    }
    kw: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    for k in ("warm_days", "hot_mb"):
        if k in kw:
            try:
                kw[k] = int(kw[k])
            except (TypeError, ValueError):
                raise ParameterError(f"{where}: storage {k} must be an integer; got "
                                     f"{kw[k]!r}") from None  # fmt: skip
            if kw[k] < 0:
                raise ParameterError(f"{where}: storage {k} must be >= 0; got {kw[k]}")
    prices = dict(cfg.prices)
    for tier in TIERS:
        v = table.get(f"price_{tier}")
        if v is not None:
            if not isinstance(v, int | float) or v < 0:
                raise ParameterError(f"{where}: price_{tier} must be a number >= 0 (USD per "
                                     f"GB-month); got {v!r}")  # fmt: skip
            prices[tier] = float(v)
    return replace(cfg, prices=prices, **kw)


def is_uri(root: str | os.PathLike[str]) -> bool:
    """True for a store root with a scheme other than ``file`` (``s3://bucket/prefix``)."""
    text = os.fspath(root)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isalnum() and scheme != "file"
