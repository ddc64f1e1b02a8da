"""Average (tie-sharing) ranks of short rows by counting: the one rank kernel that the weight
schemes (``engine.weights_nb``) and the expression language's ``cs_rank``
(``factors.expr.ops_nb``) share.

For each value, the rank is ``#smaller + (#equal + 1) / 2`` (1-based, ties share their mean
rank). The counting loop has no branches, so LLVM vectorises it: O(n) per value, yet on rows of
up to a few hundred values faster than any sort (2-3x a sort at 10-100 values on this machine,
about even at 300). The result is an exact half-integer, so it equals the tie-averaged rank of a
sort bit for bit (``scipy.stats.rankdata(method="average")``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

COUNT_ROW = 256
"""Rows with at most this many valid values are ranked by counting; longer rows by a sort."""


@njit(cache=True)
def count_rank(vals: np.ndarray, n: int, v: float) -> float:
    """Average 1-based rank of ``v`` among ``vals[:n]`` (finite or infinite, no NaN)."""
    less = 0
    same = 0
    for k in range(n):
        less += vals[k] < v
        same += vals[k] == v
    return less + (same + 1) / 2.0
