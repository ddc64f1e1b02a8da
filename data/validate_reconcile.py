"""Reconciliation: klines rebuilt from aggTrades vs the exchange's klines, one table vs another
(archive vs REST) over their overlap, and spot vs futures basis outliers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data.schemas import NATURAL_KEYS, time_column
from alphaforge.data.validate_common import (
    I64,
    assemble,
    concat_rows,
    f64,
    i64,
    require_columns,
    strided_zscore,
    ts_us,
)
from alphaforge.data.validate_report import QualityReport, make_check


def rebuild_klines(agg_trades: pa.Table, interval_us: int) -> dict[str, Any]:
    """OHLCV and trade counts per bar from aggTrades of ONE symbol (in id/time order).

    Returns:
        dict of (b,) arrays: ``open_us`` (bar open time), ``open``, ``high``, ``low``,
        ``close``, ``volume`` (sum of qty), ``trades`` (sum of last - first + 1).
    """
    ts = ts_us(agg_trades, "ts")
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    px, qty = f64(agg_trades, "price")[order], f64(agg_trades, "qty")[order]
    cnt = (i64(agg_trades, "last_trade_id") - i64(agg_trades, "first_trade_id") + 1)[order]
    bucket = ts - ts % interval_us
    if bucket.size == 0:
        z = np.zeros(0)
        return {
            "open_us": np.zeros(0, np.int64),
            "open": z,
            "high": z,
            "low": z,
            "close": z,
            "volume": z,
            "trades": np.zeros(0, np.int64),
        }
    start = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    end = np.concatenate((start[1:], [bucket.size])) - 1
    return {
        "open_us": bucket[start],
        "open": px[start],
        "close": px[end],
        "high": np.maximum.reduceat(px, start),
        "low": np.minimum.reduceat(px, start),
        "volume": np.add.reduceat(qty, start),
        "trades": np.add.reduceat(cnt, start),
    }


def reconcile_klines_agg_trades(
    klines: pa.Table,
    agg_trades: pa.Table,
    interval_us: int,
    *,
    volume_rtol: float = 1e-9,
    trades_tol: int = 0,
    source: str = "klines~agg_trades",
) -> QualityReport:
    """Compare exchange klines with klines rebuilt from aggTrades, for one symbol.

    Only bars strictly inside the aggTrades coverage are compared (the first and last bar of
    the trades may be partial). Checks (rows index ``klines``): ``recon_ohlc_mismatch``
    (open/high/low/close not exactly equal), ``recon_volume_mismatch`` (|v_k - v_t| >
    volume_rtol * v_k), ``recon_trades_mismatch`` (|n_k - n_t| > trades_tol),
    ``recon_bar_without_trades`` (a kline with trades > 0 but no aggTrade), all errors;
    ``recon_trades_without_bar``: error (count = rebuilt bars with no kline).
    """
    require_columns(klines, "klines", ("open_time", "open", "high", "low", "close", "volume"))
    require_columns(
        agg_trades, "agg_trades", ("ts", "price", "qty", "first_trade_id", "last_trade_id")
    )
    rb = rebuild_klines(agg_trades, interval_us)
    ko = ts_us(klines, "open_time")
    inside = np.zeros(ko.size, dtype=bool)
    if rb["open_us"].size > 2:
        inside = (ko > rb["open_us"][0]) & (ko < rb["open_us"][-1])
    pos = np.searchsorted(rb["open_us"], ko)
    pos_c = np.minimum(pos, max(rb["open_us"].size - 1, 0))
    found = inside & (rb["open_us"].size > 0) & (rb["open_us"][pos_c] == ko) if ko.size else inside
    kv = {k: f64(klines, k) for k in ("open", "high", "low", "close", "volume")}
    kt = i64(klines, "trades", fill=-1)
    tv = {
        k: np.where(found, rb[k][pos_c], np.nan) for k in ("open", "high", "low", "close", "volume")
    }
    tt = np.where(found, rb["trades"][pos_c], -1)
    ohlc_bad = found & np.any([kv[k] != tv[k] for k in ("open", "high", "low", "close")], axis=0)
    vol_bad = found & (np.abs(kv["volume"] - tv["volume"]) > volume_rtol * np.abs(kv["volume"]))
    tr_bad = found & (kt >= 0) & (np.abs(kt - tt) > trades_tol)
    no_tr = inside & ~found & ((kt > 0) | (kv["volume"] > 0))
    inner = rb["open_us"][1:-1]
    orphan = int(np.count_nonzero(~np.isin(inner, ko))) if inner.size else 0
    vals = {f"kline_{k}": kv[k] for k in kv} | {f"trades_{k}": tv[k] for k in tv}
    idx = np.flatnonzero
    k = "klines"
    # fmt: off
    checks = [
        make_check("recon_ohlc_mismatch", k, "error", "kline OHLC != OHLC rebuilt from aggTrades",
                   idx(ohlc_bad), ko, vals),
        make_check("recon_volume_mismatch", k, "error",
                   f"kline volume differs from the aggTrades sum by > {volume_rtol:g} relative",
                   idx(vol_bad), ko, {"kline_volume": kv["volume"],
                                      "trades_volume": tv["volume"]}),
        make_check("recon_trades_mismatch", k, "error",
                   f"kline trade count differs from sum(last-first+1) by > {trades_tol}",
                   idx(tr_bad), ko, {"kline_trades": kt, "agg_trades_count": tt}),
        make_check("recon_bar_without_trades", k, "error",
                   "kline with volume inside the aggTrades coverage but no aggTrade",
                   idx(no_tr), ko, {"kline_volume": kv["volume"]}),
        make_check("recon_trades_without_bar", k, "error",
                   "bars rebuilt from aggTrades with no exchange kline (count = bars)",
                   np.zeros(0, np.int64), ko, count=orphan),
    ]
    # fmt: on
    return assemble("klines", source, klines.num_rows, checks, int(inside.sum()), 0)


def reconcile_tables(
    a: pa.Table,
    b: pa.Table,
    dataset: str,
    *,
    rtol: float = 1e-12,
    key: tuple[str, ...] | None = None,
    source: str = "archive~rest",
) -> QualityReport:
    """Compare two tables of one dataset (e.g. archive vs REST) over their overlapping times.

    Rows are matched on the dataset's natural key; only rows whose event time lies in both
    tables' [min, max] are compared. Checks (rows index ``a`` unless said): ``only_in_a``,
    ``only_in_b`` (rows index ``b``), ``value_mismatch`` (a shared row whose floats differ by
    more than ``rtol`` relative, or whose other values differ), all errors.
    """
    key = key or tuple(k for k in NATURAL_KEYS[dataset] if k in a.column_names)
    tcol = time_column(dataset)
    require_columns(a, dataset, (*key, tcol))
    require_columns(b, dataset, (*key, tcol))
    ta, tb = ts_us(a, tcol), ts_us(b, tcol)
    if ta.size == 0 or tb.size == 0:
        return assemble(dataset, source, a.num_rows, [], 0, 0)
    lo, hi = max(ta.min(), tb.min()), min(ta.max(), tb.max())
    a2 = a.append_column("__ra", pa.array(np.arange(a.num_rows))).filter((ta >= lo) & (ta <= hi))
    b2 = b.append_column("__rb", pa.array(np.arange(b.num_rows))).filter((tb >= lo) & (tb <= hi))
    value_cols = [c for c in a.column_names if c in b.column_names and c not in key]
    j = a2.select([*key, "__ra", *value_cols]).join(
        b2.select([*key, "__rb", *value_cols]),
        keys=list(key),
        join_type="full outer",
        left_suffix="__a",
        right_suffix="__b",
    )
    ra = pc.fill_null(j.column("__ra"), -1).to_numpy()
    rb = pc.fill_null(j.column("__rb"), -1).to_numpy()
    both = (ra >= 0) & (rb >= 0)
    bad = np.zeros(j.num_rows, dtype=bool)
    cols_bad: list[str] = []
    for c in value_cols:
        x, y = j.column(c + "__a"), j.column(c + "__b")
        if pa.types.is_floating(x.type):
            xa, ya = f64(j, c + "__a"), f64(j, c + "__b")
            diff = ~((np.abs(xa - ya) <= rtol * np.abs(xa)) | (np.isnan(xa) & np.isnan(ya)))
        else:
            diff = ~np.asarray(pc.fill_null(pc.equal(x, y), False))
            diff &= ~np.asarray(pc.and_(pc.is_null(x), pc.is_null(y)))
        diff &= both
        if diff.any():
            cols_bad.append(c)
        bad |= diff
    only_a = np.sort(ra[(ra >= 0) & (rb < 0)])
    only_b = np.sort(rb[(rb >= 0) & (ra < 0)])
    checks = [
        make_check(
            "only_in_a", dataset, "error", "row in a, missing in b over the overlap", only_a, ta
        ),
        make_check(
            "only_in_b", dataset, "error", "row in b, missing in a (rows index b)", only_b, tb
        ),
        make_check(
            "value_mismatch",
            dataset,
            "error",
            f"shared row with different values (columns {cols_bad})",
            np.sort(ra[bad]),
            ta,
            details=[{"columns": ",".join(cols_bad)}],
        ),
    ]
    return assemble(dataset, source, a.num_rows, checks, int(np.count_nonzero(ra >= 0)), 0)


def basis_outliers(
    spot: pa.Table,
    futures: pa.Table,
    *,
    window: int = 1440,
    outlier_z: float = 10.0,
    min_scale_bps: float = 1.0,
    source: str = "spot~futures",
) -> QualityReport:
    """Spot vs futures basis outliers on klines of one symbol, matched on open_time.

    ``basis_bps = (futures close / spot close - 1) * 1e4`` on the shared bars; its robust
    z (`validate_rolling_nb.strided_robust_zscore`, scale floored at ``min_scale_bps``) above
    ``outlier_z`` is a ``basis_outlier`` (warning; rows index ``futures``). Bars in only one
    table are ``basis_unmatched`` (info, count only).
    """
    ts_s, ts_f = ts_us(spot, "open_time"), ts_us(futures, "open_time")
    cs, cf = f64(spot, "close"), f64(futures, "close")
    common, i_s, i_f = np.intersect1d(ts_s, ts_f, assume_unique=False, return_indices=True)
    basis = np.full(futures.num_rows, np.nan)
    basis[i_f] = (cf[i_f] / cs[i_s] - 1.0) * 1e4
    z_all = np.full(futures.num_rows, np.nan)
    order = np.argsort(ts_f[i_f], kind="stable")
    rows = i_f[order].astype(np.int64)
    z = strided_zscore(
        np.ascontiguousarray(basis[rows]), window, max(1, window // 8), window // 2, min_scale_bps
    )[0]
    z_all[rows] = z
    flagged: I64 = concat_rows([rows[np.abs(z) > outlier_z]])
    unmatched = spot.num_rows + futures.num_rows - 2 * common.size
    checks = [
        make_check(
            "basis_outlier",
            "klines",
            "warning",
            f"|robust z| of the futures-spot basis > {outlier_z:g}",
            flagged,
            ts_f,
            {"futures_close": cf, "basis_bps": basis, "z": z_all},
        ),
        make_check(
            "basis_unmatched",
            "klines",
            "info",
            "bars present in only one of spot/futures (count only)",
            np.zeros(0, np.int64),
            ts_f,
            count=unmatched,
        ),
    ]
    return assemble("klines", source, futures.num_rows, checks, common.size, 0)
