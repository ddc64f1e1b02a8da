"""Trade and aggTrade validation: id continuity, order, duplicates, impossible values, outliers.

Rows are checked in table order per symbol (archives and REST pages come in id order); the
table itself is never reordered or modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from alphaforge.data import validate_nb
from alphaforge.data.validate_common import (
    I64,
    FlagIndex,
    assemble,
    concat_rows,
    f64,
    i64,
    require_columns,
    strided_zscore,
    symbol_groups,
    take_rows,
    ts_us,
)
from alphaforge.data.validate_report import CheckResult, QualityReport, SparseColumn, make_check


@dataclass(frozen=True, slots=True)
class TradeChecks:
    """Parameters of `validate_trades`.

    Attributes:
        outlier_window: trades in the reference window of the price robust z-score.
        outlier_stride: trades per reference refresh (None: window // 4).
        outlier_z: |z| of ``price`` against the reference median/MAD above which a trade is an
            outlier (a single bad print is flagged alone: the median ignores it).
        min_scale_rel: floor of 1.4826*MAD relative to the reference median (1e-4 = 1 bp).
    """

    outlier_window: int = 2048
    outlier_stride: int | None = None
    outlier_z: float = 25.0
    min_scale_rel: float = 1e-4

    def __post_init__(self) -> None:
        if self.outlier_window < 2:
            raise ValueError(f"outlier_window must be >= 2 trades, got {self.outlier_window}")
        if not self.outlier_z > 0:
            raise ValueError(f"outlier_z must be > 0, got {self.outlier_z}")

    @property
    def stride(self) -> int:
        """Reference refresh stride (window // 4, dividing the window, by default)."""
        if self.outlier_stride is not None:
            return self.outlier_stride
        s = max(1, self.outlier_window // 4)
        while self.outlier_window % s:
            s -= 1
        return s


def validate_trades(
    table: pa.Table,
    dataset: str = "agg_trades",
    *,
    params: TradeChecks | None = None,
    source: str = "table",
) -> QualityReport:
    """Run every trade check over an AGG_TRADES or TRADES table.

    Checks (name: severity): ``missing_ids``: error (count = missing trades, i.e. the sum of
    ``id - prev_id - 1`` over jumps; row = the row after each jump; details = the missing id
    ranges), ``first_last_gap``: error (aggTrades only: consecutive aggTrade ids whose
    ``first_trade_id != prev last_trade_id + 1``), ``first_gt_last``: error (aggTrades),
    ``duplicate_ids``: error (a later row repeating an id), ``id_step_back``: error (id below
    the previous row's, not a duplicate), ``non_monotonic_time``: error (ts below the previous
    row's), ``non_positive_price``/``non_positive_qty``: error, ``price_outlier``: warning.
    TRADES rows without integer ids (``trade_id`` null, Tardis UUIDs) skip the id checks.

    Args:
        table: trades of one or several symbols.
        dataset: ``"agg_trades"`` or ``"trades"``.
        params: thresholds (`TradeChecks`).
        source: what the table came from, for the report.

    Raises:
        SchemaError: a required column is missing or has the wrong type.
        ValueError: ``dataset`` is not a trade dataset.
    """
    if dataset not in ("agg_trades", "trades"):
        raise ValueError(f"validate_trades: dataset must be agg_trades or trades, got {dataset!r}")
    p = params or TradeChecks()
    agg = dataset == "agg_trades"
    id_col = "agg_trade_id" if agg else "trade_id"
    require_columns(table, dataset, (id_col, "ts", "price", "qty"))
    n = table.num_rows
    ids = i64(table, id_col, fill=np.iinfo(np.int64).min)
    has_ids = bool(n) and not (ids == np.iinfo(np.int64).min).all()
    fid = i64(table, "first_trade_id") if agg else ids
    lid = i64(table, "last_trade_id") if agg else ids
    t = ts_us(table, "ts")
    px, qty = f64(table, "price"), f64(table, "qty")
    flags = np.zeros(n, np.uint16)
    missing = np.zeros(n, np.int64)
    dup_parts: list[I64] = []
    z_all = SparseColumn(n)
    out_parts: list[I64] = []
    expected = 0
    for _sym, grp in symbol_groups(table):
        f, m = validate_nb.trade_row_flags(
            ids[grp], fid[grp], lid[grp], t[grp], px[grp], qty[grp], agg and has_ids
        )
        if isinstance(grp, slice) and grp == slice(0, n):
            flags, missing = f, m  # one symbol: no copy
        else:
            flags[grp] = f
            missing[grp] = m
        if has_ids and f.size:
            dup, exp_sym = _id_order(ids[grp], grp, FlagIndex(f), missing)
            dup_parts.append(dup)
            expected += exp_sym
        else:
            expected += f.size
        z = strided_zscore(
            px[grp], p.outlier_window, p.stride, p.outlier_window // 2, -p.min_scale_rel
        )[0]
        hit = np.flatnonzero(np.abs(z) > p.outlier_z)
        out_parts.append(take_rows(grp, hit))
        z_all.set(out_parts[-1], z[hit])
    cols = {"id": ids, "first_trade_id": fid, "last_trade_id": lid, "price": px, "qty": qty,
            "z": z_all, "missing": missing, "ts": t}  # fmt: skip
    checks = _checks(dataset, agg, has_ids, FlagIndex(flags), dup_parts, out_parts, cols)
    return assemble(dataset, source, n, checks, expected, int(missing.sum()))


def _id_order(gi: I64, grp: I64 | slice, fi: FlagIndex, missing: I64) -> tuple[I64, int]:
    """(duplicate rows, expected ids) of one symbol; re-charges missing ids when unordered."""
    if fi.rows_of(validate_nb.T_ID_STEP_BACK).size == 0:
        dup = fi.rows_of(validate_nb.T_ID_DUPLICATE)
        return take_rows(grp, dup), int(gi.max() - gi.min() + 1)
    order = np.argsort(gi, kind="stable")
    srt = gi[order]
    dup = take_rows(grp, order[1:][srt[1:] == srt[:-1]])
    missing[grp] = 0
    uniq = np.unique(gi)
    for j in np.flatnonzero(np.diff(uniq) > 1):  # charge each jump to the row of the next id
        at = take_rows(grp, np.flatnonzero(gi == uniq[j + 1])[:1])[0]
        missing[at] = uniq[j + 1] - uniq[j] - 1
    return dup, int(uniq[-1] - uniq[0] + 1)


_FLAG_CHECKS = (
    (validate_nb.T_TS_STEP_BACK, "non_monotonic_time", "ts earlier than the previous row of the "
     "symbol", ("id",), False),
    (validate_nb.T_NONPOS_PRICE, "non_positive_price", "price <= 0 or NaN", ("id", "price"), False),
    (validate_nb.T_NONPOS_QTY, "non_positive_qty", "qty <= 0 or NaN", ("id", "qty"), False),
    (validate_nb.T_FIRST_LAST_GAP, "first_last_gap", "consecutive aggTrades with first_trade_id "
     "!= previous last_trade_id + 1", ("id", "first_trade_id", "last_trade_id"), True),
    (validate_nb.T_FIRST_GT_LAST, "first_gt_last", "first_trade_id > last_trade_id",
     ("id", "first_trade_id", "last_trade_id"), True),
)  # fmt: skip
"""(bit, name, description, columns shown, aggTrades-with-ids only)."""


def _checks(
    dataset: str, agg: bool, has_ids: bool, fi: FlagIndex, dup_parts: list[I64],
    out_parts: list[I64], cols: dict[str, Any],
) -> list[CheckResult]:  # fmt: skip
    t, ids, missing = cols["ts"], cols["id"], cols["missing"]
    out: list[CheckResult] = []
    if has_ids:
        gap_rows = np.flatnonzero(missing > 0).astype(np.int64)
        details = [{"row": int(i), "missing_from_id": int(ids[i] - missing[i]),
                    "missing_to_id": int(ids[i] - 1), "missing": int(missing[i])}
                   for i in gap_rows[:1000]]  # fmt: skip
        dups = concat_rows(dup_parts)
        back = fi.rows_of(validate_nb.T_ID_STEP_BACK)
        # fmt: off
        out += [
            make_check("missing_ids", dataset, "error",
                       "ids missing between consecutive rows (count = missing trades)",
                       gap_rows, t, {"id": ids, "missing": missing},
                       count=int(missing.sum()), details=details),
            make_check("duplicate_ids", dataset, "error", "row repeats an earlier row's id",
                       dups, t, {"id": ids}),
            make_check("id_step_back", dataset, "error",
                       "id lower than the previous row's (not a duplicate)",
                       back[~np.isin(back, dups)], t, {"id": ids}),
        ]
        # fmt: on
    for bit, name, desc, shown, agg_only in _FLAG_CHECKS:
        if agg_only and not (agg and has_ids):
            continue
        vals = {k: cols[k] for k in shown}
        out.append(make_check(name, dataset, "error", desc, fi.rows_of(bit), t, vals))
    out.append(
        make_check("price_outlier", dataset, "warning",
                   "price far from the median of the preceding trades (robust z)",
                   concat_rows(out_parts), t, {"id": ids, "price": cols["price"],
                                               "z": cols["z"]})
    )  # fmt: skip
    return out
