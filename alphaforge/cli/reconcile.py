"""``alphaforge validate --reconcile MODE``: the reconciliation checks of
`data.validate_reconcile` over the store or two files.

Modes (one `QualityReport` per symbol, or one for ``files``):

- ``klines-vs-aggtrades``: ``klines_<interval>`` vs klines rebuilt from ``agg_trades``, both read
  from the store for ``--market`` (`reconcile_klines_agg_trades`).
- ``spot-vs-futures``: ``klines_<interval>`` of ``spot`` vs ``--market`` (usdm by default), the
  robust z of the basis (`basis_outliers`).
- ``files``: two files of one dataset and symbol, e.g. an archive CSV vs a REST export
  (`reconcile_tables` over their overlapping times; rows index the first file, ``only_in_b``
  the second).

A dataset absent from the store, or two files of different datasets/symbols, is a `DataError`
naming what is missing (the command exits 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data.errors import SchemaError, StoreError
from alphaforge.data.schemas import interval_us, time_column
from alphaforge.data.store_open import open_store
from alphaforge.data.validate import read_for_validation
from alphaforge.data.validate_common import ts_us
from alphaforge.data.validate_reconcile import (
    basis_outliers,
    reconcile_klines_agg_trades,
    reconcile_tables,
)
from alphaforge.data.validate_report import QualityReport, iso_us

MODES = ("klines-vs-aggtrades", "spot-vs-futures", "files")
Result = tuple[pa.Table, QualityReport, str]


def _interval_us(interval: str) -> int:
    try:
        return interval_us(interval)
    except KeyError as exc:
        raise SchemaError(f"--interval: {exc.args[0]}") from None


def _read_symbol(store: str, dataset: str, exchange: str, market: str, symbol: str) -> pa.Table:
    """One symbol's rows of ``dataset``; a `StoreError` naming the store path when none."""
    table = open_store(store).read(dataset, exchange=exchange, market=market, symbols=[symbol])
    if table.num_rows == 0:
        raise StoreError(
            f"store {store}: no {dataset} rows for {symbol} "
            f"(exchange={exchange}, market={market}); the reconciliation needs both datasets"
        )
    return table


def _need_symbols(symbols: list[str] | None, mode: str) -> list[str]:
    if not symbols:
        raise SchemaError(f"--reconcile {mode} needs --symbols (comma-separated)")
    return symbols


def klines_vs_agg_trades(
    store: str, exchange: str, market: str, symbols: list[str] | None, interval: str
) -> list[Result]:
    """Per symbol: the store's klines vs klines rebuilt from its aggTrades."""
    iv = _interval_us(interval)
    out: list[Result] = []
    for sym in _need_symbols(symbols, "klines-vs-aggtrades"):
        kl = _read_symbol(store, f"klines_{interval}", exchange, market, sym)
        agg = _read_symbol(store, "agg_trades", exchange, market, sym)
        src = f"store:{store}/{exchange}/{market}: klines_{interval}~agg_trades {sym}"
        out.append((kl, reconcile_klines_agg_trades(kl, agg, iv, source=src), "klines"))
    return out


def spot_vs_futures(
    store: str,
    exchange: str,
    market: str,
    symbols: list[str] | None,
    interval: str,
    window: int,
) -> list[Result]:
    """Per symbol: basis outliers of ``market`` klines against ``spot`` klines."""
    _interval_us(interval)
    if market == "spot":
        raise SchemaError("--reconcile spot-vs-futures: --market must be a futures market (usdm)")
    if window < 2:
        raise SchemaError(f"--basis-window: expected >= 2 bars, got {window}")
    out: list[Result] = []
    for sym in _need_symbols(symbols, "spot-vs-futures"):
        spot = _read_symbol(store, f"klines_{interval}", exchange, "spot", sym)
        fut = _read_symbol(store, f"klines_{interval}", exchange, market, sym)
        src = f"store:{store}/{exchange}: klines_{interval} spot~{market} {sym}"
        out.append((fut, basis_outliers(spot, fut, window=window, source=src), "klines"))
    return out


def _symbols_of(table: pa.Table) -> set[str]:
    if "symbol" not in table.column_names:
        return set()
    return {str(s) for s in pc.unique(table.column("symbol")).to_pylist() if s is not None}


def _span(t: npt.NDArray[np.int64]) -> str:
    return f"{iso_us(int(t.min()))}..{iso_us(int(t.max()))}" if t.size else "no rows"


def files(paths: list[Path], dataset: str | None, symbols: list[str] | None) -> list[Result]:
    """Two files of one dataset and one symbol compared over their overlapping times."""
    if len(paths) != 2:
        raise SchemaError(f"--reconcile files takes exactly 2 files (A B), got {len(paths)}")
    sym = symbols[0] if symbols else None
    (ta, da, _), (tb, db, _) = (read_for_validation(p, dataset, sym) for p in paths)
    if da != db:
        raise SchemaError(f"{paths[0]} holds {da} but {paths[1]} holds {db}; expected one dataset")
    sa, sb = _symbols_of(ta), _symbols_of(tb)
    if len(sa) > 1 or len(sb) > 1 or sa != sb:
        raise SchemaError(
            f"{paths[0]} has symbols {sorted(sa)}, {paths[1]} has {sorted(sb)}; "
            "expected the same single symbol in both (pass --symbols for archive files "
            "named without one)"
        )
    tcol = time_column(da)
    a_t, b_t = ts_us(ta, tcol), ts_us(tb, tcol)
    if a_t.size == 0 or b_t.size == 0 or max(a_t.min(), b_t.min()) > min(a_t.max(), b_t.max()):
        raise SchemaError(
            f"{paths[0]} and {paths[1]}: no overlapping {tcol} range "
            f"({_span(a_t)} vs {_span(b_t)}); nothing to reconcile"
        )
    src = f"{paths[0]} ~ {paths[1]}"
    return [(ta, reconcile_tables(ta, tb, da, source=src), da)]


def reconcile_results(
    mode: str,
    paths: list[Path] | None,
    store: str | None,
    *,
    dataset: str | None,
    exchange: str,
    market: str,
    symbols: list[str] | None,
    interval: str | None,
    window: int,
) -> list[Result]:
    """Dispatch ``--reconcile MODE``; (table, report, dataset) per report.

    Raises:
        SchemaError: unknown mode, wrong inputs for the mode (the message says what is needed).
        StoreError: a dataset absent from the store.
    """
    if mode not in MODES:
        raise SchemaError(f"--reconcile: unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "files":
        if store is not None and not paths:
            raise SchemaError("--reconcile files compares 2 files A B, not the store")
        return files(list(paths or []), dataset, symbols)
    if paths:
        raise SchemaError(f"--reconcile {mode} reads the store (--store DIR), not files")
    if store is None:
        raise SchemaError(f"--reconcile {mode} needs --store DIR")
    iv = interval or "1m"
    if mode == "klines-vs-aggtrades":
        return klines_vs_agg_trades(store, exchange, market, symbols, iv)
    return spot_vs_futures(store, exchange, market, symbols, iv, window)
