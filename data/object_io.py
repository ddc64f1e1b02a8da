"""Object-storage primitives for the store: one bucket prefix through ``pyarrow.fs``, plus the
one operation object stores offer for atomic commits, the conditional create.

Data objects are read and written with ``pyarrow.fs.S3FileSystem`` (parallel ranged reads for
parquet, multipart uploads that become visible only when complete). A commit is a PUT with
``If-None-Match: *`` (S3 conditional writes, also in MinIO, R2, Ceph and moto), which
``pyarrow.fs`` does not expose, so that single call goes through ``botocore``: it either creates
the object or fails with 412 because another writer created it first.

Paths here are relative to the store root (``exchange=binance/market=usdm/...``); credentials
come from :class:`data.storage_config.StorageConfig` and are never put into a message.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from alphaforge.data.errors import StoreError
from alphaforge.data.storage_config import StorageConfig

IO_THREADS = 16
"""Concurrent requests for many small objects (manifests): latency-bound, not CPU-bound."""


def _endpoint_parts(endpoint: str | None) -> tuple[str | None, str]:
    """``http://host:port`` -> (``host:port``, ``http``); None -> (None, ``https``)."""
    if not endpoint:
        return None, "https"
    u = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return u.netloc, u.scheme or "https"


class ObjectFS:
    """A bucket prefix of an S3-compatible object store.

    Args:
        uri: ``s3://bucket/prefix`` (the prefix may be empty).
        cfg: endpoint, region and credentials.

    Raises:
        StoreError: a scheme other than ``s3`` or a URI without a bucket.
    """

    def __init__(self, uri: str, cfg: StorageConfig) -> None:
        u = urlsplit(uri)
        if u.scheme != "s3":
            raise StoreError(f"store {uri!r}: unsupported scheme {u.scheme!r}; a store is a local "
                             "folder or s3://bucket/prefix (any S3-compatible server: set "
                             "[storage] endpoint or ALPHAFORGE_S3_ENDPOINT)")  # fmt: skip
        if not u.netloc:
            raise StoreError(f"store {uri!r}: no bucket name (expected s3://bucket/prefix)")
        self.uri = uri.rstrip("/")
        self.bucket = u.netloc
        self.prefix = u.path.strip("/")
        self.cfg = cfg
        host, scheme = _endpoint_parts(cfg.endpoint)
        kw: dict[str, Any] = {"region": cfg.region, "scheme": scheme}
        if host:
            kw["endpoint_override"] = host
        if cfg.access_key and cfg.secret_key:
            kw |= {"access_key": cfg.access_key, "secret_key": cfg.secret_key,
                   "session_token": cfg.session_token}  # fmt: skip
        self.fs = pafs.S3FileSystem(**kw)
        self._client: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ names
    def path(self, rel: str) -> str:
        """The ``pyarrow.fs`` path (``bucket/prefix/rel``) of a store-relative path."""
        return "/".join(p for p in (self.bucket, self.prefix, rel.strip("/")) if p)

    def key(self, rel: str) -> str:
        """The object key (``prefix/rel``) of a store-relative path."""
        return "/".join(p for p in (self.prefix, rel.strip("/")) if p)

    def where(self, rel: str) -> str:
        """The URI of a store-relative path, for messages."""
        return f"{self.uri}/{rel.strip('/')}"

    def _error(self, rel: str, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"{self.where(rel)}: {what} failed: {exc}")

    # ------------------------------------------------------------------ objects
    def put(self, rel: str, payload: bytes | pa.Buffer) -> None:
        """Write one object (visible only once complete)."""
        try:
            with self.fs.open_output_stream(self.path(rel)) as out:
                out.write(payload)
        except OSError as exc:
            raise self._error(rel, "write", exc) from exc

    def get(self, rel: str) -> bytes | None:
        """The bytes of one object, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self.path(rel)) as src:
                return bytes(src.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "NoSuchKey" in str(exc) or "does not exist" in str(exc):
                return None
            raise self._error(rel, "read", exc) from exc

    def get_many(self, rels: Sequence[str]) -> list[bytes | None]:
        """:meth:`get` of many objects with concurrent requests, in order."""
        if len(rels) <= 1:
            return [self.get(r) for r in rels]
        with ThreadPoolExecutor(min(IO_THREADS, len(rels))) as pool:
            return list(pool.map(self.get, rels))

    def exists(self, rel: str) -> bool:
        """True when the object exists."""
        try:
            return bool(self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File)
        except OSError as exc:
            raise self._error(rel, "stat", exc) from exc

    def list_files(self, rel_prefix: str) -> list[tuple[str, int]]:
        """(store-relative path, size) of every object under ``rel_prefix``, sorted."""
        base = self.path(rel_prefix)
        cut = len(self.path("")) + 1 if self.path("") else 0
        sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(sel)
        except OSError as exc:
            raise self._error(rel_prefix, "listing", exc) from exc
        return sorted((i.path[cut:], int(i.size or 0)) for i in infos
                      if i.type == pafs.FileType.File)  # fmt: skip

    def list_dirs(self, rel_prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``rel_prefix``."""
        sel = pafs.FileSelector(self.path(rel_prefix), recursive=False, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(sel)
        except OSError as exc:
            raise self._error(rel_prefix, "listing", exc) from exc
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def delete(self, rels: Iterable[str]) -> None:
        """Delete objects (missing ones are fine)."""
        for rel in rels:
            try:
                self.fs.delete_file(self.path(rel))
            except FileNotFoundError:
                pass
            except OSError as exc:
                if "NoSuchKey" not in str(exc):
                    raise self._error(rel, "delete", exc) from exc

    # ------------------------------------------------------------------ commit
    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import botocore.session
                    from botocore.config import Config
                except ImportError:
                    raise StoreError("commits to an object store need botocore: pip install "
                                     "'alphaforge[s3]'") from None  # fmt: skip
                cfg = self.cfg
                session = botocore.session.get_session()
                self._client = session.create_client(
                    "s3", region_name=cfg.region, endpoint_url=cfg.endpoint or None,
                    aws_access_key_id=cfg.access_key, aws_secret_access_key=cfg.secret_key,
                    aws_session_token=cfg.session_token,
                    config=Config(retries={"max_attempts": 5, "mode": "standard"}),
                )  # fmt: skip
            return self._client

    def create_exclusive(self, rel: str, payload: bytes) -> bool:
        """Create the object only if no object of that name exists (``If-None-Match: *``).

        Returns:
            True when this call created it; False when it already existed (another writer).

        Raises:
            StoreError: any other failure (the server refused, the bucket is missing...).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().put_object(Bucket=self.bucket, Key=self.key(rel), Body=payload,
                                  IfNoneMatch="*")  # fmt: skip
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err.get("Code") in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ) or status in (
                409,
                412,
            ):
                return False
            raise self._error(rel, "commit", exc) from exc
        except BotoCoreError as exc:
            raise self._error(rel, "commit", exc) from exc
        return True
