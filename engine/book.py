"""Order books for backtests: rebuild L2 books from depth diffs, sample them, derive features.

    rb = rebuild_books(depth_updates, sample_ts_us, levels=100, latency_us=50_000)
    rb.levels            # BookLevels (T, N, L): the book in force at sample_ts + latency
    rb.features()        # spread_bps, mid, depth_<x>bps, imbalance_<x>bps, each (T, N)

Inputs are DEPTH_UPDATES tables (data/schemas.py; snapshot rows ``is_snapshot`` with
``last_update_id`` = lastUpdateId, diff rows with U/u(/pu)), in arrival order per symbol:
Binance recordings (spot U/u or futures U/u/pu sequence rules, REST snapshots, buffered diffs
replayed when the snapshot arrives) or Tardis incremental_book_L2 (no ids: snapshot rows reset
the book). A sequence break raises ``BookSequenceError`` (``on_gap="raise"``) or invalidates
the book until the next snapshot (``on_gap="resync"``, breaks listed in ``stats``); the rules are
in engine/book_nb.py. BOOK_SNAPSHOTS tables (Tardis book_snapshot_25/5) are sampled directly
by ``book_levels_at``; Binance REST depth snapshots alone are a snapshot-only stream.

Features (per sample row, per symbol): ``spread_bps`` = (ask0 - bid0) / mid * 1e4;
``depth_<x>bps`` = quote notional (sum price * qty) of both sides within x bps of mid;
``imbalance_<x>bps`` = (bid_notional - ask_notional) / (bid_notional + ask_notional) within the
same band, in [-1, 1], > 0 when bids outweigh asks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.engine import book_nb
from alphaforge.engine.errors import BookSequenceError, InputError, OptionError, ShapeError
from alphaforge.engine.panel import BookLevels, symbol_codes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_NEED = ("symbol", "ts", "first_update_id", "last_update_id", "prev_update_id",
         "is_snapshot", "is_bid", "price", "qty")  # fmt: skip


@dataclass(frozen=True, slots=True)
class SymbolTrace:
    """Per-message replay record of one symbol (for checks against bookTicker streams).

    Attributes:
        msg_time_us: (M,) int64 time each message's state became known (µs).
        msg_last_id: (M,) int64 u of diffs / lastUpdateId of snapshots (-1 = none).
        status: (M,) int8 book_nb.ST_* codes. best_bid, best_ask: (M,) after each message.
    """

    msg_time_us: I64
    msg_last_id: I64
    status: npt.NDArray[np.int8]
    best_bid: F64
    best_ask: F64


@dataclass(frozen=True, slots=True)
class BookRebuild:
    """Sampled rebuilt books.

    Attributes:
        ts_us: (T,) sample times (before adding latency), µs.
        symbols: the N symbols.
        levels: BookLevels (T, N, L), NaN where absent or the book was not synced.
        depth_bps: the X band half-widths of ``depth_bid`` / ``depth_ask``.
        depth_bid, depth_ask: (T, N, X) quote notional within each band of mid.
        stats: per symbol: messages, applied, dropped, pending, snapshots, breaks (list of
            dicts), crossed, rows_applied, seconds (kernel), updates_per_s, seq_mode,
            max_levels (deepest side seen after a diff).
        traces: per symbol SymbolTrace when ``keep_trace``.
    """

    ts_us: I64
    symbols: tuple[str, ...]
    levels: BookLevels
    depth_bps: tuple[float, ...]
    depth_bid: F64
    depth_ask: F64
    stats: dict[str, dict[str, Any]]
    traces: dict[str, SymbolTrace] = field(default_factory=dict)

    def features(self) -> dict[str, F64]:
        """Per-bar book features (module docstring): each (T, N) float64, NaN when unknown."""
        out = levels_features(self.levels, ())
        for x, bps in enumerate(self.depth_bps):
            out.update(_band_features(self.depth_bid[:, :, x], self.depth_ask[:, :, x], bps))
        return out


def _band_features(bid: F64, ask: F64, bps: float) -> dict[str, F64]:
    tag = f"{bps:g}bps"
    tot = bid + ask
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = np.where(tot > 0, (bid - ask) / tot, np.nan)
    return {f"depth_{tag}": tot, f"imbalance_{tag}": imb}


def levels_features(book: BookLevels, depth_bps: Sequence[float] = (10.0,)) -> dict[str, F64]:
    """spread_bps, mid and (from the L levels only) depth / imbalance within x bps of mid.

    Args:
        book: BookLevels (T, N, L). depth_bps: band half-widths in bps of mid.

    Returns:
        name -> (T, N) float64 (see module docstring); depth counts only the levels present,
        so a 5-level snapshot understates a wide band.
    """
    b0, a0 = book.bid_px[:, :, 0], book.ask_px[:, :, 0]
    mid = 0.5 * (b0 + a0)
    out = {"mid": mid, "spread_bps": (a0 - b0) / mid * 1e4}
    for bps in depth_bps:
        lo, hi = (mid * (1 - bps * 1e-4))[:, :, None], (mid * (1 + bps * 1e-4))[:, :, None]
        with np.errstate(invalid="ignore"):
            bid = np.nansum(np.where(book.bid_px >= lo, book.bid_px * book.bid_qty, 0.0), axis=2)
            ask = np.nansum(np.where(book.ask_px <= hi, book.ask_px * book.ask_qty, 0.0), axis=2)
        bad = np.isnan(mid)
        bid[bad] = np.nan
        ask[bad] = np.nan
        out.update(_band_features(bid, ask, bps))
    return out


def _col(t: pa.Table, name: str, fill: int | None = None) -> np.ndarray:
    c = t.column(name)
    if pa.types.is_timestamp(c.type):
        c = c.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    if fill is not None:
        c = pc.fill_null(c, fill)
    return np.asarray(c.to_numpy(), dtype=np.int64 if fill is not None else None)


def _stream(t: pa.Table, time_col: str) -> dict[str, Any]:
    """One symbol's rows -> message arrays for book_nb.rebuild_book."""
    first = _col(t, "first_update_id", -1)
    last = _col(t, "last_update_id", -1)
    prev = _col(t, "prev_update_id", -1)
    snap = np.asarray(pc.fill_null(t["is_snapshot"], False).to_numpy(zero_copy_only=False))
    ts = _col(t, "ts", 0)
    tm = ts if time_col == "ts" else np.where(_col(t, time_col, -1) >= 0, _col(t, time_col, 0), ts)
    n = t.num_rows
    brk = np.ones(n, dtype=bool)
    if n > 1:
        brk[1:] = ((snap[1:] != snap[:-1]) | (first[1:] != first[:-1]) | (last[1:] != last[:-1])
                   | (ts[1:] != ts[:-1]))  # fmt: skip
    starts = np.flatnonzero(brk)
    px = np.asarray(t["price"].to_numpy(), dtype=np.float64)
    qty = np.asarray(t["qty"].to_numpy(), dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(px) & (px > 0) & np.isfinite(qty) & (qty >= 0)))
    if bad.size:
        r = int(bad[0])
        raise InputError(f"depth row {r}: price {px[r]} / qty {qty[r]}; expected price > 0, "
                         "qty >= 0, both finite")  # fmt: skip
    kind = snap[starts].astype(np.int8)
    diff_prev = prev[starts][kind == 0]
    if np.all(last[starts] < 0):  # no update ids at all (Tardis)
        mode = book_nb.SEQ_NONE
    else:
        mode = book_nb.SEQ_FUTURES if np.any(diff_prev >= 0) else book_nb.SEQ_SPOT
    return {
        "msg_start": np.append(starts, n).astype(np.int64),
        "msg_kind": kind,
        "msg_first": first[starts], "msg_last": last[starts], "msg_prev": prev[starts],
        "msg_time": np.maximum.accumulate(tm[starts]).astype(np.int64),
        "row_bid": np.asarray(t["is_bid"].to_numpy(zero_copy_only=False), dtype=np.bool_),
        "row_px": px, "row_qty": qty, "mode": np.int64(mode),
    }  # fmt: skip


