"""Backtest-vs-live gap: match live fills to the backtest's orders and explain the difference.

Per order (sides are +1 buy / -1 sell; costs are in bps of the intended notional at the
decision mid, positive = live did worse than a free fill at the decision mid):

    delay        = side * (arrival_mid - decision_mid) / decision_mid   (drift before the fill)
    half_spread  = half the quoted spread at the fill time / decision_mid  (needs quotes)
    impact       = side * (live_vwap - arrival_mid) / decision_mid - half_spread
    fees         = live fees (quote currency) / intended notional
    opportunity  = unfilled fraction * side * (end_mid - decision_mid) / decision_mid
    shortfall    = fill fraction * (delay + half_spread + impact) + fees + opportunity

Without quotes the arrival mid is the decision mid and half-spread is folded into impact.
The backtest's own cost per order (``bt_fill_px`` and ``bt_fee``) is measured the same way, so
``gap = live shortfall - backtest shortfall`` and its components say what drives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.errors import InputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ORDER_COLUMNS = ("ts_us", "symbol", "side", "qty", "decision_mid")
FILL_COLUMNS = ("ts_us", "symbol", "side", "qty", "price", "fee", "fee_asset")
OVERFILL_RTOL, OVERFILL_ATOL = 1e-6, 1e-8
"""Fills may exceed an order's quantity by this much (exchanges round quantities to their
step, 8 decimals at most) before the order counts as matched to more than it asked for."""
COMPONENTS = ("delay", "half_spread", "impact", "fees", "opportunity", "funding")


@dataclass(frozen=True, slots=True)
class Quotes:
    """Best bid/ask history per symbol: arrays sorted by time within each symbol.

    Attributes:
        ts_us: (M,) int64 quote times. symbol: (M,) str. bid, ask: (M,) float64 prices.
    """

    ts_us: I64
    symbol: npt.NDArray[np.str_]
    bid: F64
    ask: F64

    def at(self, symbol: str, ts_us: I64) -> tuple[F64, F64]:
        """(bid, ask) in force at each time (last quote at or before it; NaN before any)."""
        rows = np.flatnonzero(self.symbol == symbol)
        if rows.size == 0:  # no quote of this symbol at all
            nan = np.full(np.shape(ts_us), np.nan)
            return nan, nan.copy()
        rows = rows[np.argsort(self.ts_us[rows], kind="stable")]
        idx = np.searchsorted(self.ts_us[rows], ts_us, side="right") - 1
        bid = np.where(idx >= 0, self.bid[rows][np.maximum(idx, 0)], np.nan)
        ask = np.where(idx >= 0, self.ask[rows][np.maximum(idx, 0)], np.nan)
        return bid, ask


@dataclass(frozen=True, slots=True)
class GapReport:
    """The gap, per order and in summary.

    Attributes:
        per_order: column name -> (M,) array for every order (ids, matched qty, live vwap,
            each component in bps for live and backtest).
        live_bps, backtest_bps: component -> notional-weighted mean bps (plus "total").
        gap_bps: component -> live minus backtest (plus "total"); positive = live worse.
        driver: the component with the largest absolute gap.
        gap_return: total live-minus-backtest cost as a fraction of ``equity``.
        unmatched_fills: number of live fills matched to no order (0 unless allowed).
        calibration: model -> {"rmse_bps", params...} and "best" (see calibrate_models).
        fills: orders, filled (fully), partial, unfilled, fills (matched), fill_rate (filled
            share of the intended notional); partial and unfilled orders pay the
            ``opportunity`` component.
        warnings: what the numbers rest on that may not hold (orders matched to more fills
            than their quantity).
    """

    per_order: Mapping[str, np.ndarray]
    live_bps: Mapping[str, float]
    backtest_bps: Mapping[str, float]
    gap_bps: Mapping[str, float]
    driver: str
    gap_return: float
    unmatched_fills: int
    calibration: Mapping[str, Any]
    fills: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (per-order arrays as lists)."""
        return {
            "live_bps": dict(self.live_bps), "backtest_bps": dict(self.backtest_bps),
            "gap_bps": dict(self.gap_bps), "driver": self.driver, "gap_return": self.gap_return,
            "unmatched_fills": self.unmatched_fills, "calibration": dict(self.calibration),
            "fills": dict(self.fills or {}), "warnings": list(self.warnings),
            "orders": {k: np.asarray(v).tolist() for k, v in self.per_order.items()},
        }  # fmt: skip


