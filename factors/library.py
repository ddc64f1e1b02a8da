"""The built-in factor library: every factor is an expression of ``factors.expr``.

Groups: ``momentum`` (incl. reversal), ``volatility``, ``liquidity`` (volume, OBV, Amihud),
``order_flow`` (taker-buy imbalance), ``vwap``, ``oscillator`` (RSI, MACD, Bollinger),
``carry`` (funding and basis; perpetual panels only), ``positioning`` (open interest from the
metrics archive or Tardis derivative tickers), ``book`` (needs order-book levels) and
``alpha101`` (Kakushadze 2016, see ``library_alphas``).

Sign convention: a larger value is a bullish forecast where the source defines one (reversal
factors are negated returns, carry factors are negated funding/basis); pure descriptors
(volatility, liquidity) are raw. Windows are in bars of the Panel's interval.

``Factor.needs`` lists the fields the expression reads; ``list_factors(panel=...)`` keeps the
factors a Panel can feed (stored or derivable fields, see ``factors.fields``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alphaforge.engine.panel import Panel
from alphaforge.factors.errors import UnknownFactor
from alphaforge.factors.expr.nodes import Node, suggest
from alphaforge.factors.expr.parser import parse
from alphaforge.factors.fields import available_fields
from alphaforge.factors.library_alphas import ALPHAS


@dataclass(frozen=True, slots=True)
class Factor:
    """A named library factor.

    Attributes:
        name: unique identifier (``mom_20``).
        expr: the expression text (parsed and validated on construction).
        group: one of ``GROUPS``.
        doc: what it measures, with units and the source formula where there is one.
        needs: fields read; derived from the expression when left empty.
    """

    name: str
    expr: str
    group: str
    doc: str
    needs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        fields = tuple(sorted(self.node.fields()))
        if not self.needs:
            object.__setattr__(self, "needs", fields)
        elif set(self.needs) != set(fields):
            raise ValueError(f"factor {self.name}: needs {self.needs} but reads {fields}")

    @property
    def node(self) -> Node:
        """The parsed AST."""
        return parse(self.expr)

    @property
    def canonical(self) -> str:
        """Canonical form of the expression."""
        return str(self.node)

    @property
    def lookback(self) -> int:
        """Warm-up in bars."""
        return self.node.lookback


_UP = "max(ts_delta(close, 1), 0)"
_DOWN = "max(-ts_delta(close, 1), 0)"
_MACD = "(ts_ewm(close, 12) - ts_ewm(close, 26)) / close"

_CORE: tuple[tuple[str, str, str, str], ...] = (
    # ---- momentum and reversal
    ("mom_20", "momentum", "ts_pct_change(close, 20)", "20-bar price return"),
    ("mom_60", "momentum", "ts_pct_change(close, 60)", "60-bar price return"),
    ("mom_240", "momentum", "ts_pct_change(close, 240)", "240-bar price return"),
    (
        "mom_60_skip_5",
        "momentum",
        "ts_delay(close, 5) / ts_delay(close, 60) - 1",
        "return from 60 to 5 bars ago (skips the short-term reversal window)",
    ),
    ("mom_rank_20", "momentum", "cs_rank(ts_pct_change(close, 20))", "cross-sectional rank"),
    ("trend_z_60", "momentum", "ts_zscore(close, 60)", "close in 60-bar std units from mean"),
    ("rev_1", "momentum", "-returns", "1-bar reversal: minus the last return"),
    ("rev_5", "momentum", "-ts_sum(returns, 5)", "5-bar reversal: minus the summed returns"),
    # ---- volatility
    ("vol_20", "volatility", "ts_std(returns, 20)", "20-bar std of returns (per bar)"),
    ("vol_60", "volatility", "ts_std(returns, 60)", "60-bar std of returns (per bar)"),
    (
        "vol_ratio_10_60",
        "volatility",
        "ts_std(returns, 10) / ts_std(returns, 60)",
        "short over long volatility (regime change)",
    ),
    (
        "parkinson_20",
        "volatility",
        "sqrt(ts_mean(power(log(high / low), 2), 20) / (4 * log(2)))",
        "Parkinson high-low volatility estimator over 20 bars (per bar)",
    ),
    (
        "downside_vol_20",
        "volatility",
        "sqrt(ts_mean(power(min(returns, 0), 2), 20))",
        "semi-deviation of negative returns over 20 bars",
    ),
    ("skew_60", "volatility", "ts_skew(returns, 60)", "60-bar return skewness"),
    ("range_20", "volatility", "ts_mean((high - low) / close, 20)", "mean bar range / close"),
    # ---- volume and liquidity
    (
        "obv_20",
        "liquidity",
        "ts_sum(sign(returns) * volume, 20) / ts_sum(volume, 20)",
        "on-balance volume over 20 bars, normalised by volume, in [-1, 1]",
    ),
    ("volume_ratio_20", "liquidity", "volume / ts_mean(volume, 20)", "volume over its mean"),
    (
        "amihud_20",
        "liquidity",
        "ts_mean(abs(returns) / quote_volume, 20) * 1000000",
        "Amihud illiquidity: |return| per million of quote volume, 20-bar mean",
    ),
    (
        "dollar_volume_20",
        "liquidity",
        "log(ts_mean(quote_volume, 20))",
        "log of the 20-bar mean quote volume",
    ),
    ("trade_intensity_20", "liquidity", "trades / ts_mean(trades, 20)", "trade count vs mean"),
    (
        "avg_trade_size_20",
        "liquidity",
        "log(ts_sum(quote_volume, 20) / ts_sum(trades, 20))",
        "log mean quote size of a trade over 20 bars",
    ),
    (
        "price_volume_corr_20",
        "liquidity",
        "ts_corr(returns, log(volume), 20)",
        "correlation of returns with log volume over 20 bars",
    ),
    # ---- order flow
    (
        "taker_imbalance",
        "order_flow",
        "2 * taker_buy_volume / volume - 1",
        "taker buy minus sell volume over total, in [-1, 1]",
    ),
    (
        "taker_imbalance_20",
        "order_flow",
        "2 * ts_sum(taker_buy_volume, 20) / ts_sum(volume, 20) - 1",
        "20-bar taker imbalance",
    ),
    (
        "taker_imbalance_z_60",
        "order_flow",
        "ts_zscore(2 * taker_buy_volume / volume - 1, 60)",
        "taker imbalance in 60-bar std units",
    ),
    # ---- VWAP deviation
    ("vwap_dev", "vwap", "close / vwap - 1", "close relative to the bar VWAP"),
    (
        "vwap_dev_20",
        "vwap",
        "close / (ts_sum(quote_volume, 20) / ts_sum(volume, 20)) - 1",
        "close relative to the 20-bar VWAP",
    ),
    # ---- oscillators: RSI, MACD, Bollinger
    (
        "rsi_14",
        "oscillator",
        f"100 * ts_ewm({_UP}, 27) / (ts_ewm({_UP}, 27) + ts_ewm({_DOWN}, 27))",
        "RSI with Wilder smoothing (alpha = 1/14, i.e. EWM span 27), 0..100",
    ),
    ("macd", "oscillator", _MACD, "MACD line (EWM 12 - EWM 26) relative to close"),
    (
        "macd_hist",
        "oscillator",
        f"{_MACD} - ts_ewm({_MACD}, 9)",
        "MACD histogram: MACD line minus its 9-bar EWM signal",
    ),
    (
        "boll_pos_20",
        "oscillator",
        "(close - ts_mean(close, 20)) / (2 * ts_std(close, 20))",
        "position in 20-bar, 2-sigma Bollinger bands (-1 lower, +1 upper)",
    ),
    (
        "boll_width_20",
        "oscillator",
        "4 * ts_std(close, 20) / ts_mean(close, 20)",
        "Bollinger band width (upper - lower) / middle",
    ),
    # ---- carry: funding and basis (perpetuals)
    ("funding_carry", "carry", "-funding_rate", "minus the funding rate: longs paid to hold"),
    ("funding_rank", "carry", "-cs_rank(funding_rate)", "cross-sectional funding carry rank"),
    ("basis_carry", "carry", "-basis", "minus the perpetual basis"),
    ("basis_change_20", "carry", "-ts_delta(basis, 20)", "minus the 20-bar change in basis"),
    ("mark_premium", "carry", "close / mark_close - 1", "last price over mark price"),
    # ---- positioning: open interest (perpetuals)
    (
        "oi_change_12",
        "positioning",
        "ts_pct_change(open_interest, 12)",
        "12-bar change of open interest (positions opening)",
    ),
    (
        "oi_price_divergence",
        "positioning",
        "cs_rank(ts_pct_change(open_interest, 12)) - cs_rank(ts_pct_change(close, 12))",
        "open interest rising more than price (crowding) ranked across symbols",
    ),
    (
        "oi_turnover",
        "positioning",
        "quote_volume / open_interest_value",
        "bar quote volume over open interest value",
    ),
    # ---- order book
    ("book_imbalance", "book", "depth_imbalance", "bid minus ask depth over total depth"),
    ("book_imbalance_5", "book", "ts_mean(depth_imbalance, 5)", "5-bar mean book imbalance"),
    ("spread_tightness", "book", "-spread_bps", "minus the top-of-book spread (bps)"),
    ("depth_liquidity", "book", "log(depth_at_bps)", "log quote depth within 10 bps of mid"),
)

GROUPS = (
    "momentum",
    "volatility",
    "liquidity",
    "order_flow",
    "vwap",
    "oscillator",
    "carry",
    "positioning",
    "book",
    "alpha101",
)


def _build() -> dict[str, Factor]:
    out: dict[str, Factor] = {}
    for name, group, expr, doc in _CORE:
        out[name] = Factor(name, expr, group, doc)
    for name, expr, doc in ALPHAS:
        out[name] = Factor(name, expr, "alpha101", f"Kakushadze (2016) {name}: {doc}")
    return out


LIBRARY: dict[str, Factor] = _build()
"""Every library factor by name."""


def get_factor(name: str) -> Factor:
    """The library factor called ``name``.

    Raises:
        UnknownFactor: no such factor (the message suggests the closest name).
    """
    try:
        return LIBRARY[name]
    except KeyError:
        raise UnknownFactor(
            f"no library factor {name!r}{suggest(name, tuple(LIBRARY))}; "
            "`alphaforge factors list` shows them"
        ) from None


def list_factors(group: str | None = None, panel: Panel | None = None) -> list[Factor]:
    """Library factors, optionally of one group and/or computable on ``panel``.

    Args:
        group: keep only this group (one of ``GROUPS``).
        panel: keep only factors whose ``needs`` the panel holds or can derive.

    Raises:
        UnknownFactor: an unknown group.
    """
    if group is not None and group not in GROUPS:
        raise UnknownFactor(f"no factor group {group!r}{suggest(group, GROUPS)}; groups: {GROUPS}")
    have = available_fields(panel) if panel is not None else None
    return [
        f
        for f in LIBRARY.values()
        if (group is None or f.group == group) and (have is None or set(f.needs) <= have)
    ]
