"""The research registry: every trial run on a data set, and every look at its holdout.

It lives in the same SQLite file as the proposal ledger (``.alphaforge/ledger.sqlite`` by
default, ``ALPHAFORGE_LEDGER`` or ``--ledger`` to move it) and answers two questions honestly,
whatever the study name, the command or the spelling of a factor:

**How many trials stand behind this result?** Every ``score``, ``backtest``, sweep trial,
walk-forward candidate and scored proposal is recorded with its data set (``data_key``: the
symbols and bar interval) and time range. The trial count of a new result is the number of
*distinct* trial keys (canonical expression plus the settings that make a variant) recorded on
the same data set over an overlapping time range, across every study; the spread of their
per-bar Sharpe ratios is the variance the Deflated Sharpe Ratio needs.

**Was this signal already evaluated on this holdout?** A look at a holdout is recorded with
the holdout's time range and a signature of the factor: its cross-sectional ranks on a fixed
sample of train rows (rows whose bar index is a multiple of a power-of-two stride, at most
``SIG_ROWS``, so two splits of the same data share rows). A later look whose signal has a mean
rank correlation of at least ``SAME_SIGNAL`` in absolute value (sign-insensitive: ``-f`` is
``f``) with an earlier look at an overlapping holdout is the same signal: ``2 * f``, ``f + 0``,
``ts_delay(f, 0)`` or ``f`` under a new study name are all recognised, by values, not text.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.panel import Panel
from alphaforge.factors.errors import FactorError

F64 = npt.NDArray[np.float64]

DEFAULT_LEDGER = ".alphaforge/ledger.sqlite"
SIG_ROWS = 1024
"""Most train rows in a holdout signature."""
SAME_SIGNAL = 0.9
"""|mean rank correlation| at or above which two signals are the same (on the train rows)."""

SCHEMA = """
create table if not exists runs (
    id integer primary key autoincrement,
    created_at real not null,
    data_key text not null,
    start_us integer not null,
    end_us integer not null,
    kind text not null,            -- score | backtest | sweep | propose | walkforward
    study text,
    trial_key text not null,       -- canonical expression + the settings of the variant
    name text,
    sr_per_bar real,
    n_obs integer
);
create index if not exists runs_data on runs(data_key, start_us, end_us);
create table if not exists looks (
    id integer primary key autoincrement,
    created_at real not null,
    data_key text not null,
    start_us integer not null,     -- the holdout's first and last row times
    end_us integer not null,
    source text not null,          -- score | propose | api | walkforward
    study text,
    name text,
    expression text,
    sig_ts blob not null,          -- int64 bar times of the signature rows
    sig blob not null,             -- float32 (rows, N) centred, normalised ranks
    n_cols integer not null
);
create index if not exists looks_data on looks(data_key, start_us, end_us);
create table if not exists study_data (
    study text not null,
    data_key text not null,
    start_us integer not null,
    end_us integer not null
);
"""


class HoldoutReused(FactorError, RuntimeError):
    """A signal already evaluated on an overlapping holdout was about to be evaluated again."""


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the ledger file (rows by name, WAL so readers never block the writer,
    durable at checkpoints), committed on success and always closed."""
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=normal")
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def ledger_path(path: str | Path | None = None) -> Path:
    """The registry file: ``path``, else ``$ALPHAFORGE_LEDGER``, else ``DEFAULT_LEDGER``."""
    return Path(path or os.environ.get("ALPHAFORGE_LEDGER") or DEFAULT_LEDGER)


def data_key(panel: Panel) -> str:
    """Identity of a data set: its symbols (sorted) and bar interval, hashed."""
    text = json.dumps([sorted(panel.symbols), panel.interval_us])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signature:
    """A factor's centred, normalised cross-sectional ranks on sampled rows.

    Attributes:
        ts_us: (R,) int64 bar times of the sampled rows.
        z: (R, N) float32; each row's finite ranks centred and scaled to unit norm, 0 elsewhere
            (all 0 when the row has fewer than 3 finite values or no spread).
    """

    ts_us: npt.NDArray[np.int64]
    z: npt.NDArray[np.float32]


def signature(values: F64, panel: Panel) -> Signature:
    """The signature of (T, N) factor values on ``panel``'s rows (see module docstring)."""
    interval = int(panel.interval_us or 1)
    index = panel.ts_us // interval
    stride = 1
    while panel.T // stride > SIG_ROWS:
        stride *= 2
    rows = np.flatnonzero(index % stride == 0)
    v = values[rows]
    ok = np.isfinite(v)
    ranks = np.argsort(np.argsort(np.where(ok, v, np.inf), axis=1), axis=1).astype(np.float64)
    count = ok.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = np.where(ok, ranks - (count - 1) / 2.0, 0.0)
        norm = np.sqrt((centred * centred).sum(axis=1, keepdims=True))
        z = np.where((count >= 3) & (norm > 0), centred / norm, 0.0)
    return Signature(panel.ts_us[rows].astype(np.int64), z.astype(np.float32))


