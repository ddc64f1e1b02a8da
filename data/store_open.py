"""One entry point for every command: a store root (folder or URI) -> the store object.

- ``s3://bucket/prefix`` -> :class:`data.object_store.ObjectStore`;
- a folder, with ``[storage] cold`` configured -> :class:`data.tiered_store.TieredStore`
  (that folder warm, the cold URI cold);
- a folder otherwise -> :class:`data.store.Store`.

With ``hot_dir`` configured and ``hot_mb > 0``, reads that touch object storage go through the
hot tier (:class:`data.hot_cache.HotCache`).
"""

from __future__ import annotations

import os

from alphaforge.data.hot_cache import HotCache
from alphaforge.data.object_store import ObjectStore
from alphaforge.data.storage_config import StorageConfig, is_uri, load_storage_config
from alphaforge.data.store import Store
from alphaforge.data.tiered_store import TieredStore


def open_store(root: str | os.PathLike[str] | Store, config: StorageConfig | None = None) -> Store:
    """The store at ``root`` (a Store passes through unchanged).

    Raises:
        StoreError: an unsupported URI scheme. ParameterError: a bad ``[storage]`` table.
    """
    if isinstance(root, Store):
        return root
    cfg = config or load_storage_config()
    text = os.fspath(root)
    hot = HotCache(cfg.hot_dir, cfg.hot_mb * 1_000_000) if cfg.hot_dir and cfg.hot_mb else None
    if is_uri(text):
        obj = ObjectStore(text, cfg)
        obj.hot = hot
        return obj
    if cfg.cold:
        tiered = TieredStore(Store(text), ObjectStore(cfg.cold, cfg), cfg)
        tiered.hot = hot
        return tiered
    return Store(text)
