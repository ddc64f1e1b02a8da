"""Trade, depth-stream, book and funding validation on real recordings: clean data gives no
errors; planted defects are found at exactly the planted rows."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings

from alphaforge.data.recordings import read_hftbacktest
from alphaforge.data.schemas import AGG_TRADES, BOOK_SNAPSHOTS, FUNDING, conform
from alphaforge.data.tardis import read_tardis_csv
from alphaforge.data.validate import (
    validate_book_snapshots,
    validate_book_ticker,
    validate_depth_updates,
    validate_funding,
    validate_trades,
)
from tests.strategies import planted_defects


def _rows(rep, name: str) -> set[int]:
    return set(rep.check(name).row_index.tolist())


@cache
def _xrp_agg(path: str) -> pa.Table:
    info = [x["info"] for x in json.loads(gzip.decompress(Path(path).read_bytes()))]
    cols = {
        "symbol": ["XRPETH"] * len(info),
        "agg_trade_id": [i["a"] for i in info],
        "price": [float(i["p"]) for i in info],
        "qty": [float(i["q"]) for i in info],
        "first_trade_id": [i["f"] for i in info],
        "last_trade_id": [i["l"] for i in info],
        "ts": pa.array([i["T"] * 1000 for i in info]).cast(AGG_TRADES.field("ts").type),
        "is_buyer_maker": [i["m"] for i in info],
    }
    return pa.table(cols).cast(AGG_TRADES)


def _agg(real_dir: Path) -> pa.Table:
    return _xrp_agg(str(real_dir / "freqtrade_binance" / "XRP_OLD-trades.json.gz"))


@pytest.mark.shared
def test_real_agg_trades_are_clean(real_dir: Path) -> None:
    rep = validate_trades(_agg(real_dir), "agg_trades")
    assert rep.worst_severity is None, rep.to_json()
    assert rep.expected == rep.n_rows == 12_477
    assert rep.completeness == 1.0


TRADE_KINDS = ("gap", "first_last", "duplicate", "ts_back", "zero_price", "zero_qty", "spike")


@pytest.mark.shared
@settings(max_examples=25)
@given(defects=planted_defects(TRADE_KINDS, n_slots=150))
def test_planted_trade_defects_found_at_exactly_the_planted_rows(
    real_dir: Path, defects: list[tuple[str, int, int]]
) -> None:
    base = _agg(real_dir)
    cols = {c: np.asarray(base[c].to_numpy(zero_copy_only=False)).copy() for c in base.column_names}
    cols["ts"] = np.asarray(base["ts"].cast(pa.int64())).copy()
    at = {100 + 80 * s + j: kind for kind, s, j in defects}
    order, edits = [], []
    for i in range(base.num_rows):
        kind = at.get(i)
        if kind == "gap":
            edits.append((kind, len(order)))
            continue
        order.append(i)
        if kind == "duplicate":
            order.append(i)
        if kind is not None:
            edits.append((kind, len(order) - 1))
    c = {k: v[order].copy() for k, v in cols.items()}
    exp: dict[str, set[int]] = {}
    for kind, k in edits:
        add = exp.setdefault
        if kind == "gap":
            add("missing_ids", set()).add(k)
        elif kind == "first_last":
            c["first_trade_id"][k:] += 1
            c["last_trade_id"][k:] += 1
            add("first_last_gap", set()).add(k)
        elif kind == "duplicate":
            add("duplicate_ids", set()).add(k)
        elif kind == "ts_back":
            c["ts"][k] = c["ts"][k - 1] - 1000
            add("non_monotonic_time", set()).add(k)
        elif kind == "zero_price":
            c["price"][k] = 0.0
            add("non_positive_price", set()).add(k)
            add("price_outlier", set()).add(k)
        elif kind == "zero_qty":
            c["qty"][k] = 0.0
            add("non_positive_qty", set()).add(k)
        elif kind == "spike":
            c["price"][k] *= 1.3
            add("price_outlier", set()).add(k)
    table = pa.table(c).cast(
        pa.schema([f.with_type(pa.int64()) if f.name == "ts" else f for f in AGG_TRADES])
    )
    table = table.set_column(6, "ts", table["ts"].cast(AGG_TRADES.field("ts").type))
    rep = validate_trades(table.cast(AGG_TRADES), "agg_trades")
    for name in (
        "missing_ids",
        "first_last_gap",
        "duplicate_ids",
        "id_step_back",
        "non_monotonic_time",
        "non_positive_price",
        "non_positive_qty",
        "price_outlier",
        "first_gt_last",
    ):
        assert _rows(rep, name) == exp.get(name, set()), (name, defects)
    assert rep.check("missing_ids").count == sum(1 for d in defects if d[0] == "gap")


@cache
def _recording(paths: tuple[str, ...]):  # type: ignore[no-untyped-def]
    return read_hftbacktest(list(paths))


HFT = "binance_ws_hftbacktest"


@pytest.mark.shared
@pytest.mark.parametrize(
    "files",
    [
        ("spot/nexousdt_20240723.dat.gz", "spot/nexousdt_20240724.dat.gz"),
        ("usdm/btcusdt_20230404.dat.gz",),
    ],
)
def test_real_depth_streams_have_no_sequence_breaks(real_dir: Path, files: tuple[str, ...]) -> None:
    rec = _recording(tuple(str(real_dir / HFT / f) for f in files))
    rep = validate_depth_updates(rec.depth_updates)
    assert rep.worst_severity != "error", rep.to_json()
    assert rep.check("sequence_break").count == 0
    rule = "U == prev_u + 1" if files[0].startswith("spot") else "pu == prev_u"
    assert rule in rep.check("sequence_break").description
    tr = validate_trades(rec.trades, "trades")
    assert tr.check("missing_ids").count == 0
    assert tr.worst_severity != "error"
    bt = validate_book_ticker(rec.book_ticker)
    assert bt.check("crossed_book").count == 0


@pytest.mark.shared
@settings(max_examples=20)
@given(defects=planted_defects(("drop_event", "bump_first"), n_slots=40, max_defects=5))
def test_planted_sequence_breaks_found_at_the_planted_event(
    real_dir: Path, defects: list[tuple[str, int, int]]
) -> None:
    d = _recording((str(real_dir / HFT / "spot/nexousdt_20240723.dat.gz"),)).depth_updates
    u = np.asarray(d["last_update_id"].fill_null(-1))
    snap = np.asarray(d["is_snapshot"].fill_null(False))
    start = np.flatnonzero(np.concatenate(([True], u[1:] != u[:-1])) & ~snap)
    start = start[start > np.flatnonzero(snap).max()]  # diffs applied after the snapshot
    ev_end = np.append(start[1:], d.num_rows)
    keep = np.ones(d.num_rows, dtype=bool)
    U = np.asarray(d["first_update_id"].fill_null(-1)).copy()
    planted_old: list[int] = []
    for kind, s, j in defects:
        e = 5 + 6 * s + j
        if e + 1 >= start.size:
            continue
        if kind == "drop_event":
            keep[start[e] : ev_end[e]] = False
            planted_old.append(int(start[e + 1]))
        else:
            U[start[e] : ev_end[e]] += 1
            planted_old.append(int(start[e]))
    t = d.set_column(
        d.schema.get_field_index("first_update_id"), "first_update_id", pa.array(U, pa.int64())
    ).filter(pa.array(keep))
    new_index = np.cumsum(keep) - 1
    rep = validate_depth_updates(t)
    assert _rows(rep, "sequence_break") == {int(new_index[i]) for i in planted_old}


def test_futures_rule_uses_pu_on_hand_built_stream() -> None:
    rows = [  # (U, u, pu, is_snapshot)
        (None, 100, None, True),
        (95, 105, 90, False),
        (106, 110, 105, False),
        (111, 115, 109, False),
        (116, 120, 115, False),
    ]
    t = pa.table(
        {
            "symbol": ["BTCUSDT"] * 5,
            "ts": pa.array(np.arange(5) * 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "local_ts": pa.nulls(5, pa.timestamp("us", tz="UTC")),
            "first_update_id": [r[0] for r in rows],
            "last_update_id": [r[1] for r in rows],
            "prev_update_id": [r[2] for r in rows],
            "is_snapshot": [r[3] for r in rows],
            "is_bid": [True] * 5,
            "price": [10.0] * 5,
            "qty": [1.0, 1.0, 0.0, 2.0, 1.0],
        }
    )
    rep = validate_depth_updates(t)
    assert _rows(rep, "sequence_break") == {3}
    assert rep.check("negative_qty").count == 0


@pytest.mark.shared
def test_book_snapshots_real_tardis_clean_then_planted(real_dir: Path) -> None:
    snaps = read_tardis_csv(real_dir / "tardis" / "binance-futures_book_snapshot_25_BTCUSDT.csv")
    assert snaps.schema.equals(BOOK_SNAPSHOTS)
    clean = validate_book_snapshots(snaps)
    assert clean.worst_severity in (None, "info", "warning"), clean.to_json()
    assert clean.check("few_levels").count == 0
    rows = snaps.to_pylist()
    rows[2]["bid_px"][0], rows[2]["ask_px"][0] = rows[2]["ask_px"][0] + 1.0, rows[2]["bid_px"][0]
    rows[4]["bid_px"][0] = rows[4]["ask_px"][0]  # locked (stays sorted)
    rows[5]["ask_px"][3], rows[5]["ask_px"][4] = rows[5]["ask_px"][4], rows[5]["ask_px"][3]
    rows[6]["bid_qty"][7] = 0.0
    rows[7]["bid_px"][2], rows[7]["bid_px"][3] = rows[7]["bid_px"][3], rows[7]["bid_px"][2]
    for k in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        rows[8][k] = rows[8][k][:20]
    rep = validate_book_snapshots(pa.Table.from_pylist(rows, schema=BOOK_SNAPSHOTS))
    assert _rows(rep, "crossed_book") == {2}
    assert _rows(rep, "locked_book") == {4}
    assert _rows(rep, "asks_unsorted") == {5}
    assert _rows(rep, "bids_unsorted") == {7}
    assert _rows(rep, "non_positive_qty") == {6}
    assert _rows(rep, "few_levels") == {8}


def _funding(real_dir: Path) -> pa.Table:
    raw = json.loads(
        (real_dir / "freqtrade_binance/futures/XRP_USDT-8h-funding_rate.json").read_text()
    )
    table = pa.table(
        {
            "symbol": ["XRPUSDT"] * len(raw),
            "funding_time": pa.array([r[0] * 1000 for r in raw]).cast(
                FUNDING.field("funding_time").type
            ),
            "funding_rate": [float(r[1]) for r in raw],
            "mark_price": pa.nulls(len(raw), pa.float64()),
        }
    )
    return conform(table, "funding")


@pytest.mark.shared
def test_funding_real_clean_then_planted(real_dir: Path) -> None:
    f = _funding(real_dir)
    clean = validate_funding(f)
    assert clean.worst_severity == "warning", clean.to_json()
    # the one warning is real: -0.219 % on 2021-12-04 08:00, the day of the crash
    assert [r["ts"][:16] for r in clean.check("funding_outlier").rows] == ["2021-12-04T08:00"]
    assert clean.expected == f.num_rows == 91
    ts = np.asarray(f["funding_time"].cast(pa.int64())).copy()
    rate = np.asarray(f["funding_rate"]).copy()
    ts[30] += 2 * 3_600_000_000  # off the 8h schedule
    rate[50] = 0.05  # outlier
    keep = np.ones(f.num_rows, dtype=bool)
    keep[70] = False  # one funding event missing
    order = np.flatnonzero(keep).tolist()
    order.insert(11, 10)  # duplicate of row 10 right after it
    t = pa.table(
        {
            "symbol": f["symbol"].take(order),
            "funding_time": pa.array(ts[order]).cast(FUNDING.field("funding_time").type),
            "funding_rate": rate[order],
            "mark_price": f["mark_price"].take(order),
        }
    )
    rep = validate_funding(conform(t, "funding"))
    assert _rows(rep, "duplicate_funding") == {11}
    assert _rows(rep, "irregular_funding_time") == {31}
    assert _rows(rep, "funding_outlier") == {50, 51}  # 50: the real 2021-12-04 rate
    assert _rows(rep, "missing_funding") == {71}  # original row 71, after the inserted dup
    assert rep.check("missing_funding").count == 1


def BOOK_TICKER(real_dir: Path) -> Path:
    return real_dir / "binance_bookticker" / "BTCUSDT-bookTicker-2023-10-02-short.csv.gz"


@pytest.mark.shared
@pytest.mark.parametrize(
    "files", [("spot/nexousdt_20240723.dat.gz",), ("usdm/btcusdt_20230404.dat.gz",)]
)
def test_clean_top_of_book_streams_raise_no_warning(real_dir: Path, files: tuple[str, ...]) -> None:
    """Event streams update only when the top of book changes: their pauses are not gaps and
    their wide spreads around fast moves are the market (info), not defects."""
    from alphaforge.data.archive import read_archive_path

    tables = [_recording(tuple(str(real_dir / HFT / f) for f in files)).book_ticker]
    tables.append(read_archive_path(BOOK_TICKER(real_dir), "book_ticker"))
    for table in tables:
        rep = validate_book_ticker(table)
        assert rep.worst_severity in (None, "info"), rep.to_json()
        assert rep.check("snapshot_gap").count == 0


@pytest.mark.shared
def test_a_minute_without_quotes_is_a_gap(real_dir: Path) -> None:
    from alphaforge.data.archive import read_archive_path

    table = read_archive_path(BOOK_TICKER(real_dir), "book_ticker")
    ts = table.column("ts").cast(pa.int64()).to_numpy().copy()
    k = table.num_rows // 2
    ts[k:] += 90_000_000  # the feed went silent for 90 s
    col = pa.array(ts).cast(table.schema.field("ts").type)
    rep = validate_book_ticker(table.set_column(table.schema.get_field_index("ts"), "ts", col))
    assert _rows(rep, "snapshot_gap") == {k}
    assert rep.check("snapshot_gap").severity == "warning"


def test_gap_limit_is_ten_steps_for_periodic_snapshots_and_a_minute_for_events() -> None:
    from alphaforge.data.validate_books import EVENT_GAP_US, default_gap_us

    rng = np.random.default_rng(0)
    periodic = np.full(1_000, 100_000, dtype=np.int64)
    periodic[::50] = 130_000  # some jitter
    assert default_gap_us(periodic) == 1_000_000
    events = rng.exponential(20_000, 1_000).astype(np.int64) + 1
    assert default_gap_us(events) == EVENT_GAP_US
    assert default_gap_us(np.zeros(0, dtype=np.int64)) == 0
