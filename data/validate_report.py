"""Validation results: one `CheckResult` per check, gathered in a `QualityReport`.

A check names what it looked for, its severity (``error`` > ``warning`` > ``info``), how many
offending rows (or missing items) it found, and the first few offending rows with their
timestamps and values, so a user sees exactly which rows are wrong and why. Nothing here
repairs or drops data; see `data.validate_klines.repair_klines` for the explicit, opt-in repair.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "error": 2}
MAX_EXAMPLES: Final = 10
"""At most this many offending rows are kept per check (``CheckResult.rows``)."""

_EMPTY_IDX: Final = np.zeros(0, dtype=np.int64)


def iso_us(ts_us: int) -> str:
    """ISO-8601 UTC text of an epoch-microsecond timestamp (``2024-01-02T03:04:05.000000Z``)."""
    sec, us = divmod(int(ts_us), 1_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{us:06d}Z"


def _plain(value: Any) -> Any:
    """A JSON-ready Python scalar for a numpy/Python value (NaN -> None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else str(value)
    return value


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check over one dataset.

    Attributes:
        name: check name, e.g. ``"ohlc_inconsistent"`` (stable; used in JSON and tests).
        dataset: dataset validated (``"klines"``, ``"agg_trades"``, ...).
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        count: number of offending rows, or of missing items for gap checks (missing bars,
            missing trade ids), or of runs/ranges where ``description`` says so.
        description: one line saying what the check tests and what ``count`` counts.
        rows: the first offending rows (at most `MAX_EXAMPLES`), each a dict with ``row``
            (index in the validated table), ``ts`` (ISO UTC) and the values involved.
        row_index: (count_rows,) int64 indices of ALL offending rows in the validated table
            (sorted); for gap checks the row just after each gap. Not serialised.
        details: the complete list behind a count where one is useful and small, e.g. every
            missing range ``{symbol, missing_from, missing_to, missing_bars, scope}``.
    """

    name: str
    dataset: str
    severity: Severity
    count: int
    description: str
    rows: tuple[dict[str, Any], ...] = ()
    row_index: npt.NDArray[np.int64] = field(
        default_factory=lambda: _EMPTY_IDX, compare=False, repr=False
    )
    details: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(
                f"check {self.name}: severity {self.severity!r} not in error|warning|info"
            )
        if self.count < 0:
            raise ValueError(f"check {self.name}: count must be >= 0, got {self.count}")

    @property
    def failed(self) -> bool:
        """True when the check found anything."""
        return self.count > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the result (without ``row_index``)."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "severity": self.severity,
            "count": self.count,
            "description": self.description,
            "rows": [{k: _plain(v) for k, v in r.items()} for r in self.rows],
            "details": [{k: _plain(v) for k, v in d.items()} for d in self.details],
        }


class SparseColumn:
    """Values known only at some rows (offending rows), indexable like a column of n rows.

    Lets checks show derived values (returns, z-scores) in their examples without
    materialising a full column; missing rows read as NaN.
    """

    __slots__ = ("_n", "_values")

    def __init__(self, n: int) -> None:
        self._n = n
        self._values: dict[int, Any] = {}

    def set(self, rows: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> None:
        """Record ``values`` at ``rows`` (aligned arrays)."""
        self._values.update(zip(rows.tolist(), values.tolist(), strict=True))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, row: int) -> Any:
        return self._values.get(int(row), float("nan"))


def make_check(
    name: str,
    dataset: str,
    severity: Severity,
    description: str,
    idx: npt.NDArray[np.int64],
    ts_us: npt.NDArray[np.int64] | None,
    values: dict[str, Any] | None = None,
    count: int | None = None,
    extra: dict[int, dict[str, Any]] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> CheckResult:
    """Build a `CheckResult` from the offending row indices.

    Args:
        idx: (k,) int64 indices of offending rows in the validated table.
        ts_us: (n,) int64 epoch-µs event times of the table (for the ``ts`` of examples).
        values: column name -> (n,) array (or `SparseColumn`); each example shows these
            columns at its row.
        count: overrides ``len(idx)`` (e.g. number of missing bars rather than gap rows).
        extra: row index -> extra fields shown with that example (e.g. its gap range).
        details: the full list stored in ``CheckResult.details``.
    """
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    rows: list[dict[str, Any]] = []
    for i in idx[:MAX_EXAMPLES]:
        row: dict[str, Any] = {"row": int(i)}
        if ts_us is not None and 0 <= i < len(ts_us):
            row["ts"] = iso_us(int(ts_us[i]))
        for col, arr in (values or {}).items():
            if 0 <= i < len(arr):
                row[col] = _plain(arr[i])
        if extra is not None and int(i) in extra:
            row.update(extra[int(i)])
        rows.append(row)
    n = len(idx) if count is None else int(count)
    return CheckResult(
        name, dataset, severity, n, description, tuple(rows), idx, tuple(details or ())
    )


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Every check run over one dataset (one file, table or store partition).

    Completeness score (in [0, 1])::

        completeness = clean / expected
        expected = rows the data should hold: klines, per symbol, the bars on the interval grid
                   from its first to its last open time; agg_trades/trades with integer ids,
                   per symbol, last_id - first_id + 1; every other dataset, its row count
        clean    = expected - missing - flagged
        missing  = expected items absent (missing bars, missing trade ids)
        flagged  = distinct present rows hit by at least one ``error``-severity check

    1.0 means nothing is missing and no row has an error; warnings and infos do not lower it.
    An empty table has completeness 1.0 with expected 0.

    Attributes:
        dataset: dataset name.
        source: what was validated (file path, ``store:<partition>``, ``table``).
        n_rows: rows in the validated table.
        checks: every check run, including those that found nothing (count 0).
        expected: see above.
        missing: see above.
        flagged: see above.
    """

    dataset: str
    source: str
    n_rows: int
    checks: tuple[CheckResult, ...]
    expected: int
    missing: int
    flagged: int

    @property
    def completeness(self) -> float:
        """``(expected - missing - flagged) / expected``, clipped to [0, 1]; 1.0 when empty."""
        if self.expected <= 0:
            return 1.0
        return float(
            min(1.0, max(0.0, (self.expected - self.missing - self.flagged) / self.expected))
        )

    @property
    def worst_severity(self) -> Severity | None:
        """Highest severity among checks that found something, or None when all are clean."""
        found = [c.severity for c in self.checks if c.count > 0]
        if not found:
            return None
        return max(found, key=lambda s: SEVERITY_RANK[s])

    def failed(self, fail_on: Severity = "error") -> bool:
        """True when a check at or above ``fail_on`` found something."""
        worst = self.worst_severity
        return worst is not None and SEVERITY_RANK[worst] >= SEVERITY_RANK[fail_on]

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``.

        Raises:
            KeyError: no such check ran; the message lists those that did.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r} in report; checks: {[c.name for c in self.checks]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the report."""
        return {
            "dataset": self.dataset,
            "source": self.source,
            "n_rows": self.n_rows,
            "expected": self.expected,
            "missing": self.missing,
            "flagged": self.flagged,
            "completeness": self.completeness,
            "worst_severity": self.worst_severity,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_rich(self, show_clean: bool = False) -> Any:
        """A `rich.table.Table` with one line per check that found something.

        Args:
            show_clean: also list checks that found nothing.
        """
        from rich.table import Table

        title = (
            f"{self.dataset} · {self.source} · {self.n_rows:,} rows · "
            f"completeness {self.completeness:.4%}"
        )
        table = Table(title=title)
        for col in ("check", "severity", "count", "first offending rows"):
            table.add_column(col)
        style = {"error": "bold red", "warning": "yellow", "info": "cyan"}
        for c in self.checks:
            if c.count == 0 and not show_clean:
                continue
            sev = f"[{style[c.severity]}]{c.severity}[/]" if c.count else "ok"
            table.add_row(c.name, sev, f"{c.count:,}", _examples_text(c.rows, 2))
        return table

    def to_html(self) -> str:
        """An HTML ``<section>`` for the HTML report (self-contained, escaped)."""
        esc = html.escape
        head = (
            f'<section class="quality-report" data-dataset="{esc(self.dataset)}">\n'
            f"<h2>Data quality: {esc(self.dataset)} ({esc(self.source)})</h2>\n"
            f"<p>{self.n_rows:,} rows; completeness {self.completeness:.4%} "
            f"(expected {self.expected:,}, missing {self.missing:,}, flagged {self.flagged:,}); "
            f"worst severity: {esc(str(self.worst_severity or 'none'))}</p>\n"
        )
        body = [
            "<table>",
            "<tr><th>check</th><th>severity</th><th>count</th>"
            "<th>description</th><th>first offending rows</th></tr>",
        ]
        for c in self.checks:
            cls = c.severity if c.count else "ok"
            body.append(
                f'<tr class="{cls}"><td>{esc(c.name)}</td><td>{esc(c.severity)}</td>'
                f"<td>{c.count:,}</td><td>{esc(c.description)}</td>"
                f"<td><code>{esc(_examples_text(c.rows, MAX_EXAMPLES))}</code></td></tr>"
            )
        body.append("</table>\n</section>\n")
        return head + "\n".join(body)


def _examples_text(rows: tuple[dict[str, Any], ...], k: int) -> str:
    parts = []
    for r in rows[:k]:
        parts.append(", ".join(f"{key}={_plain(v)}" for key, v in r.items()))
    more = "" if len(rows) <= k else f" (+{len(rows) - k} more shown in JSON)"
    return "; ".join(parts) + more
