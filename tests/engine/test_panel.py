"""Panel: pivot from a long Arrow table, slicing, pandas round trip, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from alphaforge.engine.errors import PanelError, ShapeError
from alphaforge.engine.panel import BookLevels, Panel


def _long() -> pa.Table:
    return pa.table({
        "ts": pa.array([3, 1, 2, 1, 3], pa.int64()),
        "symbol": ["B", "A", "A", "B", "A"],
        "close": [30.0, 10.0, 20.0, 11.0, 31.0],
        "volume": [1, 2, 3, 4, 5],
    })  # fmt: skip


def test_from_arrow_pivots_once_with_nan_for_missing() -> None:
    p = Panel.from_arrow(_long(), interval_us=1)
    assert p.symbols == ("A", "B")
    np.testing.assert_array_equal(p.ts_us, [1, 2, 3])
    np.testing.assert_array_equal(p["close"], [[10.0, 11.0], [20.0, np.nan], [31.0, 30.0]])
    assert p["volume"].dtype == np.float64
    assert p.periods_per_year == 365 * 86_400 * 1e6


def test_from_arrow_builds_the_true_time_grid() -> None:
    """Two months of minute bars a year apart: never one "1-minute" row spanning the gap."""
    minute = 60_000_000
    t = pa.table({"ts": [0, minute, 5 * minute], "symbol": ["A", "A", "A"],
                  "close": [1.0, 2.0, 3.0]})  # fmt: skip
    p = Panel.from_arrow(t, interval_us=minute)
    np.testing.assert_array_equal(p.ts_us, np.arange(6) * minute)
    np.testing.assert_array_equal(p["close"][:, 0], [1.0, 2.0, np.nan, np.nan, np.nan, 3.0])
    off = pa.table({"ts": [0, minute + 1], "symbol": ["A", "A"], "close": [1.0, 2.0]})
    with pytest.raises(PanelError, match="not on the 60000000 us grid"):
        Panel.from_arrow(off, interval_us=minute)


def test_a_panel_with_an_interval_cannot_join_a_gap() -> None:
    ts = np.array([0, 60, 180], dtype=np.int64)
    with pytest.raises(PanelError, match="rows 1 and 2 are 120 us apart"):
        Panel(ts, ("A",), {"close": np.ones((3, 1))}, interval_us=60)
    p = Panel(ts, ("A",), {"close": np.array([[1.0], [2.0], [3.0]])}).on_grid(60)
    np.testing.assert_array_equal(p.ts_us, [0, 60, 120, 180])
    np.testing.assert_array_equal(p["close"][:, 0], [1.0, 2.0, np.nan, 3.0])


def test_from_arrow_accepts_timestamp_columns() -> None:
    t = _long().set_column(0, "ts", pa.array([3, 1, 2, 1, 3], pa.timestamp("ms", tz="UTC")))
    p = Panel.from_arrow(t)
    np.testing.assert_array_equal(p.ts_us, [1000, 2000, 3000])


def test_duplicate_rows_are_named() -> None:
    t = pa.table({"ts": [1, 1], "symbol": ["A", "A"], "close": [1.0, 2.0]})
    with pytest.raises(PanelError, match=r"duplicate rows for ts=1 symbol='A' \(2 rows\)"):
        Panel.from_arrow(t)


def test_from_arrow_symbols_in_chunks_or_dictionaries_sort_like_numpy() -> None:
    """Symbols spread over chunks, or stored dictionary-encoded (as parquet reads them), give
    the sorted symbol columns ``np.unique`` gives; a null symbol is named by its row."""
    syms = ["ETH", "BTC", "SOL", "BTC", "ETH", "SOL"]
    close = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ts = [0, 0, 0, 1, 1, 1]
    want = np.array([[2.0, 1.0, 3.0], [4.0, 5.0, 6.0]])
    for col in (pa.chunked_array([syms[:2], syms[2:]]), pa.array(syms).dictionary_encode()):
        p = Panel.from_arrow(pa.table({"ts": ts, "symbol": col, "close": close}))
        assert p.symbols == ("BTC", "ETH", "SOL")
        np.testing.assert_array_equal(p["close"], want)
    t = pa.table({"ts": ts[:2], "symbol": ["BTC", None], "close": close[:2]})
    with pytest.raises(PanelError, match="column 'symbol' is null in row 1"):
        Panel.from_arrow(t)


def test_unsorted_or_duplicate_timestamps_rejected() -> None:
    with pytest.raises(PanelError, match="unsorted timestamp at row 2"):
        Panel(np.array([1, 3, 2]), ("A",), {"close": np.ones((3, 1))})
    with pytest.raises(PanelError, match="duplicate timestamp at row 1"):
        Panel(np.array([1, 1]), ("A",), {"close": np.ones((2, 1))})


def test_ragged_fields_and_unknown_names() -> None:
    with pytest.raises(ShapeError, match=r"field 'close' has shape \(2, 1\); expected"):
        Panel(np.array([1, 2, 3]), ("A",), {"close": np.ones((2, 1))})
    p = Panel.from_arrow(_long())
    with pytest.raises(PanelError, match="unknown field 'vwap'"):
        p["vwap"]
    with pytest.raises(PanelError, match=r"unknown symbol\(s\) \['C'\]"):
        p.select(["C"])
    with pytest.raises(PanelError, match=r"unknown field\(s\) \['nope'\]"):
        Panel.from_arrow(_long(), fields=["nope"])
    with pytest.raises(PanelError, match="no interval_us"):
        _ = p.periods_per_year


def test_slicing_selection_and_empty_panel() -> None:
    p = Panel.from_arrow(_long())
    s = p.slice_time(2, 4)
    np.testing.assert_array_equal(s.ts_us, [2, 3])
    q = p.select(["B"])
    np.testing.assert_array_equal(q["close"][:, 0], [11.0, np.nan, 30.0])
    empty = p.slice_time(10, 20)
    assert empty.T == 0
    assert empty["close"].shape == (0, 2)


def test_pandas_round_trip() -> None:
    p = Panel.from_arrow(_long(), fields=["close"])
    df = p.to_pandas("close")
    assert str(df.index.tz) == "UTC"
    back = Panel.from_pandas({"close": df})
    np.testing.assert_array_equal(back.ts_us, p.ts_us)
    np.testing.assert_array_equal(back["close"], p["close"])
    with pytest.raises(PanelError, match="DatetimeIndex"):
        Panel.from_pandas({"close": pd.DataFrame({"A": [1.0]})})


def test_book_levels_shapes_and_truncation() -> None:
    bid = np.ones((3, 2, 5))
    book = BookLevels(bid, bid, bid, bid)
    p = Panel(np.array([1, 2, 3]), ("A", "B"), {"close": np.ones((3, 2))}, book=book)
    assert p.book is not None
    assert p.book.levels == 5
    assert p.book.truncate(2).levels == 2
    assert p.select(["B"]).book.bid_px.shape == (3, 1, 5)  # type: ignore[union-attr]
    with pytest.raises(ShapeError, match=r"book\.ask_px has shape"):
        BookLevels(bid, bid, np.ones((3, 2, 4)), bid)