def _check_table(depth: pa.Table) -> None:
    missing = [c for c in _NEED if c not in depth.column_names]
    if missing:
        raise InputError(f"depth updates table lacks columns {missing}; expected {list(_NEED)}")
    for c in ("is_snapshot", "is_bid", "price", "qty"):
        if depth[c].null_count:
            raise InputError(f"depth updates column {c!r} has {depth[c].null_count} nulls")


def rebuild_books(
    depth: pa.Table,
    sample_ts_us: Any,
    *,
    symbols: Sequence[str] | None = None,
    levels: int = 20,
    latency_us: int = 0,
    depth_bps: Sequence[float] = (5.0, 10.0, 50.0),
    time_col: Literal["local_ts", "ts"] = "local_ts",
    on_gap: Literal["raise", "resync"] = "raise",
    keep_trace: bool = False,
) -> BookRebuild:
    """Replay snapshot + diff streams and sample each symbol's book at ``sample_ts + latency``.

    Args:
        depth: DEPTH_UPDATES table, rows in arrival order (per symbol).
        sample_ts_us: (T,) int64 ascending sample times, µs (e.g. decision times).
        symbols: the N columns (default: symbols in order of appearance).
        levels: L levels kept per side in the output (> 0).
        latency_us: added to every sample time (book in force at decision + latency).
        depth_bps: bands (bps of mid) for depth/imbalance features.
        time_col: clock a message's state is known at: "local_ts" (receive time, the default:
            what the trader knew; falls back to ts where null) or "ts" (exchange event time).
        on_gap: "raise" (BookSequenceError at the first break) or "resync" (book invalid,
            samples NaN, until the next snapshot; breaks listed in ``stats``).
        keep_trace: also return per-message best bid/ask (``traces``).

    Raises:
        InputError, OptionError, ShapeError: bad table, times or options.
        BookSequenceError: a sequence break (``on_gap="raise"``) or a crossed rebuilt book.
    """
    _check_table(depth)
    if on_gap not in ("raise", "resync") or time_col not in ("local_ts", "ts"):
        raise OptionError(f"on_gap must be raise|resync, time_col local_ts|ts; got {on_gap!r}, "
                          f"{time_col!r}")  # fmt: skip
    if not (isinstance(levels, int | np.integer) and levels > 0):
        raise OptionError(f"levels must be a positive integer; got {levels!r}")
    ts = np.ascontiguousarray(sample_ts_us, dtype=np.int64)
    if ts.ndim != 1 or (ts.size > 1 and np.any(np.diff(ts) < 0)):
        raise ShapeError(f"sample_ts_us must be 1-D ascending µs; got shape {ts.shape}")
    bands = np.asarray(depth_bps, dtype=np.float64).reshape(-1)
    enc = pc.dictionary_encode(depth["symbol"]).combine_chunks()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False))
    names = [str(x) for x in enc.dictionary.to_pylist()]  # in order of first appearance
    syms = tuple(symbols) if symbols is not None else tuple(names)
    t_len, n = ts.size, len(syms)
    arrs = [np.full((t_len, n, levels), np.nan) for _ in range(4)]
    dbid = np.full((t_len, n, bands.size), np.nan)
    dask = np.full((t_len, n, bands.size), np.nan)
    stats: dict[str, dict[str, Any]] = {}
    traces: dict[str, SymbolTrace] = {}
    for j, s in enumerate(syms):
        rows = np.flatnonzero(codes == names.index(s)) if s in names else np.zeros(0, np.int64)
        if rows.size == 0:
            raise InputError(f"symbol {s!r} has no depth rows")
        sub = depth if rows.size == depth.num_rows else depth.take(pa.array(rows))
        outs, st, tr = _rebuild_one(s, sub, rows, ts + latency_us, levels, bands, time_col,
                                    on_gap)  # fmt: skip
        for a, o in zip(arrs, outs[:4], strict=True):
            a[:, j, :] = o
        dbid[:, j, :], dask[:, j, :] = outs[4], outs[5]
        stats[s] = st
        if keep_trace:
            traces[s] = tr
    return BookRebuild(ts, syms, BookLevels(*arrs), tuple(float(b) for b in bands), dbid, dask,
                       stats, traces)  # fmt: skip


