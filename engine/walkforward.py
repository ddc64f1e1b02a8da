"""Walk-forward splits with a purge and an embargo, and what is measured over them.

Rows are bars in time order. Window k tests on ``test`` consecutive rows; it trains on the rows
before them:

- ``mode="rolling"``: the ``train`` rows just before the purge gap;
- ``mode="expanding"``: every row from the first one up to the purge gap (at least ``train``).

**Purge**: ``purge`` rows between the last train row and the first test row are used by
neither. A train row's label (its forward return over ``horizon`` bars, filled ``lag`` bars
after the decision) reaches ``lag + horizon`` rows ahead, so ``purge >= lag + horizon`` keeps
every train label strictly before the test window.

**Embargo**: the ``embargo`` rows right after each test window are dropped from every later
training window: their factor values are computed from look-back windows that overlap the
test window just evaluated (Lopez de Prado's embargo, applied to the walk-forward order).

Windows step forward by ``step`` rows (default ``test``: back-to-back test windows, so the
out-of-sample returns stitch into one curve without overlap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alphaforge.engine.errors import OptionError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Split:
    """One walk-forward window.

    Attributes:
        train: (k,) int64 row indices used to select (purge and embargo removed).
        test: rows [test_start, test_end) evaluated out of sample.
    """

    train: I64
    test_start: int
    test_end: int

    @property
    def test(self) -> slice:
        """The test rows as a slice."""
        return slice(self.test_start, self.test_end)


def walk_forward_splits(n_rows: int, train: int, test: int, *, step: int | None = None,
                        mode: str = "expanding", purge: int = 0,
                        embargo: int = 0) -> list[Split]:  # fmt: skip
    """Every window that fits in ``n_rows`` (see module docstring).

    Raises:
        OptionError: non-positive sizes, an unknown mode, negative purge/embargo, no window
            that fits, or an embargo that leaves a window fewer than train / 2 train rows.
    """
    step = test if step is None else step
    if min(train, test, step) < 1:
        raise OptionError(f"train, test and step must be >= 1 row; got {train}, {test}, {step}")
    if mode not in ("rolling", "expanding"):
        raise OptionError(f"mode must be 'rolling' or 'expanding'; got {mode!r}")
    if purge < 0 or embargo < 0:
        raise OptionError(f"purge and embargo must be >= 0; got {purge}, {embargo}")
    out: list[Split] = []
    start = train + purge
    while start + test <= n_rows:
        lo = 0 if mode == "expanding" else start - purge - train
        rows = np.arange(lo, start - purge, dtype=np.int64)
        for s in out:  # rows just after an earlier test window are embargoed
            rows = rows[(rows < s.test_end) | (rows >= s.test_end + embargo)]
        if rows.size < train / 2:
            raise OptionError(
                f"embargo {embargo} leaves window {len(out)} with {rows.size} of {train} train "
                "rows; use a shorter embargo, longer test windows or expanding mode"
            )
        out.append(Split(rows, start, start + test))
        start += step
    if not out:
        raise OptionError(
            f"no walk-forward window fits {n_rows} rows (train {train} + purge {purge} + "
            f"test {test})"
        )
    return out


def sharpe_per_bar(returns: F64) -> float:
    """mean / std (ddof=1) of the finite returns; NaN with fewer than 2 or zero spread."""
    r = returns[np.isfinite(returns)]
    if r.size < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r)) / sd if sd > 0 else math.nan


def overfit_logit(selected: int, test_sharpes: F64) -> float:
    """Logit of the selected candidate's relative out-of-sample rank (Bailey et al.'s PBO
    statistic, on one walk-forward split): omega = rank / (N + 1) among the candidates' test
    Sharpe ratios (NaN ranked last); logit = ln(omega / (1 - omega)). <= 0: the in-sample
    winner was at or below the out-of-sample median."""
    x = np.where(np.isfinite(test_sharpes), test_sharpes, -np.inf)
    n = x.size
    rank = 1.0 + float(np.sum(x < x[selected])) + 0.5 * float(np.sum(x == x[selected]) - 1)
    omega = rank / (n + 1.0)
    return math.log(omega / (1.0 - omega))
