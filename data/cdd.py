"""Reader of CryptoDataDownload (CDD) CSV exports of Binance bars, keeping per-row provenance.

CDD files (``Binance_BTCUSDT_1h.csv``, ``BTCUSDT_Binance_futures_data_hour.csv``) are not the
Binance archive layout:

- an optional preamble line (``https://www.CryptoDataDownload.com``) before the header;
- header ``unix,date,symbol,open,high,low,close,Volume <base>,Volume <quote>,tradecount``;
- rows newest first;
- two layouts that can coexist (and overlap) in one file: ``legacy`` rows with ``unix`` in
  seconds written as ``1502942400.0``, ``date`` like ``2018-10-08 11-AM``, prices rounded to
  2 decimals and ``tradecount`` = ``NULL``; ``current`` rows with ``unix`` in milliseconds,
  ``date`` like ``2021-06-10 00:00:00`` and trade counts.

`read_cdd_csv` never merges such rows silently: every row keeps its ``layout``, ``ts_unit``
(``s``/``ms``/``us``) and ``source_row`` (1-based line number in the file), so the validator
(`data.validate_klines.layout_checks`) names files that mix units or layouts and the rows that
overlap. The only reordering is documented: rows come back oldest first (stable sort on the
open time), and ``source_row`` gives each row's place in the file.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from alphaforge.data.decompress import gunzip
from alphaforge.data.errors import SchemaError
from alphaforge.data.schemas import KLINES

CDD_COLUMNS: Final = ("unix", "date", "symbol", "open", "high", "low", "close")
PROVENANCE: Final = pa.schema(
    [
        pa.field("layout", pa.string()),
        pa.field("ts_unit", pa.string()),
        pa.field("source_row", pa.int64()),
    ]
)
"""Extra columns `read_cdd_csv` appends after the KLINES columns."""

_LEGACY_DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d-(AM|PM)$")


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip(raw, str(path))
    return raw.decode("utf-8-sig")


def _unit_of(token: str) -> str:
    """Timestamp unit of one ``unix`` token: 's' (10 digits or a decimal point), 'ms', 'us'."""
    digits = token.split(".")[0].lstrip("-")
    if "." in token or len(digits) <= 10:
        return "s"
    return "ms" if len(digits) <= 13 else "us"


def read_cdd_csv(path: str | Path) -> pa.Table:
    """Read one CDD CSV (plain or gzip) into KLINES + provenance columns, oldest row first.

    Args:
        path: the CSV file.

    Returns:
        A table with the `data.schemas.KLINES` columns (``close_time`` and taker-buy columns
        are null: CDD does not publish them; ``trades`` is null on legacy rows) followed by
        `PROVENANCE` (``layout``, ``ts_unit``, ``source_row``).

    Raises:
        SchemaError: no CDD header, a missing column, or an unparsable token (the message
            names the file, line, column and token).
    """
    path = Path(path)
    lines = _text(path).splitlines()
    head = next((i for i, ln in enumerate(lines[:5]) if ln.lower().startswith("unix,")), None)
    if head is None:
        raise SchemaError(f"{path}: no CryptoDataDownload header 'unix,date,symbol,...' found")
    header = lines[head].split(",")
    missing = [c for c in CDD_COLUMNS if c not in header]
    vol = [c for c in header if c.lower().startswith("volume ")]
    if missing or len(vol) < 2:
        raise SchemaError(f"{path}: header {header} lacks {missing or 'two Volume columns'}")
    body = "\n".join(lines[head:]).encode()
    opts = pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
    raw = pcsv.read_csv(io.BytesIO(body), convert_options=opts)
    unix = raw.column("unix").to_pylist()
    units = np.array([_unit_of(u or "") for u in unix], dtype=object)
    open_us = np.empty(len(unix), dtype=np.int64)
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1}
    for i, (tok, unit) in enumerate(zip(unix, units, strict=True)):
        try:
            open_us[i] = round(float(tok) * scale[unit]) if unit == "s" else int(tok) * scale[unit]
        except (TypeError, ValueError):
            raise SchemaError(
                f"{path}: line {head + 2 + i}: unix token {tok!r} is not a timestamp"
            ) from None
    dates = raw.column("date").to_pylist()
    layout = np.array(
        ["legacy" if _LEGACY_DATE.match(d or "") else "current" for d in dates], dtype=object
    )
    base_vol = next((c for c in vol if c.split(" ", 1)[1] != "USDT"), vol[0])
    quote_vol = next(c for c in vol if c != base_vol)
    trades = (
        pc.if_else(
            pc.equal(raw.column("tradecount"), "NULL"),
            pa.scalar(None, pa.string()),
            raw.column("tradecount"),
        )
        if "tradecount" in header
        else pa.nulls(raw.num_rows, pa.string())
    )
    n = raw.num_rows
    null_f = pa.nulls(n, pa.float64())

    def number(name: str, col: Any, kind: pa.DataType | None = None) -> Any:
        """The column as numbers; an unparsable token names its file, line and column."""
        kind = kind or pa.float64()
        try:
            return pc.cast(col, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            values = col.to_pylist()
            for i, tok in enumerate(values):
                try:
                    pc.cast(pa.array([tok], pa.string()), kind)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise SchemaError(f"{path}: line {head + 2 + i}: column {name!r}: "
                                      f"{tok!r} is not a number") from None  # fmt: skip
            raise

    cols = {
        "symbol": pc.replace_substring(raw.column("symbol"), "/", ""),
        "open_time": pa.array(open_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        **{k: number(k, raw.column(k)) for k in ("open", "high", "low", "close")},
        "volume": number(base_vol, raw.column(base_vol)),
        "close_time": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "quote_volume": number(quote_vol, raw.column(quote_vol)),
        "trades": number("tradecount", trades, pa.int64()),
        "taker_buy_volume": null_f,
        "taker_buy_quote_volume": null_f,
        "layout": pa.array(layout.tolist(), pa.string()),
        "ts_unit": pa.array(units.tolist(), pa.string()),
        "source_row": pa.array(np.arange(head + 2, head + 2 + n, dtype=np.int64)),
    }
    table = pa.table(cols, schema=pa.schema(list(KLINES) + list(PROVENANCE)))
    order = np.argsort(open_us, kind="stable")
    return table.take(pa.array(order))


def interval_from_name(path: str | Path) -> str | None:
    """Bar interval named in a CDD file name ('_1h', '_hour', '_minute', '_d'), else None."""
    stem = Path(path).name.lower()
    for pat, iv in (
        (r"_(1h|hour)\b", "1h"),
        (r"_(1m|minute)\b", "1m"),
        (r"_(d|1d|day)\b", "1d"),
    ):
        if re.search(pat, stem.replace(".csv", "").replace(".gz", "")):
            return iv
    return None


def is_cdd_csv(path: str | Path) -> bool:
    """True when the file's first lines hold a CDD header (``unix,date,symbol,...``)."""
    try:
        head = _text(Path(path))[:400].lower().splitlines()
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return False
    return any(ln.startswith("unix,date,symbol") for ln in head[:3])