Rebuilt = tuple[list[F64], dict[str, Any], SymbolTrace]


def _rebuild_one(sym: str, t: pa.Table, rows: I64, sample: I64, levels: int, bands: F64,
                 time_col: str, on_gap: str) -> Rebuilt:  # fmt: skip
    a = _stream(t, time_col)
    n_msg = a["msg_kind"].size
    t_len = sample.size
    outs = [np.full((t_len, levels), np.nan) for _ in range(4)]
    outs += [np.full((t_len, bands.size), np.nan) for _ in range(2)]
    status = np.zeros(n_msg, dtype=np.int8)
    expect = np.full(n_msg, -1, dtype=np.int64)
    best = [np.full(n_msg, np.nan) for _ in range(2)]
    info = np.zeros(book_nb.N_INFO, dtype=np.int64)
    n_bid = int(a["row_bid"].sum())
    n_ask = a["row_bid"].size - n_bid
    bufs = [np.empty(n_bid + 1), np.empty(n_bid + 1), np.empty(n_ask + 1), np.empty(n_ask + 1)]
    t0 = time.perf_counter()
    book_nb.rebuild_book(  # type: ignore[call-arg]
        a["msg_start"], a["msg_kind"], a["msg_first"], a["msg_last"], a["msg_prev"],
        a["msg_time"], a["row_bid"], a["row_px"], a["row_qty"], int(a["mode"]),
        on_gap == "raise", sample, bands, *bufs, *outs, status, expect, best[0], best[1], info,
    )  # fmt: skip
    secs = time.perf_counter() - t0
    is_break = (status == book_nb.ST_BREAK) | (status == book_nb.ST_BREAK_FIRST)
    breaks = [_break_info(a, status, expect, int(k), rows) for k in np.flatnonzero(is_break)]
    if breaks and on_gap == "raise":
        b = breaks[0]
        raise BookSequenceError(
            f"{sym}: depth sequence break at input row {b['row']} (time {b['time_us']} µs): "
            f"{b['rule']}: expected {b['expected']}, got U={b['U']} u={b['u']} pu={b['pu']}; "
            "pass on_gap='resync' to restart at the next snapshot"
        )
    if info[book_nb.I_CROSSED]:
        k = int(info[book_nb.I_FIRST_CROSSED])
        raise BookSequenceError(
            f"{sym}: rebuilt book crossed {int(info[book_nb.I_CROSSED])} times, first at input "
            f"row {int(rows[a['msg_start'][k]])}: bid {best[0][k]} >= ask {best[1][k]}"
        )
    st = {
        "messages": n_msg, "applied": int(info[book_nb.I_APPLIED]),
        "dropped": int(np.sum(status == book_nb.ST_DROPPED)),
        "pending": int(np.sum(status == book_nb.ST_PENDING)),
        "snapshots": int(np.sum(status == book_nb.ST_SNAPSHOT)), "breaks": breaks,
        "crossed": int(info[book_nb.I_CROSSED]), "rows_applied": int(info[book_nb.I_ROWS]),
        "seconds": secs, "updates_per_s": float(a["row_px"].size / secs) if secs > 0 else 0.0,
        "seq_mode": {0: "none", 1: "spot", 2: "futures"}[int(a["mode"])],
        "max_levels": int(max(info[book_nb.I_MAX_BID], info[book_nb.I_MAX_ASK])),
    }  # fmt: skip
    return outs, st, SymbolTrace(a["msg_time"], a["msg_last"], status, best[0], best[1])


