"""Bars of a longer interval from a Panel of shorter bars (1m -> 5m, 15m, 1h, 4h, 1d).

The exchange's kline rules: open = first, high = max, low = min, close = last; volumes, quote
volumes, trade counts and taker volumes are summed; ``vwap`` = quote volume / volume; funding
paid per bar (``funding_paid``) is summed; other fields (e.g. the last known ``funding_rate``)
take the bucket's last row. Bars stay indexed by their close time (design.md): a bar of length
S closing at C (a multiple of S since the epoch, as Binance aligns hours and UTC days) covers
the source bars closing in (C - S, C].

A bucket with some source bars missing is kept, with ``partial`` = 1 and, unless
``allow_partial``, ``tradable`` = 0 (a backtest does not trade on it); a bucket with no source
bar is a NaN row (the Panel stays on the true time grid).
"""

from __future__ import annotations

import warnings
from typing import Final

import numpy as np
import numpy.typing as npt

from alphaforge.engine.errors import PanelError
from alphaforge.engine.panel import BookLevels, Panel

F64 = npt.NDArray[np.float64]

SUMMED: Final = frozenset(
    {
        "volume",
        "quote_volume",
        "trades",
        "taker_buy_volume",
        "taker_buy_quote_volume",
        "funding_paid",
    }
)
MAX_ALIGNED_US: Final = 86_400_000_000
"""Longest target interval: longer bars (3d, 1w, 1M) are not aligned on the epoch by Binance."""


def resample_panel(panel: Panel, interval_us: int, *, allow_partial: bool = False) -> Panel:
    """``panel`` (bars of ``panel.interval_us``) aggregated into bars of ``interval_us``.

    Args:
        panel: source bars on the true time grid. interval_us: target bar length, a multiple
            of the source's, at most one day.
        allow_partial: keep buckets with missing source bars tradable.

    Returns:
        A Panel with one row per target bar from the first to the last bucket touched, the
        fields above plus ``partial`` (1.0 where a source bar is missing, else 0.0).

    Raises:
        PanelError: no source interval, a target that is not a multiple of it, or a target
            longer than a day.
    """
    src = panel.interval_us
    if src is None:
        raise PanelError("resampling needs a panel with a bar interval")
    if interval_us % src or interval_us < src:
        raise PanelError(
            f"cannot resample {src} us bars into {interval_us} us bars (not a multiple)"
        )
    if interval_us > MAX_ALIGNED_US:
        raise PanelError("resampling supports targets up to 1d; pull longer klines natively")
    if interval_us == src or panel.T == 0:
        return panel
    k = interval_us // src
    close = (panel.ts_us + interval_us - 1) // interval_us * interval_us
    bucket = (close - close[0]) // interval_us
    pos = k - 1 - (close - panel.ts_us) // src
    nb = int(bucket[-1]) + 1
    ts = close[0] + interval_us * np.arange(nb, dtype=np.int64)

    def cube(a: F64) -> F64:
        out = np.full((nb, k, *a.shape[1:]), np.nan)
        out[bucket, pos] = a
        return out

    c = cube(panel["close"])
    have = np.isfinite(c)
    count = have.sum(axis=1)
    first = np.argmax(have, axis=1)
    last = k - 1 - np.argmax(have[:, ::-1], axis=1)
    rows, cols = np.indices(count.shape)
    empty = count == 0
    fields: dict[str, F64] = {}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN buckets: handled as `empty`
        for name, a in panel.fields.items():
            x = cube(a)
            if name == "open":
                v = x[rows, first, cols]
            elif name == "high":
                v = np.nanmax(x, axis=1)
            elif name == "low":
                v = np.nanmin(x, axis=1)
            elif name in SUMMED:
                v = np.nansum(x, axis=1)
            elif name == "tradable":
                v = np.where(np.isfinite(x[:, -1]), x[:, -1], 0.0)
            else:
                v = x[rows, last, cols]
            if name != "tradable":  # an empty bucket is not tradable (0), every value is NaN
                v = np.where(empty, np.nan, v)
            fields[name] = np.ascontiguousarray(v)
        if "quote_volume" in fields and "volume" in fields:
            vol = fields["volume"]
            fields["vwap"] = np.where(vol > 0, fields["quote_volume"] / np.where(vol > 0, vol, 1),
                                      np.nan)  # fmt: skip
    partial = np.where(empty, np.nan, (count < k).astype(np.float64))
    fields["partial"] = partial
    if not allow_partial:
        base = fields.get("tradable", np.where(empty, 0.0, 1.0))
        fields["tradable"] = np.where(partial == 1.0, 0.0, base)
    book = None
    if panel.book is not None:
        book = BookLevels(*(np.ascontiguousarray(cube(a)[:, -1]) for a in panel.book._arrays()))
    meta = {**panel.meta, "resampled_from_us": src}
    return Panel(ts, panel.symbols, fields, book, interval_us, meta)
