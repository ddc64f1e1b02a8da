"""Warnings for fills that can see the decision bar (design.md, execution timing).

A decision made with row t's data fills at row t + lag: at that bar's open when the panel has
``open``, else at the close of row t + lag - 1. Two settings make the fill price the very price
the decision saw, which trades the bid-ask bounce for free and inflates short-horizon results
(on real 1-minute data a 1-bar reversal goes from Sharpe 17 to 70):

- ``lag = 0``: the fill is the close of the decision bar itself;
- ``lag = 1`` without ``open``: the fill falls back to the decision bar's close.
"""

from __future__ import annotations


def timing_warnings(lag: int, has_open: bool) -> list[str]:
    """The warnings (possibly none) for a run with this lag on a panel with or without open."""
    if lag == 0:
        return [
            "TIMING: lag 0 fills every decision at the close of the bar it was decided on, the "
            "price the factor saw; results are optimistic (use lag >= 1)"
        ]
    if lag == 1 and not has_open:
        return [
            "TIMING: the panel has no 'open', so lag-1 fills use the decision bar's close, the "
            "price the factor saw; results are optimistic (add open prices or use lag >= 2)"
        ]
    return []
