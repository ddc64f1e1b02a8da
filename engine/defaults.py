"""The execution settings every command that backtests starts from (one set, stated once).

``backtest``, ``report``, ``score`` (its long-short backtest), ``sweep`` (parameters a grid
leaves out), ``walkforward``, ``propose`` (the gate's backtest), ``demo`` and the Python API all
take their defaults from :data:`DEFAULTS`, print :func:`describe` in ``--help``, and carry the
settings actually used in every output (``execution`` in JSON, one line in tables). What is
common to all of them and not a setting: funding is paid on held perpetual positions when the
panel has it, and every position is closed by the last bar the data lets it trade (the bar
before a symbol's last bar, and the panel's end), so a run never ends holding a position it
could not have sold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Execution:
    """How a factor becomes trades.

    Attributes:
        lag: bars between the decision (a bar's close, when its values are known) and the fill
            (the open of bar t + lag).
        fee_bps: taker fee, basis points of traded notional.
        slippage_bps: fixed slippage, basis points of traded notional (``slippage`` overrides).
        rebalance_every: new targets on every k-th bar only (positions held in between).
        scheme: weighting of factor values (engine.weights).
        gross: gross leverage, sum of |weights|.
    """

    lag: int = 1
    fee_bps: float = 4.0
    slippage_bps: float = 1.0
    rebalance_every: int = 1
    scheme: str = "rank"
    gross: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULTS = Execution()


def describe(settings: Mapping[str, Any] | Execution = DEFAULTS) -> str:
    """One line stating the execution settings (``settings`` may carry more keys)."""
    s = settings.to_dict() if isinstance(settings, Execution) else dict(settings)
    lag = int(s.get("lag", DEFAULTS.lag))
    when = "the bar's close (lag 0)" if lag == 0 else f"the open {lag} bar{'s' * (lag > 1)} later"
    every = int(s.get("rebalance_every", DEFAULTS.rebalance_every))
    slip = s.get("slippage_model") or "fixed_bps"
    slip_txt = (f"slippage {_num(s.get('slippage_bps', DEFAULTS.slippage_bps))} bps"
                if slip == "fixed_bps" else f"slippage {slip}")  # fmt: skip
    return (f"{s.get('scheme', DEFAULTS.scheme)} weights at gross "
            f"{_num(s.get('gross', DEFAULTS.gross))}, decided at a bar's close and filled at "
            f"{when}; fee {_num(s.get('fee_bps', DEFAULTS.fee_bps))} bps + {slip_txt} per "
            f"trade; rebalanced every {'bar' if every == 1 else f'{every} bars'}; funding paid "
            "while held; flat by the last tradable bar")  # fmt: skip


def _num(x: Any) -> str:
    return f"{float(x):g}"


HELP = f"Defaults (shared by every command that backtests): {describe()}."
"""The sentence every backtesting command's ``--help`` ends with."""