def _break_info(a: dict[str, np.ndarray], status: np.ndarray, expect: I64, k: int,
                rows: I64) -> dict[str, Any]:  # fmt: skip
    futures = int(a["mode"]) == book_nb.SEQ_FUTURES
    if status[k] == book_nb.ST_BREAK_FIRST:
        rule = "U <= lastUpdateId <= u" if futures else "U <= lastUpdateId + 1 <= u"
    else:
        rule = "pu == previous u" if futures else "U == previous u + 1"
    return {"message": k, "row": int(rows[a["msg_start"][k]]), "time_us": int(a["msg_time"][k]),
            "rule": rule, "expected": int(expect[k]), "U": int(a["msg_first"][k]),
            "u": int(a["msg_last"][k]), "pu": int(a["msg_prev"][k])}  # fmt: skip


def quote_agreement(trace: SymbolTrace, update_id: Any, bid_px: Any, ask_px: Any) -> dict[str, Any]:
    """Compare the rebuilt best bid/ask with a bookTicker stream by update id.

    Exact: bookTicker events whose update id equals the last id u of an applied diff (or a
    snapshot's lastUpdateId) are compared with the book right after that message; both sides
    must agree. Nearest: every event (id u_bt) is compared with the book after the last applied
    message with u <= u_bt; depth diffs are batched while bookTicker is real time, so only
    partial agreement is expected. Events before the book is synced are not counted.

    Returns:
        {"exact_events", "exact_both" (fraction where bid and ask both match), "events",
        "either" (bid or ask matches), "both", "bid", "ask"} (fractions NaN without events).
    """
    ok = (trace.status == book_nb.ST_APPLIED) | (trace.status == book_nb.ST_SNAPSHOT)
    ids, bb, ba = trace.msg_last_id[ok], trace.best_bid[ok], trace.best_ask[ok]
    order = np.argsort(ids, kind="stable")
    ids, bb, ba = ids[order], bb[order], ba[order]
    uid = np.asarray(update_id, dtype=np.int64)
    bid = np.asarray(bid_px, dtype=np.float64)
    ask = np.asarray(ask_px, dtype=np.float64)
    k = np.searchsorted(ids, uid, side="right") - 1
    use = k >= 0
    mb = bb[k[use]] == bid[use]
    ma = ba[k[use]] == ask[use]
    exact = use & (ids[np.maximum(k, 0)] == uid)
    ke = k[exact]
    both_exact = (bb[ke] == bid[exact]) & (ba[ke] == ask[exact])

    def frac(m: np.ndarray) -> float:
        return float(m.mean()) if m.size else float("nan")

    return {"exact_events": int(exact.sum()), "exact_both": frac(both_exact),
            "events": int(use.sum()), "either": frac(mb | ma), "both": frac(mb & ma),
            "bid": frac(mb), "ask": frac(ma)}  # fmt: skip