def _columns(name: str, table: Mapping[str, Any], needed: tuple[str, ...]) -> dict[str, Any]:
    missing = [c for c in needed if c not in table]
    if missing:
        raise InputError(f"{name}: missing column(s) {missing}; has {sorted(table)}")
    return {k: np.asarray(v) for k, v in table.items()}


def _sides(name: str, side: np.ndarray) -> F64:
    if side.dtype.kind in "iuf":
        s = side.astype(np.float64)
    else:
        low = np.char.lower(side.astype(str))
        s = np.where(low == "buy", 1.0, np.where(low == "sell", -1.0, np.nan))
    bad = np.flatnonzero(~np.isin(s, (-1.0, 1.0)))
    if bad.size:
        raise InputError(f"{name}: row {int(bad[0])} has side {str(side[bad[0]])!r}; "
                         "expected buy/sell or +1/-1")  # fmt: skip
    return s


def match_fills(orders: Mapping[str, Any], fills: Mapping[str, Any], window_us: int,
                allow_unmatched: bool = False) -> tuple[I64, int]:  # fmt: skip
    """Index of the order each fill belongs to (by order_id when both have it, else the
    latest order of the same symbol and side decided at most ``window_us`` before the fill).

    Returns:
        (order index per fill, -1 for unmatched; number unmatched).

    Raises:
        InputError: a fill of an unknown symbol, or (unless allow_unmatched) one that
            matches no order.
    """
    o_sym = np.asarray(orders["symbol"]).astype(str)
    f_sym = np.asarray(fills["symbol"]).astype(str)
    unknown = sorted(str(x) for x in set(f_sym) - set(o_sym))
    if unknown:
        known = sorted(str(x) for x in set(o_sym))
        raise InputError(f"fills: unknown symbol(s) {unknown}; orders trade {known}")
    out = np.full(f_sym.size, -1, dtype=np.int64)
    if "order_id" in orders and "order_id" in fills:
        index = {str(v): i for i, v in enumerate(np.asarray(orders["order_id"]))}
        out = np.array([index.get(str(v), -1) for v in np.asarray(fills["order_id"])], np.int64)
    else:
        o_side, f_side = _sides("orders", orders["side"]), _sides("fills", fills["side"])
        o_ts = np.asarray(orders["ts_us"], np.int64)
        f_ts = np.asarray(fills["ts_us"], np.int64)
        for s in np.unique(f_sym):
            for side in (-1.0, 1.0):
                o_rows = np.flatnonzero((o_sym == s) & (o_side == side))
                f_rows = np.flatnonzero((f_sym == s) & (f_side == side))
                if not (o_rows.size and f_rows.size):
                    continue
                o_rows = o_rows[np.argsort(o_ts[o_rows], kind="stable")]
                j = np.searchsorted(o_ts[o_rows], f_ts[f_rows], side="right") - 1
                ok = (j >= 0) & (f_ts[f_rows] - o_ts[o_rows][np.maximum(j, 0)] <= window_us)
                out[f_rows[ok]] = o_rows[j[ok]]
    unmatched = int(np.sum(out < 0))
    if unmatched and not allow_unmatched:
        first = int(np.flatnonzero(out < 0)[0])
        raise InputError(
            f"fills: {unmatched} fill(s) match no order (first: row {first}, symbol "
            f"{f_sym[first]}, ts_us {int(np.asarray(fills['ts_us'])[first])}); widen the "
            "matching window or pass allow_unmatched"
        )
    return out, unmatched


