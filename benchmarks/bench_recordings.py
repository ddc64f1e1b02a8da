"""Recording-reader benchmark: ``data.recordings.read_hftbacktest`` on the real recordings.

Case ``hftbacktest``: read one collector file of ../shared/data/real/binance_ws_hftbacktest
(default: the largest, USD-M BTCUSDT 2024-08-08, 93,954 lines, 3.6 MB gzipped) into the
declared tables, vs the obvious anchor a user would write: stdlib ``json`` per line, Python
floats per level, then ``pandas.DataFrame`` per table (depth levels, trades, bookTicker).
Parity (``--check``): identical depth prices/quantities/sides and trade ids. ``--rows`` keeps
the first N lines (0 = all); ``--cols`` and ``--seed`` are accepted for the common interface
and unused (the data is real). No numba, so no JIT time.

Run: ``python benchmarks/bench_recordings.py --repeat 3 --check``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphaforge.data.recordings import read_hftbacktest  # noqa: E402
from benchmarks.common import best_of  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real" / "binance_ws_hftbacktest"
DEFAULT_FILE = REAL / "usdm" / "btcusdt_20240808.gz"


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One timed comparison: ours vs an anchor, with a parity check run first."""

    name: str
    ours: Callable[[], Any]
    anchor: Callable[[], Any]
    check: Callable[[Any, Any], None]
    lines: int


def anchor_read(path: Path) -> dict[str, pd.DataFrame]:
    """The straightforward reader: json.loads per line, Python lists, pandas frames."""
    depth: dict[str, list[Any]] = {"price": [], "qty": [], "is_bid": [], "u": []}
    trades: dict[str, list[Any]] = {"trade_id": [], "price": [], "qty": []}
    ticker: dict[str, list[Any]] = {"u": [], "bid_px": [], "ask_px": []}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            _, _, body = line.partition(" ")
            msg = json.loads(body)
            if "stream" not in msg:
                levels = [(True, lv) for lv in msg["bids"]] + [(False, lv) for lv in msg["asks"]]
                uid = msg["lastUpdateId"]
            elif "@depth" in msg["stream"]:
                d = msg["data"]
                levels = [(True, lv) for lv in d["b"]] + [(False, lv) for lv in d["a"]]
                uid = d["u"]
            else:
                d = msg["data"]
                if msg["stream"].endswith("@trade"):
                    trades["trade_id"].append(d["t"])
                    trades["price"].append(float(d["p"]))
                    trades["qty"].append(float(d["q"]))
                elif msg["stream"].endswith("@bookTicker"):
                    ticker["u"].append(d["u"])
                    ticker["bid_px"].append(float(d["b"]))
                    ticker["ask_px"].append(float(d["a"]))
                continue
            for is_bid, (p, q) in levels:
                depth["price"].append(float(p))
                depth["qty"].append(float(q))
                depth["is_bid"].append(is_bid)
                depth["u"].append(uid)
    return {"depth": pd.DataFrame(depth), "trades": pd.DataFrame(trades),
            "ticker": pd.DataFrame(ticker)}  # fmt: skip


def parity(ours: Any, anchor: dict[str, pd.DataFrame]) -> None:
    d = ours.depth_updates
    np.testing.assert_array_equal(d["price"].to_numpy(), anchor["depth"]["price"].to_numpy())
    np.testing.assert_array_equal(d["qty"].to_numpy(), anchor["depth"]["qty"].to_numpy())
    np.testing.assert_array_equal(
        d["is_bid"].to_numpy(zero_copy_only=False), anchor["depth"]["is_bid"].to_numpy()
    )
    np.testing.assert_array_equal(
        ours.trades["trade_id"].to_numpy(), anchor["trades"]["trade_id"].to_numpy()
    )
    assert ours.book_ticker.num_rows == len(anchor["ticker"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=0, help="first N lines of the file (0 = all)")
    ap.add_argument("--cols", type=int, default=1, help="unused (one symbol per recording)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="unused (real data)")
    ap.add_argument("--check", action="store_true", help="check parity before timing")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    args = ap.parse_args(argv)
    if not args.file.is_file():
        raise SystemExit(f"{args.file} is absent: this benchmark reads the real recordings")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        if args.rows:
            lines = lines[: args.rows]
            path = Path(tmp) / path.name
            path.write_bytes(gzip.compress("\n".join(lines).encode(), compresslevel=1))
        case = BenchCase("hftbacktest", lambda: read_hftbacktest(path),
                         lambda: anchor_read(path), parity, len(lines))  # fmt: skip
        if args.check:
            case.check(case.ours(), case.anchor())
        ours, ours_cpu = best_of(case.ours, args.repeat, args.warmup)
        anchor, anchor_cpu = best_of(case.anchor, args.repeat, args.warmup)
    out = {
        "machine": {"python": platform.python_version(), "pandas": pd.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_1m": os.getloadavg()[0]},
        "file": str(args.file.name), "lines": case.lines,
        "cases": {case.name: {"ours_s": round(ours, 4), "anchor_s": round(anchor, 4),
                              "ours_cpu_s": round(ours_cpu, 4),
                              "anchor_cpu_s": round(anchor_cpu, 4),
                              "ours_lines_per_cpu_s": round(case.lines / ours_cpu),
                              "anchor_over_ours_cpu": round(anchor_cpu / ours_cpu, 2)}},
    }  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        rate = case.lines / ours_cpu
        print(f"{case.name}: {case.lines} lines | wall ours {ours:.3f} s anchor {anchor:.3f} s"
              f" | cpu ours {ours_cpu:.3f} s anchor {anchor_cpu:.3f} s anchor/ours "
              f"{anchor_cpu / ours_cpu:.2f} ({rate:,.0f} lines/cpu s)")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