def similarity(a: Signature, b: Signature) -> float:
    """Mean rank correlation of two signatures over their common rows (NaN: < 10 common rows
    where both are defined). Ties are broken by position, so it is Spearman up to ties."""
    common, ia, ib = np.intersect1d(a.ts_us, b.ts_us, assume_unique=True, return_indices=True)
    if common.size == 0 or a.z.shape[1] != b.z.shape[1]:
        return math.nan
    za, zb = a.z[ia].astype(np.float64), b.z[ib].astype(np.float64)
    both = (np.abs(za).sum(axis=1) > 0) & (np.abs(zb).sum(axis=1) > 0)
    if both.sum() < 10:
        return math.nan
    return float(np.mean((za[both] * zb[both]).sum(axis=1)))


@dataclass(frozen=True, slots=True)
class TrialCount:
    """Distinct trials on a data set over an overlapping range.

    Attributes:
        n_trials: distinct trial keys (this one included once it is recorded).
        sharpes: (n,) per-bar Sharpe of each distinct trial with a finite one (latest run).
        by_kind: kind -> distinct trial keys of that kind.
    """

    n_trials: int
    sharpes: F64
    by_kind: dict[str, int]

    @property
    def var_trials(self) -> float | None:
        """Variance (ddof=1) of the trials' per-bar Sharpe ratios; None with fewer than 2."""
        return float(np.var(self.sharpes, ddof=1)) if self.sharpes.size >= 2 else None


@dataclass(frozen=True, slots=True)
class HoldoutLook:
    """The outcome of claiming a holdout look.

    Attributes:
        look: 1 for the first look of this signal at this holdout, k for the k-th.
        earlier: the earlier looks of the same signal (time, source, study, name, similarity).
        holdout_looks: every look recorded at an overlapping holdout (all signals), this one
            included.
    """

    look: int
    earlier: tuple[dict[str, Any], ...]
    holdout_looks: int

    def note(self) -> str:
        """One sentence for tables and reports."""
        if self.look == 1:
            return (f"first look of this signal at this holdout ({self.holdout_looks} look(s) "
                    f"at it by all signals, recorded)")  # fmt: skip
        return (f"HOLDOUT REUSED: look #{self.look} of this signal at this holdout "
                f"(earlier: {_describe(self.earlier)}); its out-of-sample numbers are no "
                f"longer out of sample")  # fmt: skip


def _describe(looks: tuple[dict[str, Any], ...]) -> str:
    return "; ".join(f"{lk['source']} {lk['name'] or lk['expression']!r} in study "
                     f"{lk['study']!r} at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(lk['at']))}"
                     f" (corr {lk['similarity']:+.3f})" for lk in looks)  # fmt: skip