def _fee_quote(f: Mapping[str, np.ndarray], quote_asset: str, fee_rates: Mapping[str, float],
               quotes: Quotes | None = None) -> F64:  # fmt: skip
    """Each fill's fee in the quote currency: as is in ``quote_asset``; at the fill's own price
    when paid in the symbol's base asset; at ``fee_rates[asset]`` when given; else at the mid
    of ``<asset><quote_asset>`` in ``quotes`` at the fill time (e.g. BNB fees with BNBUSDT
    quotes)."""
    fee = f["fee"].astype(np.float64)
    asset = f["fee_asset"].astype(str)
    base = np.array([s.removesuffix(quote_asset) for s in f["symbol"].astype(str)])
    rate = np.ones(fee.size)
    for a in (str(x) for x in np.unique(asset)):
        rows = asset == a
        if a == quote_asset:
            continue
        pair = f"{a}{quote_asset}"
        if a in fee_rates:
            rate[rows] = fee_rates[a]
        elif np.all(base[rows] == a):
            rate[rows] = f["price"].astype(np.float64)[rows]
        elif quotes is not None and pair in set(quotes.symbol.tolist()):
            b, k = quotes.at(pair, f["ts_us"].astype(np.int64)[rows])
            mid = 0.5 * (b + k)
            if not np.isfinite(mid).all():
                first = int(np.flatnonzero(rows)[np.flatnonzero(~np.isfinite(mid))[0]])
                raise InputError(f"fills: row {first}: no {pair} quote at or before the fill to "
                                 f"price its {a} fee")  # fmt: skip
            rate[rows] = mid
        else:
            raise InputError(
                f"fills: {int(rows.sum())} fee(s) paid in {a} need its price in {quote_asset}: "
                f"pass --fee-price {a}=<price> (API: fee_prices={{{a!r}: price}}) or quotes "
                f"that include {pair}"
            )
    return fee * rate


def syms_of(table: Mapping[str, Any]) -> npt.NDArray[np.str_]:
    """The ``symbol`` column as strings."""
    return np.asarray(table["symbol"]).astype(str)


def _shortfall(side: F64, mid0: F64, arrival: F64, half: F64, vwap: F64, frac: F64,
               fee_bps: F64, end_mid: F64) -> dict[str, F64]:  # fmt: skip
    delay = side * (arrival - mid0) / mid0 * 1e4
    half_bps = np.nan_to_num(half / mid0 * 1e4)
    impact = np.where(frac > 0, side * (vwap - arrival) / mid0 * 1e4 - half_bps, 0.0)
    opp = (1.0 - frac) * side * (end_mid - mid0) / mid0 * 1e4
    comp = {"delay": frac * np.nan_to_num(delay), "half_spread": frac * half_bps,
            "impact": frac * np.nan_to_num(impact), "fees": fee_bps,
            "opportunity": np.nan_to_num(opp)}  # fmt: skip
    comp["total"] = np.sum(np.stack(list(comp.values())), axis=0)
    return comp


