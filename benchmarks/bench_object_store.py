"""Object storage: read throughput of a multi-month panel from an S3-compatible server vs the
local store vs Polars and DuckDB scanning the same parquet; driver peak memory of a Dask sweep
whose workers read the store vs today's scatter of the driver's panel. One run, same machine.

    python benchmarks/bench_object_store.py [--symbols 20] [--months 6] [--repeat 3]

The S3 server is moto on loopback (a Python server: its throughput bounds the object-store
figures here, not S3's). DuckDB reads the object store through the Arrow dataset alphaforge
registers (its own S3 reader, the httpfs extension, is downloaded at run time: not used).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from alphaforge.data import schemas

MIN_US = 60_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01


def klines(symbol: str, n: int, seed: int) -> pa.Table:
    """n one-minute bars of a random walk from 2024-01-01 (a plausible compressibility)."""
    rng = np.random.default_rng(seed)
    ot = T0 + np.arange(n, dtype=np.int64) * MIN_US
    px = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    vol = rng.gamma(2.0, 50.0, n)
    return pa.table({
        "symbol": pa.array([symbol] * n), "open_time": pa.array(ot).cast(schemas.TS),
        "open": px, "high": px * 1.001, "low": px * 0.999, "close": px, "volume": vol,
        "close_time": pa.array(ot + MIN_US - 1000).cast(schemas.TS), "quote_volume": vol * px,
        "trades": rng.integers(1, 500, n), "taker_buy_volume": vol / 2,
        "taker_buy_quote_volume": vol * px / 2,
    }, schema=schemas.KLINES)  # fmt: skip


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def read_throughput(args: argparse.Namespace, endpoint: str, tmp: Path) -> None:
    import duckdb
    import polars as pl

    from alphaforge.data.sql import arrow_views
    from alphaforge.data.store import Store
    from alphaforge.data.store_open import open_store

    n = args.months * 30 * 1440
    local = Store(tmp / "local")
    remote = open_store("s3://bench/af")
    t0 = time.perf_counter()
    for i in range(args.symbols):
        t = klines(f"S{i:03d}USDT", n, i)
        local.write(t, "klines_1m")
        remote.write(t, "klines_1m")
    rows = args.symbols * n
    mb = sum(p.file_bytes for p in local.partitions()) / 1e6
    print(f"wrote {rows:,} rows ({mb:.1f} MB parquet, {args.months} months x {args.symbols} "
          f"symbols) to both stores in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    glob = str(tmp / "local" / "exchange=binance/market=usdm/dataset=klines_1m/*/*/*.parquet")
    cols = ["open_time", "close", "volume"]
    cases = {
        "alphaforge Store.read, local": lambda: local.read("klines_1m", columns=cols),
        "alphaforge Store.read, S3 server": lambda: remote.read("klines_1m", columns=cols),
        "polars scan_parquet, local": lambda: (
            pl.scan_parquet(glob, hive_partitioning=True).select(["symbol", *cols]).collect()
        ),
        "duckdb read_parquet, local": lambda: _arrow(
            duckdb.sql(
                f"select symbol, open_time, close, volume from read_parquet('{glob}', "
                "hive_partitioning = true)"
            )
        ),
        "polars scan_parquet, S3 server": lambda: (
            pl.scan_parquet(
                "s3://bench/af/exchange=binance/market=usdm/dataset=klines_1m/*/*/data-*.parquet",
                storage_options={
                    "aws_endpoint_url": endpoint,
                    "aws_allow_http": "true",
                    "aws_access_key_id": "bench",
                    "aws_secret_access_key": "bench",
                    "aws_region": "us-east-1",
                },
            )
            .select(cols)
            .collect()
        ),
        "duckdb over alphaforge's Arrow view, S3 server": lambda: _duck_view(remote, arrow_views),
    }
    print(
        f"load average before reads: {os.getloadavg()}  (MB/s: the dataset's parquet bytes "
        "over the time to read 3 columns + symbol)"
    )
    for label, fn in cases.items():
        sec, out = _best(fn, args.repeat)
        print(f"  {label:48s} {sec:7.3f} s  {rows / sec / 1e6:7.1f} M rows/s  "
              f"{mb / sec:7.1f} MB/s  ({len(out):,} rows)")  # fmt: skip
    print(
        "  (polars on S3 globs every data object, superseded generations included: it is "
        "correct here only because each partition was written once)"
    )
    print(f"load average after reads: {os.getloadavg()}")


def _duck_view(store: Any, arrow_views: Any) -> Any:
    import duckdb

    con = duckdb.connect()
    con.register("k", arrow_views(store)["klines_1m"])
    return _arrow(con.sql("select symbol, open_time, close, volume from k"))


def _arrow(rel: Any) -> pa.Table:
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table  # duckdb < 1.4
    return fetch()


DRIVER = """
import json, sys, threading, time
import distributed
import psutil
import alphaforge as af


class Peak(threading.Thread):
    # the driver process: largest resident set (MB) while running, sampled every 5 ms

    def __init__(self):
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = psutil.Process(), 0.0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss / 1e6)
            time.sleep(0.005)


def main():
    mode, uri, out = sys.argv[1], sys.argv[2], sys.argv[3]
    panel = af.Store(uri).panel(interval="1m")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0",
                                  silence_logs=40) as c, distributed.Client(c) as client:
        before = psutil.Process().memory_info().rss / 1e6
        peak = Peak()
        peak.start()
        t0 = time.perf_counter()
        res = af.sweep(panel, ["mom_20"], {"fee_bps": [0.0, 4.0]}, out, scheduler=client,
                       worker_reads=(mode == "worker_reads"), ledger=out + "/ledger.sqlite")
        wall = time.perf_counter() - t0
        peak.stop.set()
        peak.join()
    print(json.dumps({"mode": mode, "transport": res.transport, "T": panel.T, "N": panel.N,
                      "panel_mb": sum(a.nbytes for a in panel.fields.values()) / 1e6,
                      "rss_before_mb": before, "peak_rss_mb": peak.peak, "sweep_s": wall}))


if __name__ == "__main__":
    main()
"""


def driver_memory(env: dict[str, str], tmp: Path) -> None:
    script = tmp / "driver.py"
    script.write_text(DRIVER)
    print(f"load average before sweeps: {os.getloadavg()}")
    for mode in ("scatter", "worker_reads"):
        out = subprocess.run([sys.executable, str(script), mode, "s3://bench/af",
                              str(tmp / f"res-{mode}")], env=env, capture_output=True,
                             text=True)  # fmt: skip
        if out.returncode:
            raise SystemExit(f"driver ({mode}) failed:\n{out.stderr[-3000:]}")
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  sweep {doc['transport']:13s} panel {doc['T']:,} x {doc['N']} "
              f"({doc['panel_mb']:.0f} MB of fields): driver RSS {doc['rss_before_mb']:.0f} MB "
              f"before the sweep, peak {doc['peak_rss_mb']:.0f} MB during it "
              f"(+{doc['peak_rss_mb'] - doc['rss_before_mb']:.0f} MB), "
              f"{doc['sweep_s']:.1f} s")  # fmt: skip
    print(f"load average after sweeps: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import botocore.session
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[attr-defined]
    env = {"ALPHAFORGE_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}  # fmt: skip
    os.environ.update(env)
    botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="bench",
        aws_secret_access_key="bench").create_bucket(Bucket="bench")  # fmt: skip
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as d:
            read_throughput(args, endpoint, Path(d))
            driver_memory(dict(os.environ), Path(d))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
