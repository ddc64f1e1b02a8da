"""The live gap from fills as Binance gives them: a backtest on the real NEXOUSDT recording writes
its orders (`backtest --orders-out`); the live fills of those orders are built from the real
trades of the recording (each order takes the market's real aggressor prints on its side after a
latency, until filled or a minute has passed, so orders fill in several parts and some only
partly) and written in Binance's own user-trade layouts (REST myTrades JSON, the account's
trade-history export CSV); `gap` reads them as they are: BNB fees priced by `--fee-price` or from
the store's BNBUSDT klines, several fills per order aggregated, overfills warned about, and every
slippage model calibrated with `--store`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

import alphaforge as af
from alphaforge.data.recordings import read_hftbacktest
from alphaforge.data.user_trades import detect_layout, read_user_trades
from tests.e2e.conftest import run_cli

FILES = ("spot/nexousdt_20240723.dat.gz", "spot/nexousdt_20240724.dat.gz")
BNB = 550.0


@pytest.fixture(scope="module")
def setup(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gap")
    store = af.Store(root / "store")
    assert store.ingest(*(real_dir / "binance_ws_hftbacktest" / f for f in FILES),
                        market="spot").ok  # fmt: skip
    bt = run_cli(["backtest", "book_imbalance", "--store", "store", "--market", "spot",
                  "--scheme", "sign", "--capital", "10000", "--slippage", "book_walk",
                  "--start", "2024-07-24 02:00", "--end", "2024-07-24 08:00",
                  "--orders-out", "orders.csv", "--json"], root)  # fmt: skip
    assert json.loads(bt.stdout)["data"]["orders_out"] == "orders.csv"
    orders = pacsv.read_csv(root / "orders.csv").to_pydict()
    trades = read_hftbacktest([real_dir / "binance_ws_hftbacktest" / f for f in FILES]).trades
    live = fills_from_real_trades(orders, trades)
    return {"root": root, "orders": orders, "live": live}


def fills_from_real_trades(orders: dict, trades, latency_us: int = 500_000,
                           window_us: int = 60_000_000, lot: float = 0.1) -> dict:  # fmt: skip
    """Each order takes the recording's real aggressor trades on its side (buyer-initiated for a
    buy) from decision + latency, trade by trade, until filled or ``window_us`` has passed;
    orders under the exchange's lot size (0.1 NEXO) are rejected (no fill). Fees 7.5 bps."""
    t = np.asarray(trades["ts"].cast("int64").to_numpy())
    px = np.asarray(trades["price"].to_numpy())
    q = np.asarray(trades["qty"].to_numpy())
    buyer = ~np.asarray(trades["is_buyer_maker"].to_numpy(zero_copy_only=False), dtype=bool)
    order = np.argsort(t, kind="stable")
    t, px, q, buyer = t[order], px[order], q[order], buyer[order]
    out: dict[str, list] = {k: [] for k in ("ts_us", "symbol", "side", "qty", "price", "fee",
                                            "order_id")}  # fmt: skip
    for oid, ts0, side, qty, sym in zip(orders["order_id"], orders["ts_us"], orders["side"],
                                        orders["qty"], orders["symbol"], strict=True):  # fmt: skip
        if qty < lot:
            continue
        sgn = 1.0 if side == "buy" else -1.0
        lo = int(np.searchsorted(t, ts0 + latency_us))
        hi = int(np.searchsorted(t, ts0 + latency_us + window_us))
        left = float(qty)
        for k in range(lo, hi):
            if left <= 1e-12 or buyer[k] != (sgn > 0):
                continue
            take = min(left, float(q[k]))
            left -= take
            for key, v in (("ts_us", int(t[k])), ("symbol", sym), ("side", sgn), ("qty", take),
                           ("price", float(px[k])), ("fee", take * float(px[k]) * 7.5e-4),
                           ("order_id", int(oid))):  # fmt: skip
                out[key].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def _rest_rows(live: dict) -> list[dict]:
    """The fills as GET /api/v3/myTrades returns them: strings, ms times, isBuyer, BNB fees."""
    rows = []
    for i in range(live["qty"].size):
        q, price = float(live["qty"][i]), float(live["price"][i])
        rows.append({
            "symbol": str(live["symbol"][i]), "id": 1000 + i,
            "orderId": int(live["order_id"][i]), "orderListId": -1,
            "price": f"{price:.8f}", "qty": f"{q:.8f}", "quoteQty": f"{q * price:.8f}",
            "commission": f"{live['fee'][i] / BNB:.12f}", "commissionAsset": "BNB",
            "time": int(live["ts_us"][i] // 1000), "isBuyer": bool(live["side"][i] > 0),
            "isMaker": False, "isBestMatch": True,
        })  # fmt: skip
    return rows


def test_gap_reads_rest_my_trades_with_bnb_fees_and_partial_fills(setup: dict) -> None:
    root, live = setup["root"], setup["live"]
    assert live["qty"].size >= 10
    (root / "my_trades.json").write_text(json.dumps(_rest_rows(live)))
    assert detect_layout(root / "my_trades.json") == "rest_json"
    fills = read_user_trades(root / "my_trades.json")
    assert fills["fee_asset"].tolist() == ["BNB"] * fills["qty"].size
    args = ["gap", "--orders", "orders.csv", "--fills", "my_trades.json", "--window-s", "600"]
    missing = run_cli([*args, "--json"], root, check=False)
    assert missing.returncode == 2
    assert "--fee-price BNB=<price>" in json.loads(missing.stdout)["error"]
    doc = json.loads(run_cli([*args, "--fee-price", f"BNB={BNB}", "--json"], root).stdout)
    o = setup["orders"]
    notional = np.asarray(o["qty"]) * np.asarray(o["decision_mid"])
    # the live fee component: the BNB fees back in USDT over the intended notional
    assert doc["live_bps"]["fees"] == pytest.approx(live["fee"].sum() / notional.sum() * 1e4,
                                                    rel=1e-6)  # fmt: skip
    assert doc["fills"]["fills"] == live["qty"].size
    filled = doc["fills"]["filled"] + doc["fills"]["partial"]
    assert filled == len(set(live["order_id"].tolist()))
    assert doc["fills"]["orders"] == len(o["order_id"])
    got = np.asarray(doc["orders"]["filled"])
    ids, per = np.unique(live["order_id"], return_counts=True)
    many = ids[per > 1]
    assert many.size >= 3  # orders that took several real prints
    for oid in many[:5]:
        want = live["qty"][live["order_id"] == oid].sum()
        assert got[int(oid)] == pytest.approx(want, rel=1e-7)  # several fills, one order
    assert doc["fills"]["partial"] + doc["fills"]["unfilled"] >= 1
    assert doc["warnings"] == []
    text = run_cli([*args, "--fee-price", f"BNB={BNB}"], root).stdout
    assert f"orders: {len(o['order_id'])} (" in text


def test_the_trade_history_export_gives_the_same_gap(setup: dict) -> None:
    root, live = setup["root"], setup["live"]
    rows = _rest_rows(live)
    with open(root / "export.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Date(UTC)", "Pair", "Side", "Price", "Executed", "Amount", "Fee"])
        for r in rows:
            t = np.datetime64(r["time"] // 1000, "s").astype(str).replace("T", " ")
            w.writerow([t, r["symbol"], "BUY" if r["isBuyer"] else "SELL", r["price"],
                        f"{r['qty']}NEXO", f"{r['quoteQty']}USDT",
                        f"{r['commission']}BNB"])  # fmt: skip
    (root / "my_trades1.json").write_text(json.dumps(rows))
    assert detect_layout(root / "export.csv") == "export_csv"
    base = ["gap", "--orders", "orders.csv", "--window-s", "600", "--fee-price", f"BNB={BNB}",
            "--json"]  # fmt: skip
    a = json.loads(run_cli([*base, "--fills", "export.csv"], root).stdout)
    b = json.loads(run_cli([*base, "--fills", "my_trades1.json"], root).stdout)
    # the export has whole seconds and no order id: matched by symbol, side and time instead
    assert a["fills"]["fills"] == b["fills"]["fills"]
    assert a["live_bps"]["fees"] == pytest.approx(b["live_bps"]["fees"], rel=1e-6)
    assert a["fills"]["filled"] + a["fills"]["partial"] >= 1


def test_an_order_matched_to_more_than_it_asked_for_is_warned_about(setup: dict) -> None:
    root, live, o = setup["root"], setup["live"], setup["orders"]
    rows = _rest_rows(live)
    full = next(r for r in rows if sum(float(x["qty"]) for x in rows
                                       if x["orderId"] == r["orderId"])
                >= o["qty"][r["orderId"]] * (1 - 1e-9))  # a fully filled order  # fmt: skip
    rows.append({**full, "id": 99, "time": full["time"] + 5})  # a fill of some other order
    (root / "over.json").write_text(json.dumps(rows))
    res = run_cli(["gap", "--orders", "orders.csv", "--fills", "over.json", "--fee-price",
                   f"BNB={BNB}", "--json"], root)  # fmt: skip
    (warning,) = json.loads(res.stdout)["warnings"]
    assert f"order_id {full['orderId']}" in warning
    assert "exceeding their quantity" in warning
    text = run_cli(["gap", "--orders", "orders.csv", "--fills", "over.json", "--fee-price",
                    f"BNB={BNB}"], root).stdout  # fmt: skip
    assert "WARNING: 1 order(s) matched fills exceeding" in text


def test_store_calibrates_every_model_and_backtest_fills_close_the_loop(setup: dict) -> None:
    root, live = setup["root"], setup["live"]
    (root / "my_trades2.json").write_text(json.dumps(_rest_rows(live)))
    doc = json.loads(run_cli(["gap", "--orders", "orders.csv", "--fills", "my_trades2.json",
                              "--fee-price", f"BNB={BNB}", "--store", "store", "--market",
                              "spot", "--window-s", "600", "--json"], root).stdout)  # fmt: skip
    assert {"fixed_bps", "sqrt_impact", "book_walk@decision"} <= set(doc["calibration"])
    for model in ("fixed_bps", "sqrt_impact", "book_walk@decision"):
        assert np.isfinite(doc["calibration"][model]["rmse_bps"])
    # the backtest's own fills, written by the same command as its orders, give no gap
    run_cli(["backtest", "book_imbalance", "--store", "store", "--market", "spot", "--scheme",
             "sign", "--capital", "10000", "--slippage", "book_walk", "--start",
             "2024-07-24 02:00", "--end", "2024-07-24 08:00", "--orders-out", "o2.csv",
             "--fills-out", "f2.csv"], root)  # fmt: skip
    same = json.loads(run_cli(["gap", "--orders", "o2.csv", "--fills", "f2.csv", "--window-s",
                               "600", "--json"], root).stdout)  # fmt: skip
    assert abs(same["gap_bps"]["total"]) < 1e-6
    assert same["fills"]["unfilled"] == 0


def test_bad_user_trade_rows_are_named(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(
        json.dumps(
            [
                {
                    "symbol": "BTCUSDT",
                    "price": "1",
                    "qty": "x",
                    "time": 1,
                    "commission": "0",
                    "commissionAsset": "USDT",
                    "isBuyer": True,
                }
            ]
        )
    )
    with pytest.raises(Exception, match=r"t.json: trade 1: field 'qty' = 'x' is not a number"):
        read_user_trades(p)
    p = tmp_path / "e.csv"
    p.write_text("Date(UTC),Pair,Side,Price,Executed,Amount,Fee\n"
                 "2024-07-24 02:00:01,NEXOUSDT,BUY,1.2,5NEXO,6USDT,0.01BNB\n"
                 "2024-07-24 02:00:02,NEXOUSDT,HOLD,1.2,5NEXO,6USDT,0.01BNB\n")  # fmt: skip
    with pytest.raises(Exception, match=r"e.csv: line 3: field Side 'HOLD'"):
        read_user_trades(p)


def test_bnb_fees_priced_from_the_stores_real_bnb_klines(real_dir: Path, tmp_path: Path) -> None:
    """A store holding the real BTCUSDT and BNBUSDT hourly klines (CryptoDataDownload, 2021):
    fills paid in BNB are priced at the close of the stored BNBUSDT bar each fill falls in."""
    cdd = real_dir / "cryptodatadownload"
    store = af.Store(tmp_path / "store")
    assert store.ingest(cdd / "Binance_BTCUSDT_1h.csv.gz", cdd / "Binance_BNBUSDT_1h.csv.gz",
                        market="spot").ok  # fmt: skip
    panel = store.panel(["BNBUSDT", "BTCUSDT"], interval="1h", market="spot",
                        start="2021-06-01", end="2021-06-02")  # fmt: skip
    bnb, btc = panel["close"][:, 0], panel["close"][:, 1]
    rows, orders = [], ["order_id,ts_us,symbol,side,qty,decision_mid"]
    for k, r in enumerate(range(2, 20, 3)):  # six orders, one an hour apart
        side = 1 if k % 2 == 0 else -1
        ts = int(panel.ts_us[r])
        orders.append(f"{k},{ts},BTCUSDT,{'buy' if side > 0 else 'sell'},0.5,{btc[r]}")
        px = btc[r] * (1 + side * 2e-4)
        fee_bnb = 0.5 * px * 7.5e-4 / bnb[r + 1]
        rows.append({"symbol": "BTCUSDT", "id": k, "orderId": k, "price": f"{px:.2f}",
                     "qty": "0.5", "commission": f"{fee_bnb:.10f}", "commissionAsset": "BNB",
                     "time": (ts + 30_000_000) // 1000, "isBuyer": side > 0})  # fmt: skip
    (tmp_path / "orders.csv").write_text("\n".join(orders) + "\n")
    (tmp_path / "trades.json").write_text(json.dumps(rows))
    args = ["gap", "--orders", "orders.csv", "--fills", "trades.json", "--json"]
    bad = run_cli(args, tmp_path, check=False)
    assert bad.returncode == 2
    assert "--fee-price BNB" in json.loads(bad.stdout)["error"]
    doc = json.loads(run_cli([*args, "--store", "store", "--market", "spot"], tmp_path).stdout)
    notional = 0.5 * sum(btc[r] for r in range(2, 20, 3))
    paid = sum(float(x["commission"]) * bnb[r + 1]
               for x, r in zip(rows, range(2, 20, 3), strict=True))  # fmt: skip
    assert doc["live_bps"]["fees"] == pytest.approx(paid / notional * 1e4, rel=1e-6)
    assert doc["live_bps"]["impact"] == pytest.approx(2.0, rel=1e-3)
