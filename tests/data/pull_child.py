"""Subprocess body for the kill -9 tests: pull, and SIGKILL itself at the k-th store checkpoint.

Usage: ``python -m tests.data.pull_child <store> <rest_url> <start> <end> <now_s> <kill_at>``
(``kill_at`` 0 = never; the parent may also SIGKILL this process at any moment).
"""

from __future__ import annotations

import os
import random
import signal
import sys

import alphaforge.data.store as store_mod
from alphaforge.data.archive_fetch import ArchiveClient
from alphaforge.data.binance_rest import BinanceRest
from alphaforge.data.http import RetryPolicy
from alphaforge.data.pull import pull

SYMBOLS = ("AVAXUSDT",)


def main(argv: list[str]) -> None:
    root, url, start, end, now_s, kill_at = argv
    now = float(now_s)
    count = 0

    def checkpoint(name: str) -> None:
        nonlocal count
        count += 1
        if count == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

    store_mod._checkpoint = checkpoint
    retry = RetryPolicy(backoff_base_s=0.001)
    rest = BinanceRest("usdm", base_url=url, clock=lambda: now, retry=retry, page_limit=100,
                       rng=random.Random(0))  # fmt: skip
    archive = ArchiveClient(url, retry=retry)
    pull(store_mod.Store(root), "auto", "usdm", "klines", SYMBOLS, "1m", start, end,
         rest=rest, archive=archive, clock=lambda: now, flush_rows=300)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
