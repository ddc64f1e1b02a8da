"""Binance USD-M ``metrics`` archive files: open interest and long/short ratios, 5-minutely.

Published daily as ``data/futures/um/daily/metrics/<SYMBOL>/<SYMBOL>-metrics-YYYY-MM-DD.zip``
(from 2021-12), one CSV with a header::

    create_time,symbol,sum_open_interest,sum_open_interest_value,
    count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,
    count_long_short_ratio,sum_taker_long_short_vol_ratio

``create_time`` is a UTC ``YYYY-MM-DD HH:MM:SS`` string (not an epoch like the other archive
files); a value may be empty. Rows map to ``data.schemas.METRICS`` (``ts`` = create_time, the
time the statistic was published: a factor may use it from that time on). Rows repeating a
timestamp are de-duplicated by the store (natural key symbol, ts).
"""

from __future__ import annotations

from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from alphaforge.data import schemas
from alphaforge.data.errors import SchemaError

COLUMNS: tuple[tuple[str, str], ...] = (
    ("create_time", "ts"),
    ("symbol", "symbol"),
    ("sum_open_interest", "open_interest"),
    ("sum_open_interest_value", "open_interest_value"),
    ("count_toptrader_long_short_ratio", "top_trader_account_ratio"),
    ("sum_toptrader_long_short_ratio", "top_trader_position_ratio"),
    ("count_long_short_ratio", "account_ratio"),
    ("sum_taker_long_short_vol_ratio", "taker_vol_ratio"),
)
"""(archive column, METRICS column), in file order."""


def parse_metrics(stream: IO[bytes], name: str, symbol: str) -> pa.Table:
    """One metrics CSV (decompressed text) -> a METRICS table.

    Args:
        stream: the CSV text as a binary stream (header included).
        name: how messages name the file. symbol: the symbol the file name promises.

    Raises:
        SchemaError: a header without create_time / sum_open_interest, an unparsable value
            (file, column and value named), or rows of another symbol than the name says.
    """
    try:
        raw = pacsv.read_csv(
            stream,
            convert_options=pacsv.ConvertOptions(
                column_types={
                    "create_time": pa.timestamp("us"),  # naive UTC text, made UTC below
                    "symbol": pa.string(),
                    **{a: pa.float64() for a, _ in COLUMNS[2:]},
                },
                timestamp_parsers=["%Y-%m-%d %H:%M:%S"],
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(f"{name}: cannot parse as a Binance metrics CSV: {exc}") from exc
    missing = [a for a in ("create_time", "sum_open_interest") if a not in raw.column_names]
    if missing:
        raise SchemaError(f"{name}: no column(s) {missing}; a Binance metrics file starts with "
                          f"'{','.join(a for a, _ in COLUMNS)}'")  # fmt: skip
    n = raw.num_rows
    if "symbol" in raw.column_names and n:
        other = pc.unique(pc.filter(raw["symbol"], pc.not_equal(raw["symbol"], symbol)))
        if len(other):
            raise SchemaError(f"{name}: rows of {other.to_pylist()[:3]} in a file named for "
                              f"{symbol}")  # fmt: skip
    arrays = []
    for field in schemas.METRICS:
        src = next((a for a, out in COLUMNS if out == field.name), None)
        if field.name == "symbol":
            arrays.append(pa.repeat(pa.scalar(symbol, pa.string()), n))
        elif src in raw.column_names:  # create_time: naive values are UTC, cast keeps them
            arrays.append(raw[src].cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=schemas.METRICS)