def analyze_gap(
    orders: Mapping[str, Any],
    fills: Mapping[str, Any],
    *,
    quotes: Quotes | None = None,
    window_us: int = 60_000_000,
    horizon_us: int = 60_000_000,
    quote_asset: str = "USDT",
    fee_rates: Mapping[str, float] | None = None,
    equity: float | None = None,
    allow_unmatched: bool = False,
    features: Mapping[str, F64] | None = None,
    funding_live: float = 0.0,
    funding_backtest: float = 0.0,
) -> GapReport:
    """Decompose the backtest-vs-live gap (see module docstring).

    Args:
        orders: columns ts_us (decision time, int64 µs), symbol, side, qty (> 0, base units),
            decision_mid; optional order_id, bt_fill_px, bt_fee (quote) for the backtest's own
            fill; optional end_mid (mid at decision + horizon) when quotes are absent.
        fills: columns ts_us, symbol, side, qty, price, fee, fee_asset; optional order_id.
        quotes: best bid/ask history for arrival mids, spreads and end mids.
        window_us: a fill matches an order decided at most this long before it.
        horizon_us: opportunity cost is measured to decision + horizon.
        quote_asset: the symbols' quote currency (fees in it need no conversion).
        fee_rates: quote price of other fee assets (e.g. {"BNB": 600.0}).
        equity: account equity in quote, to express the gap as a return.
        features: optional per-order arrays (sigma, adv, ...) passed to the calibration.
        funding_live, funding_backtest: perpetual funding paid (quote, < 0 = received) over
            the same period live and in the backtest; their difference is the ``funding``
            component (bps of the total intended notional), since funding follows positions,
            not single orders.

    Raises:
        InputError: missing columns, bad sides, unknown symbols, unmatched fills, a fee asset
            without a price.
    """
    o = _columns("orders", orders, ORDER_COLUMNS)
    f = _columns("fills", fills, FILL_COLUMNS)
    side = _sides("orders", o["side"])
    qty = o["qty"].astype(np.float64)
    if np.any(~(qty > 0)):
        raise InputError(f"orders: qty must be > 0; row {int(np.flatnonzero(~(qty > 0))[0])}")
    mid0 = o["decision_mid"].astype(np.float64)
    idx, unmatched = match_fills(o, f, window_us, allow_unmatched)
    m = qty.size
    ok = idx >= 0
    fq = f["qty"].astype(np.float64)[ok]
    fpx = f["price"].astype(np.float64)[ok]
    filled = np.bincount(idx[ok], weights=fq, minlength=m)
    vwap = np.bincount(idx[ok], weights=fq * fpx, minlength=m) / np.where(filled > 0, filled, 1)
    fee_q = np.bincount(idx[ok], weights=_fee_quote(f, quote_asset, fee_rates or {}, quotes)[ok],
                        minlength=m)  # fmt: skip
    warnings: list[str] = []
    over = np.flatnonzero(filled > qty * (1 + OVERFILL_RTOL) + OVERFILL_ATOL)
    if over.size:
        k = int(over[0])
        n_fills = int(np.sum(idx == k))
        oid = f" (order_id {o['order_id'][k]})" if "order_id" in o else ""
        warnings.append(
            f"{over.size} order(s) matched fills exceeding their quantity (counted as fully "
            f"filled; the excess is ignored); first: row {k}{oid}, {syms_of(o)[k]} "
            f"{'buy' if side[k] > 0 else 'sell'} {qty[k]:.10g} at ts_us {int(o['ts_us'][k])} "
            f"matched {n_fills} fill(s) totalling {filled[k]:.10g}. Fills of other orders may "
            "have been matched to it: give orders and fills an order_id column, or narrow the "
            "matching window"
        )
    first_ts = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(first_ts, idx[ok], f["ts_us"].astype(np.int64)[ok])
    frac = np.minimum(filled / qty, 1.0)
    notional = qty * mid0
    arrival, half, end_mid = mid0.copy(), np.zeros(m), o.get("end_mid", mid0).astype(np.float64)
    syms = o["symbol"].astype(str)
    if quotes is not None:
        for s in np.unique(syms):
            rows = np.flatnonzero(syms == s)
            t_fill = np.where(filled[rows] > 0, first_ts[rows], o["ts_us"][rows]).astype(np.int64)
            b, a = quotes.at(s, t_fill)
            arrival[rows] = np.where(np.isfinite(b + a), 0.5 * (b + a), mid0[rows])
            half[rows] = np.where(np.isfinite(b + a), 0.5 * (a - b), 0.0)
            b2, a2 = quotes.at(s, o["ts_us"][rows].astype(np.int64) + horizon_us)
            end_mid[rows] = np.where(np.isfinite(b2 + a2), 0.5 * (b2 + a2), end_mid[rows])
    live = _shortfall(side, mid0, arrival, half, vwap, frac, fee_q / notional * 1e4, end_mid)
    bt_px = o.get("bt_fill_px", mid0).astype(np.float64)
    bt_fee = o.get("bt_fee", np.zeros(m)).astype(np.float64)
    bt = _shortfall(side, mid0, mid0, np.zeros(m), bt_px, np.ones(m), bt_fee / notional * 1e4,
                    end_mid)  # fmt: skip
    w = notional / notional.sum()
    live_bps = {k: float(np.sum(w * v)) for k, v in live.items()}
    bt_bps = {k: float(np.sum(w * v)) for k, v in bt.items()}
    for d, paid in ((live_bps, funding_live), (bt_bps, funding_backtest)):
        d["funding"] = float(paid) / float(notional.sum()) * 1e4
        d["total"] += d["funding"]
    gap = {k: live_bps[k] - bt_bps[k] for k in live_bps}
    driver = max(COMPONENTS, key=lambda k: abs(gap[k]))
    per_order: dict[str, np.ndarray] = {
        "symbol": syms, "side": side, "qty": qty, "filled": filled, "live_vwap": vwap,
        "decision_mid": mid0, "arrival_mid": arrival, "half_spread_px": half,
        **{f"live_{k}_bps": v for k, v in live.items()},
        **{f"bt_{k}_bps": v for k, v in bt.items()},
    }  # fmt: skip
    fills_summary = {"orders": int(m), "filled": int(np.sum(frac >= 1 - 1e-9)),
                     "partial": int(np.sum((frac > 0) & (frac < 1 - 1e-9))),
                     "unfilled": int(np.sum(frac <= 0)), "fills": int(np.sum(ok)),
                     "fill_rate": float(np.sum(filled * mid0) / np.sum(notional))}  # fmt: skip
    gap_cost = float(np.sum((live["total"] - bt["total"]) * notional) * 1e-4)
    gap_cost += float(funding_live) - float(funding_backtest)
    calib = calibrate_models(live["half_spread"] + live["impact"], qty, mid0,
                             dict(features or {}))  # fmt: skip
    return GapReport(
        per_order,
        live_bps,
        bt_bps,
        gap,
        driver,
        gap_cost / equity if equity else float("nan"),
        unmatched,
        calib,
        fills_summary,
        tuple(warnings),
    )


