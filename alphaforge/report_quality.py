"""The data-quality section of a report: what the data behind *this* run looks like.

``panel_quality`` describes the panel the backtest ran on (bars, symbols, missing bars inside a
symbol's listing, bars flagged partial by resampling, rows outside the universe, book coverage);
``store_validation`` adds the store's own validation status of every partition the panel read
(``alphaforge validate --store`` sets it; "unvalidated" says it was never checked).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from alphaforge.engine.formatting import fmt
from alphaforge.engine.panel import Panel
from alphaforge.engine.report_metrics import span_text, span_us


def panel_quality(panel: Panel) -> dict[str, Any]:
    """Facts about the panel a run used (counts over (bar, symbol) cells)."""
    close = panel["close"]
    listed = panel["tradable"] > 0 if "tradable" in panel else np.ones(close.shape, dtype=bool)
    missing = int(np.sum(listed & ~np.isfinite(close)))
    out: dict[str, Any] = {
        "bars": panel.T, "symbols": panel.N,
        "span": span_text(span_us(panel.ts_us, panel.interval_us)),
        "cells inside listings": int(listed.sum()),
        "missing bars inside listings": missing,
        "share missing": missing / max(int(listed.sum()), 1),
        "cells outside the universe (not listed)": int((~listed).sum()),
    }  # fmt: skip
    if "partial" in panel:
        out["bars with a missing minute (partial, not traded)"] = int(np.sum(panel["partial"] > 0))
    if panel.book is not None:
        have = np.isfinite(panel.book.bid_px[:, :, 0]) & listed
        out["bars with a known order book"] = int(have.sum())
    out["synthetic"] = bool(panel.meta.get("synthetic"))
    return out


def store_validation(store: str | Store, panel: Panel, dataset: str,
                     market: str = "usdm") -> list[tuple[str, str, str]]:  # fmt: skip
    """(symbol, month, status) of every partition of ``dataset`` the panel covers."""
    st = open_store(store)
    months = set(np.unique((panel.ts_us // 1000).astype("datetime64[ms]")
                           .astype("datetime64[M]").astype(str)).tolist())  # fmt: skip
    rows = []
    for p in st.partitions(dataset, market=market):
        if p.symbol in panel.symbols and p.month in months:
            rows.append((p.symbol, p.month, p.validation_status))
    return sorted(rows)


def quality_html(facts: dict[str, Any], partitions: list[tuple[str, str, str]] | None) -> str:
    """The section as an HTML fragment (a facts table, then the partitions' status)."""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(fmt(v))}</td></tr>"
                   for k, v in facts.items())  # fmt: skip
    out = f"<table><tr><th>data used</th><th>value</th></tr>{rows}</table>"
    if partitions is not None:
        if not partitions:
            return out + "<p>No stored partition covers this run.</p>"
        counts: dict[str, int] = {}
        for _s, _m, status in partitions:
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        body = "".join(f"<tr><td>{html.escape(s)}</td><td>{html.escape(m)}</td>"
                       f"<td>{html.escape(v)}</td></tr>" for s, m, v in partitions)  # fmt: skip
        hint = " (run <code>alphaforge validate --store</code>)" if "unvalidated" in counts else ""
        head = "<tr><th>symbol</th><th>month</th><th>validation</th></tr>"
        out += (f"<p>Stored partitions read: {html.escape(summary)}{hint}</p>"
                f"<table>{head}{body}</table>")  # fmt: skip
    return out