def book_levels_at(books: pa.Table, ts_us: Any, symbols: Sequence[str], *,
                   latency_us: int = 0, levels: int | None = None) -> BookLevels:  # fmt: skip
    """The snapshot in force at each ts + latency (last BOOK_SNAPSHOTS row at or before it).

    Args:
        books: BOOK_SNAPSHOTS table (list columns bid_px, bid_qty, ask_px, ask_qty).
        ts_us: (T,) int64 sample times, µs. symbols: the N columns.
        latency_us: added to every sample time. levels: L (default: the widest snapshot).

    Returns:
        BookLevels (T, N, L); NaN before a symbol's first snapshot and past its depth.
    """
    ts = np.asarray(ts_us, dtype=np.int64) + latency_us
    width = 0
    for name in ("bid_px", "ask_px"):
        lens = pc.list_value_length(books.column(name)).to_numpy(zero_copy_only=False)
        width = max(width, int(lens.max()) if lens.size else 0)
    n_lev = width if levels is None else int(levels)
    src = np.full((ts.size, len(symbols)), -1, dtype=np.int64)  # the snapshot row in force
    sym_names, codes = symbol_codes(books.column("symbol"), "symbol")
    code_of = {str(v): k for k, v in enumerate(sym_names)}
    bts = _col(books, "ts", 0)
    order = np.lexsort((bts, codes))  # by symbol, then time; equal times keep row order
    starts = np.searchsorted(codes[order], np.arange(len(code_of) + 1), side="left")
    for j, s in enumerate(symbols):
        k = code_of.get(str(s))
        if k is None:
            continue
        rows = order[starts[k] : starts[k + 1]]
        idx = np.searchsorted(bts[rows], ts, side="right") - 1
        have = idx >= 0
        src[have, j] = rows[idx[have]]
    missing = src < 0
    take = np.where(missing, 0, src).ravel()
    arrays = []
    for name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        if not books.num_rows:
            arrays.append(np.full((ts.size, len(symbols), n_lev), np.nan))
            continue
        dense = _dense(books.column(name), max(width, n_lev))[:, :n_lev]
        arr = dense[take].reshape(ts.size, len(symbols), n_lev)  # one gather, C-ordered
        arr[missing] = np.nan
        arrays.append(arr)
    return BookLevels(*arrays)


def _dense(col: pa.ChunkedArray, width: int) -> F64:
    """A list<float> column as a (rows, width) float64 array, NaN past each row's length
    (a null list has none); row-major, so the flattened values fill the kept cells in order."""
    arr = col.combine_chunks()
    lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    flat = np.asarray(pc.list_flatten(arr).to_numpy(zero_copy_only=False), np.float64)
    if lens.size and width and bool((lens == width).all()):
        return flat.reshape(lens.size, width)
    out = np.full((lens.size, width), np.nan)
    out[np.arange(width)[None, :] < lens[:, None]] = flat
    return out