def _cv_rmse(y: F64, design: F64) -> tuple[float, F64]:
    """Two-fold (even/odd rows) cross-validated RMSE of a least-squares fit, and the
    coefficients fitted on all rows. Out-of-sample, so extra parameters cannot win by
    overfitting."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    if y.size < 4:
        return float(np.sqrt(np.mean((y - design @ coef) ** 2))), np.asarray(coef, np.float64)
    err = np.empty_like(y)
    for fit, test in (
        (slice(0, None, 2), slice(1, None, 2)),
        (slice(1, None, 2), slice(0, None, 2)),
    ):
        c, *_ = np.linalg.lstsq(design[fit], y[fit], rcond=None)
        err[test] = y[test] - design[test] @ c
    return float(np.sqrt(np.mean(err**2))), np.asarray(coef, np.float64)


def calibrate_models(cost_bps: F64, qty: F64, mid: F64,
                     features: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Fit each slippage model to the live per-order execution costs (bps) and rank them.

    Models: ``fixed_bps`` (one constant); ``sqrt_impact`` (cost = c + k * sigma *
    sqrt(qty / adv) * 1e4, c and k by least squares; needs features sigma and adv);
    ``book_walk@<label>`` for every feature named ``book_walk_bps@<label>`` (the cost a book
    walk predicts per order, e.g. at each depth and latency; nothing fitted). Fitted models are
    scored by two-fold cross-validated RMSE; the best model has the lowest RMSE, except that
    sqrt_impact must beat fixed_bps by more than 1% (fewer parameters win ties).

    Returns:
        {model: {"rmse_bps": ..., params...}, "best": model name or None}.
    """
    y = np.asarray(cost_bps, dtype=np.float64)
    ok = np.isfinite(y)
    out: dict[str, Any] = {}
    if ok.sum() == 0:
        return {"best": None}
    rmse, coef = _cv_rmse(y[ok], np.ones((int(ok.sum()), 1)))
    out["fixed_bps"] = {"bps": float(coef[0]), "rmse_bps": rmse}
    if "sigma" in features and "adv" in features:
        x = np.asarray(features["sigma"], float) * np.sqrt(qty / np.asarray(features["adv"], float))
        good = ok & np.isfinite(x)
        if good.sum() >= 3:
            design = np.column_stack([np.ones(good.sum()), x[good] * 1e4])
            rmse, (c0, k) = _cv_rmse(y[good], design)
            out["sqrt_impact"] = {"half_spread_bps": float(c0), "k": float(k), "rmse_bps": rmse}
    for name, pred in features.items():
        if name.startswith("book_walk_bps@"):
            p = np.asarray(pred, dtype=np.float64)
            good = ok & np.isfinite(p)
            if good.sum():
                out["book_walk@" + name.split("@", 1)[1]] = {
                    "rmse_bps": float(np.sqrt(np.mean((y[good] - p[good]) ** 2)))
                }
    best = min(out, key=lambda k: out[k]["rmse_bps"])
    if best == "sqrt_impact" and out["fixed_bps"]["rmse_bps"] <= 1.01 * out[best]["rmse_bps"]:
        best = "fixed_bps"  # within 1%: prefer the model with fewer parameters
    out["best"] = best
    return out
