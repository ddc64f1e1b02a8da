"""The live gap from fills as Binance gives them: a backtest on the real NEXOUSDT recording writes
its orders (`backtest --orders-out`), paper-live fills of those orders against the real recorded
book (after a latency) are written in Binance's own user-trade layouts (REST myTrades JSON, the
account's trade-history export CSV), and `gap` reads them as they are: BNB fees priced by
`--fee-price`, partial fills reported, an order matched to more than it asked for refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

import alphaforge as af
from alphaforge.data.user_trades import detect_layout, read_user_trades
from alphaforge.engine.paper_live import LatencyModel, simulate_fills
from alphaforge.engine.slippage import execution_book
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
    panel = store.panel(market="spot", start="2024-07-24 02:00", end="2024-07-24 08:00")
    book = execution_book(panel.book, 0)
    live = simulate_fills({k: np.asarray(v) for k, v in orders.items()}, panel.ts_us,
                          panel.symbols, book, fee_bps=7.5,
                          latency=LatencyModel(500_000, 5_000_000, 3))  # fmt: skip
    # the exchange rejects orders below its lot size (0.1 NEXO): the backtest's small
    # rebalancing orders get no live fill and count as unfilled
    keep = live["qty"] >= 0.1
    live = {k: np.asarray(v)[keep] for k, v in live.items()}
    return {"root": root, "orders": orders, "live": live, "panel": panel}


def _rest_rows(live: dict, split_first: int = 3) -> list[dict]:
    """Paper fills as GET /api/v3/myTrades returns them: strings, ms times, isBuyer, BNB fees
    (the first fill split into ``split_first`` partial fills of one order)."""
    rows = []
    for i in range(live["qty"].size):
        parts = split_first if i == 0 else 1
        for k in range(parts):
            q = live["qty"][i] / parts
            fee_quote = live["fee"][i] / parts
            rows.append({
                "symbol": str(live["symbol"][i]), "id": 1000 + len(rows),
                "orderId": int(live["order_id"][i]), "orderListId": -1,
                "price": f"{live['price'][i]:.8f}", "qty": f"{q:.8f}",
                "quoteQty": f"{q * live['price'][i]:.8f}",
                "commission": f"{fee_quote / BNB:.12f}", "commissionAsset": "BNB",
                "time": int(live["ts_us"][i] // 1000) + k, "isBuyer": bool(live["side"][i] > 0),
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
    assert doc["fills"]["fills"] == live["qty"].size + 2  # the first fill came in three parts
    filled = doc["fills"]["filled"] + doc["fills"]["partial"]
    assert filled == len(set(live["order_id"].tolist()))
    assert doc["fills"]["orders"] == len(o["order_id"])
    got = np.asarray(doc["orders"]["filled"])
    first = int(live["order_id"][0])
    assert got[first] == pytest.approx(live["qty"][0], rel=1e-7)  # three parts = one fill
    text = run_cli([*args, "--fee-price", f"BNB={BNB}"], root).stdout
    assert f"orders: {len(o['order_id'])} (" in text


def test_the_trade_history_export_gives_the_same_gap(setup: dict) -> None:
    root, live = setup["root"], setup["live"]
    rows = _rest_rows(live, split_first=1)
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


def test_an_order_matched_to_more_than_it_asked_for_is_refused(setup: dict) -> None:
    root, live = setup["root"], setup["live"]
    rows = _rest_rows(live, split_first=1)
    rows.append({**rows[0], "id": 99, "time": rows[0]["time"] + 5})  # a fill of another order
    (root / "over.json").write_text(json.dumps(rows))
    res = run_cli(["gap", "--orders", "orders.csv", "--fills", "over.json", "--fee-price",
                   f"BNB={BNB}", "--json"], root, check=False)  # fmt: skip
    assert res.returncode == 2
    err = json.loads(res.stdout)["error"]
    assert f"order_id {rows[0]['orderId']}" in err
    assert "matched 2 fill(s)" in err


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