class Registry:
    """SQLite-backed registry of trials and holdout looks (see module docstring)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = ledger_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.executescript(SCHEMA)

    def _conn(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path)

    # ------------------------------------------------------------------ trials
    def record_trial(self, panel: Panel, kind: str, trial_key: str, *, name: str | None = None,
                     study: str | None = None, sr_per_bar: float = math.nan,
                     n_obs: int = 0) -> None:  # fmt: skip
        """Record one trial run on ``panel`` (its data set and time range)."""
        self.record_trials(panel, kind, [(trial_key, name, sr_per_bar, n_obs)], study=study)

    def record_trials(self, panel: Panel, kind: str,
                      trials: Sequence[tuple[str, str | None, float, int]], *,
                      study: str | None = None) -> None:  # fmt: skip
        """Record several trials run on ``panel``, given as (trial key, name, Sharpe per bar,
        observations), in one transaction: all of them or none."""
        key, lo, hi, now = data_key(panel), int(panel.ts_us[0]), int(panel.ts_us[-1]), time.time()
        rows = [(now, key, lo, hi, kind, study, tk, name,
                 float(sr) if math.isfinite(sr) else None, int(n_obs))
                for tk, name, sr, n_obs in trials]  # fmt: skip
        with self._conn() as c:
            c.executemany(
                "insert into runs (created_at, data_key, start_us, end_us, kind, study, trial_key,"
                " name, sr_per_bar, n_obs) values (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )

    def trial_count(self, panel: Panel) -> TrialCount:
        """Distinct trials recorded on ``panel``'s data set over an overlapping time range."""
        return self.trial_count_for(data_key(panel), int(panel.ts_us[0]), int(panel.ts_us[-1]))

    def trial_count_for(self, key: str, start_us: int, end_us: int) -> TrialCount:
        """``trial_count`` for a data key and a time range."""
        with self._conn() as c:
            rows = c.execute(
                "select trial_key, kind, sr_per_bar from runs where data_key=? and start_us<=?"
                " and end_us>=? order by id",
                (key, end_us, start_us),
            ).fetchall()  # fmt: skip
        latest: dict[str, float | None] = {}
        kinds: dict[str, set[str]] = {}
        for r in rows:
            latest[r["trial_key"]] = r["sr_per_bar"]
            kinds.setdefault(r["kind"], set()).add(r["trial_key"])
        sharpes = np.array([s for s in latest.values() if s is not None], dtype=np.float64)
        return TrialCount(len(latest), sharpes, {k: len(v) for k, v in sorted(kinds.items())})

    def record_study_data(self, study: str, panel: Panel) -> None:
        """Remember which data a proposal study ran on (for its leaderboard's trial count)."""
        with self._conn() as c:
            c.execute("insert into study_data values (?,?,?,?)",
                      (study, data_key(panel), int(panel.ts_us[0]),
                       int(panel.ts_us[-1])))  # fmt: skip

    def study_trial_count(self, study: str) -> TrialCount | None:
        """The trial count on the data a study ran on (largest over its data sets), or None."""
        with self._conn() as c:
            rows = c.execute("select distinct data_key, start_us, end_us from study_data where"
                             " study=?", (study,)).fetchall()  # fmt: skip
        counts = [self.trial_count_for(r[0], r[1], r[2]) for r in rows]
        return max(counts, key=lambda t: t.n_trials) if counts else None

    # ------------------------------------------------------------------ holdout looks
    def claim_holdout(self, train: Panel, holdout: Panel, train_values: F64, *, source: str,
                      name: str | None = None, expression: str | None = None,
                      study: str | None = None,
                      allow_reuse: bool = False) -> HoldoutLook:  # fmt: skip
        """Record a look at ``holdout`` by the signal ``train_values`` (its values on ``train``).

        Raises:
            HoldoutReused: the same signal (by values) already looked at an overlapping holdout
                of the same data set, and ``allow_reuse`` is False. Nothing is recorded then.
        """
        if holdout.T == 0:
            raise FactorError("the holdout has no rows")
        key, lo, hi = data_key(holdout), int(holdout.ts_us[0]), int(holdout.ts_us[-1])
        sig = signature(train_values, train)
        with self._conn() as c:
            c.execute("begin immediate")  # one claimant at a time
            prior = c.execute(
                "select * from looks where data_key=? and start_us<=? and end_us>=? order by id",
                (key, hi, lo),
            ).fetchall()  # fmt: skip
            earlier = []
            for r in prior:
                other = Signature(np.frombuffer(r["sig_ts"], dtype=np.int64),
                                  np.frombuffer(r["sig"], dtype=np.float32).reshape(
                                      -1, int(r["n_cols"])))  # fmt: skip
                s = similarity(sig, other)
                if math.isfinite(s) and abs(s) >= SAME_SIGNAL:
                    earlier.append({"at": r["created_at"], "source": r["source"],
                                    "study": r["study"], "name": r["name"],
                                    "expression": r["expression"], "similarity": s})  # fmt: skip
            look = HoldoutLook(len(earlier) + 1, tuple(earlier), len(prior) + 1)
            if earlier and not allow_reuse:
                c.rollback()
                raise HoldoutReused(
                    f"this signal was already evaluated on this holdout "
                    f"({len(earlier)} earlier look(s): {_describe(tuple(earlier))}); a second "
                    f"look is refused (allow reuse explicitly to look again: the result will "
                    f"be marked as look #{look.look})"
                )
            c.execute(
                "insert into looks (created_at, data_key, start_us, end_us, source, study, name,"
                " expression, sig_ts, sig, n_cols) values (?,?,?,?,?,?,?,?,?,?,?)",
                (time.time(), key, lo, hi, source, study, name, expression,
                 sig.ts_us.tobytes(), np.ascontiguousarray(sig.z).tobytes(), int(sig.z.shape[1])),
            )  # fmt: skip
        return look

    def looks(self) -> int:
        """Number of holdout looks recorded (every data set)."""
        with self._conn() as c:
            return int(c.execute("select count(*) from looks").fetchone()[0])


def deflate(count: TrialCount, dsr: dict[str, Any], periods_per_year: float) -> dict[str, Any]:
    """The Deflated Sharpe of a result at the registry's trial count.

    Args:
        count: the trial count on the result's data (this trial included).
        dsr: the result's DSR dict (per-bar ``sr``, ``n_obs``, ``skew``, ``kurtosis``).
        periods_per_year: to annualise the Sharpe needed to beat luck.

    Returns:
        The DSR dict at ``count.n_trials`` with V = the spread of the trials' Sharpe ratios when
        at least two are known (else the estimator's own variance), plus ``sr_needed_annual``
        (the expected best annualised Sharpe of that many zero-skill trials) and
        ``var_source`` ("trials" or "estimator").
    """
    from alphaforge.factors.dsr import deflated_sharpe_ratio

    if not dsr or not math.isfinite(float(dsr.get("sr", math.nan))):
        return dict(dsr)
    out = deflated_sharpe_ratio(sr=float(dsr["sr"]), n_obs=int(dsr["n_obs"]),
                              skew=float(dsr["skew"]), kurtosis=float(dsr["kurtosis"]),
                              n_trials=max(count.n_trials, 1),
                              var_trials=count.var_trials).to_dict()  # fmt: skip
    d: dict[str, Any] = dict(out)
    d["sr_needed_annual"] = float(d["sr0"]) * math.sqrt(periods_per_year)
    d["var_source"] = "trials" if count.var_trials is not None else "estimator"
    return d
