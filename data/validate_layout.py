"""Per-row provenance checks: files that mix timestamp units or layouts (CryptoDataDownload).

`data.cdd.read_cdd_csv` keeps, for every row, its ``layout``, ``ts_unit`` and ``source_row``;
these checks name such files and the rows involved instead of merging them silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data.validate_common import I64, f64, i64
from alphaforge.data.validate_report import CheckResult, make_check


def layout_checks(table: pa.Table, t: I64, dataset: str) -> list[CheckResult]:
    """Per-row provenance checks (``ts_unit``/``layout`` columns, as `data.cdd` writes them).

    Returns no checks when the table has no provenance columns. Otherwise: rows whose
    timestamp unit / layout differs from the file's most common one (error), and rows of a
    minority layout whose (symbol, open_time) also appears in another layout (error).
    """
    out: list[CheckResult] = []
    src = i64(table, "source_row") if "source_row" in table.column_names else None
    vals = {"source_row": src} if src is not None else {}
    for col, name in (("ts_unit", "mixed_timestamp_units"), ("layout", "mixed_layouts")):
        if col not in table.column_names:
            continue
        labels = np.asarray(pc.fill_null(table.column(col), "?").to_pylist(), dtype=object)
        kinds, counts = np.unique(labels.astype(str), return_counts=True)
        major = kinds[np.argmax(counts)]
        idx = np.flatnonzero(labels.astype(str) != major).astype(np.int64)
        det = [{col: str(k), "rows": int(n)} for k, n in zip(kinds, counts, strict=True)]
        out.append(
            make_check(
                name,
                dataset,
                "error",
                f"{col} differs from the file's most common ({major}); "
                "such files are never merged silently",
                idx,
                t,
                vals | {col: labels},
                details=det,
            )
        )
        if col == "layout":
            out.append(_overlap_check(table, t, labels.astype(str), str(major), dataset, vals))
    return out


def _overlap_check(
    table: pa.Table, t: I64, layout: Any, major: str, dataset: str, vals: dict[str, Any]
) -> CheckResult:
    sym = np.asarray(pc.fill_null(table.column("symbol"), "").to_pylist(), dtype=object)
    key_major = set(zip(sym[layout == major], t[layout == major].tolist(), strict=True))
    minority = np.flatnonzero(layout != major)
    idx = np.array([i for i in minority if (sym[i], int(t[i])) in key_major], dtype=np.int64)
    return make_check(
        "overlapping_layouts",
        dataset,
        "error",
        "rows of a minority layout whose (symbol, open_time) the main layout "
        "also has (two versions of the same bar)",
        idx,
        t,
        vals | {"layout": layout, "close": f64(table, "close")},
    )
