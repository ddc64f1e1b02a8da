"""Ingest benchmark: Binance archive CSV -> parquet, ours vs pyarrow, polars and pandas.

Cases (files generated deterministically from ``--seed`` in the real USD-M archive format, with
header row, epoch-millisecond times):

- ``klines``: ``--kline-rows`` 1m klines of one symbol (spanning many months -> many partitions);
- ``agg_trades``: ``--rows`` aggregate trades of one symbol within one month.

Tools, each producing the same typed columns (our schema: ``symbol`` string, times
``timestamp[us, UTC]``, float64 prices/quantities, int64 ids/counts, bool flags), zstd parquet:

- ``ours``: ``data.archive.read_archive_csv`` + ``data.store.Store.write`` (hive partitions,
  merge/de-dup checks, manifests, fsync);
- ``ours_zip``: the same reading the file from a ``.zip`` stream (no extraction to disk);
- ``pyarrow``: ``pyarrow.csv.read_csv`` (explicit types) + ``pyarrow.parquet.write_table``;
- ``polars``: ``pl.read_csv`` + ``write_parquet``; ``polars_stream``: ``scan_csv().sink_parquet``;
- ``pandas``: ``pd.read_csv`` (C engine, dtypes given) + ``to_parquet``.

Every tool runs in its own subprocess (``--worker``) so its peak RSS (``ru_maxrss``, and psutil
samples from the parent) is its own. Parity of every tool's output against ours is checked on a
small file of the same format before anything is timed (``--check``).

Run: ``python benchmarks/bench_ingest.py --rows 20000000 --kline-rows 5000000 --repeat 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYMBOL = "BTCUSDT"
TS = pa.timestamp("us", tz="UTC")
T0_MS = 1_704_067_200_000  # 2024-01-01 UTC
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
CHUNK = 1_000_000
TOOLS = ("ours", "ours_zip", "pyarrow", "polars", "polars_stream", "pandas")


@dataclass(frozen=True, slots=True)
class BenchCase:
    """One dataset benchmarked: our ingest vs the anchors, with a parity check."""

    name: str
    ours: str
    anchor: tuple[str, ...]
    check: Callable[[Path, Path], None]


# ---------------------------------------------------------------- data generation
def _agg_chunk(rng: np.random.Generator, start: int, n: int, state: dict[str, float]) -> pa.Table:
    step = rng.integers(-3, 4, n) / 10.0
    price = np.round(state["px"] + np.cumsum(step), 1)
    state["px"] = float(price[-1])
    k = rng.integers(0, 4, n)
    first = int(state["tid"]) + np.concatenate([[0], np.cumsum(k[:-1] + 1)])
    state["tid"] = float(first[-1] + k[-1] + 1)
    t = int(state["t"]) + np.cumsum(rng.integers(0, 250, n))
    state["t"] = float(t[-1])
    return pa.table(
        {
            "agg_trade_id": np.arange(start, start + n, dtype=np.int64),
            "price": price,
            "quantity": np.round(rng.uniform(0.001, 5.0, n), 3),
            "first_trade_id": first,
            "last_trade_id": first + k,
            "transact_time": t,
            "is_buyer_maker": rng.random(n) < 0.5,
        }
    )


def _kline_chunk(rng: np.random.Generator, start: int, n: int, state: dict[str, float]) -> pa.Table:
    ot = T0_MS - 300 * 86_400_000 + (start + np.arange(n, dtype=np.int64)) * 60_000
    close = np.round(state["px"] + np.cumsum(rng.integers(-20, 21, n) / 10.0), 1)
    open_ = np.r_[state["px"], close[:-1]]
    state["px"] = float(close[-1])
    hi = np.round(np.maximum(open_, close) + rng.integers(0, 30, n) / 10.0, 1)
    lo = np.round(np.minimum(open_, close) - rng.integers(0, 30, n) / 10.0, 1)
    vol = np.round(rng.uniform(1, 500, n), 3)
    qv = np.round(vol * (hi + lo) / 2, 4)
    tb = np.round(vol * rng.uniform(0, 1, n), 3)
    return pa.table(
        {
            "open_time": ot,
            "open": open_,
            "high": hi,
            "low": lo,
            "close": close,
            "volume": vol,
            "close_time": ot + 59_999,
            "quote_volume": qv,
            "count": rng.integers(1, 5000, n),
            "taker_buy_volume": tb,
            "taker_buy_quote_volume": np.round(tb * (hi + lo) / 2, 4),
            "ignore": np.zeros(n, dtype=np.int64),
        }
    )


def generate(kind: str, rows: int, seed: int, path: Path) -> Path:
    """Write ``rows`` archive-format rows (header included) to ``path`` deterministically."""
    rng = np.random.default_rng(seed)
    state = {"px": 60_000.0, "tid": 5_000_000_000.0, "t": float(T0_MS)}
    header, make = (KLINE_HEADER, _kline_chunk) if kind == "klines" else (AGG_HEADER, _agg_chunk)
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as fh:
        fh.write((header + "\n").encode())
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            base = 1_000_000_000 if kind == "agg_trades" else 0
            pacsv.write_csv(make(rng, base + start, n, state), fh, opts)
    return path


def zip_of(csv: Path) -> Path:
    out = csv.with_suffix(".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(csv, csv.name)
    return out


# ---------------------------------------------------------------- the tools (run in workers)
def _spec(kind: str) -> tuple[list[str], dict[str, str], list[str]]:
    """(csv column names, {csv column: type}, time columns); ``ignore`` dropped."""
    if kind == "klines":
        names = KLINE_HEADER.split(",")
        types = {c: "f" for c in names}
        types.update({"open_time": "i", "close_time": "i", "count": "i"})
        del types["ignore"]
        return names, types, ["open_time", "close_time"]
    names = AGG_HEADER.split(",")
    types = {c: "i" for c in names}
    types.update({"price": "f", "quantity": "f", "is_buyer_maker": "b"})
    return names, types, ["transact_time"]


RENAME = {"klines": {"count": "trades"}, "agg_trades": {"quantity": "qty", "transact_time": "ts"}}
DATASET = {"klines": "klines_1m", "agg_trades": "agg_trades"}


def run_ours(kind: str, src: Path, out: Path) -> pa.Table:
    from alphaforge.data.archive import read_archive_csv
    from alphaforge.data.store import Store

    table = read_archive_csv(src, DATASET[kind], SYMBOL)
    Store(out).write(table, DATASET[kind], source=f"archive:{src.name}")
    return table


def run_pyarrow(kind: str, src: Path, out: Path) -> pa.Table:
    _, types, tcols = _spec(kind)
    pa_t = {"i": pa.int64(), "f": pa.float64(), "b": pa.bool_()}
    t = pacsv.read_csv(
        src,
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa_t[v] for c, v in types.items()}, include_columns=list(types)
        ),
    )
    cols = {
        RENAME[kind].get(c, c): (pc.multiply(t[c], 1000).cast(TS) if c in tcols else t[c])
        for c in types
    }
    table = pa.table({"symbol": pa.repeat(pa.scalar(SYMBOL), t.num_rows), **cols})
    pq.write_table(table, out / "data.parquet", compression="zstd")
    return table


def run_polars(kind: str, src: Path, out: Path, streaming: bool = False) -> Any:
    import polars as pl

    _, types, tcols = _spec(kind)
    pl_t = {"i": pl.Int64, "f": pl.Float64, "b": pl.Boolean}
    over = {c: pl_t[v] for c, v in types.items()}
    exprs = [pl.lit(SYMBOL).alias("symbol")] + [
        ((pl.col(c) * 1000).cast(pl.Datetime("us", "UTC")) if c in tcols else pl.col(c)).alias(
            RENAME[kind].get(c, c)
        )
        for c in types
    ]
    if streaming:
        pl.scan_csv(src, schema_overrides=over).select(exprs).sink_parquet(
            out / "data.parquet", compression="zstd"
        )
        return None
    df = pl.read_csv(src, schema_overrides=over, columns=list(types)).select(exprs)
    df.write_parquet(out / "data.parquet", compression="zstd")
    return df


def run_pandas(kind: str, src: Path, out: Path) -> Any:
    import pandas as pd

    _, types, tcols = _spec(kind)
    pd_t = {"i": "int64", "f": "float64", "b": "bool"}
    df = pd.read_csv(src, usecols=list(types), dtype={c: pd_t[v] for c, v in types.items()})
    for c in tcols:
        df[c] = pd.to_datetime(df[c], unit="ms", utc=True).astype("datetime64[us, UTC]")
    df = df.rename(columns=RENAME[kind])
    df.insert(0, "symbol", SYMBOL)
    df.to_parquet(out / "data.parquet", engine="pyarrow", compression="zstd", index=False)
    return df


def run_tool(tool: str, kind: str, src: Path, out: Path) -> int:
    """Run one tool once; return the Arrow size (bytes) of the table it built (0 if none)."""
    if tool in ("ours", "ours_zip"):
        t = run_ours(kind, src, out)
        return int(t.nbytes)
    if tool == "pyarrow":
        return int(run_pyarrow(kind, src, out).nbytes)
    if tool in ("polars", "polars_stream"):
        run_polars(kind, src, out, streaming=tool == "polars_stream")
        return 0
    run_pandas(kind, src, out)
    return 0


def worker(args: argparse.Namespace) -> None:
    """Time ``--repeat`` runs of one tool in this process; print JSON to stdout."""
    src = Path(args.file)
    base_rss = _vm("VmRSS")
    times, nbytes = [], 0
    for i in range(args.warmup + args.repeat):
        out = Path(tempfile.mkdtemp(dir=args.scratch))
        t0 = time.perf_counter()
        nbytes = run_tool(args.worker, args.kind, src, out) or nbytes
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
        if i < args.warmup + args.repeat - 1:
            shutil.rmtree(out)
    peak = _vm("VmHWM")
    print(
        json.dumps(
            {
                "times": times,
                "peak_rss": peak,
                "base_rss": base_rss,
                "out": str(out),
                "arrow_bytes": nbytes,
            }
        )
    )


def _vm(field: str) -> int:
    """VmRSS / VmHWM (peak RSS of this process image; ru_maxrss survives exec) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _preimport(tool: str) -> None:
    if tool.startswith("ours"):
        import data.store  # noqa: F401
    elif tool.startswith("polars"):
        import polars  # noqa: F401
    elif tool == "pandas":
        import pandas  # noqa: F401


# ---------------------------------------------------------------- parity and driver
def _normalized(tool: str, kind: str, out: Path, names: list[str]) -> pa.Table:
    if tool.startswith("ours"):
        from alphaforge.data.store import Store

        t = Store(out).read(DATASET[kind])
    else:
        t = pq.read_table(out / "data.parquet")
    missing = sorted(set(names) ^ set(t.column_names))
    if missing:
        raise AssertionError(f"{tool}/{kind}: column sets differ: {missing}")
    t = t.select(names)
    t = t.cast(
        pa.schema(
            [
                pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type)
                for f in t.schema
            ]
        )
    )
    key = "open_time" if kind == "klines" else "agg_trade_id"
    return t.sort_by(key)


def check_parity(kind: str, rows: int, seed: int, scratch: Path) -> None:
    """Every tool's output equals ours (values and types) on a small file of the same format."""
    src = generate(kind, rows, seed, scratch / f"check_{kind}.csv")
    outs = {}
    for tool in TOOLS:
        out = Path(tempfile.mkdtemp(dir=scratch))
        run_tool(tool, kind, zip_of(src) if tool == "ours_zip" else src, out)
        outs[tool] = out
    from alphaforge.data.store import Store

    ref = Store(outs["ours"]).read(DATASET[kind])
    names = ref.column_names
    want = _normalized("ours", kind, outs["ours"], names)
    for tool, out in outs.items():
        got = _normalized(tool, kind, out, names)
        if not got.equals(want):
            raise AssertionError(
                f"{tool}/{kind}: output differs from ours:\n{got.schema}\n"
                f"{want.schema}\n{got.slice(0, 2)}\n{want.slice(0, 2)}"
            )
    if want.num_rows != rows:
        raise AssertionError(f"{kind}: {want.num_rows} rows stored, generated {rows}")


def measure(tool: str, kind: str, src: Path, args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    cmd = [
        sys.executable,
        __file__,
        "--worker",
        tool,
        "--kind",
        kind,
        "--file",
        str(src),
        "--repeat",
        "1",
        "--warmup",
        str(args.warmup),
        "--scratch",
        args.scratch,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    ps, sampled = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            sampled = max(sampled, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.02)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {tool}/{kind} failed with {proc.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(res["out"], ignore_errors=True)
    res["psutil_peak_rss"] = sampled
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000, help="aggTrades rows")
    p.add_argument("--kline-rows", type=int, default=500_000, help="kline rows")
    p.add_argument("--cols", type=int, default=0, help="unused (fixed by the archive format)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="parity of every tool against ours before timing (default on)",
    )
    p.add_argument("--check-rows", type=int, default=100_000)
    p.add_argument("--cases", default="klines,agg_trades")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    p.add_argument("--scratch", default=None, help="directory for generated files")
    args = p.parse_args(argv)
    if args.worker:
        _preimport(args.worker)
        worker(args)
        return 0
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="bench_ingest_"))
    scratch.mkdir(parents=True, exist_ok=True)
    args.scratch = str(scratch)
    cases = [
        BenchCase(k, "ours", tuple(t for t in args.tools.split(",") if t != "ours"), check_parity)
        for k in args.cases.split(",")
    ]
    results: dict[str, Any] = {"machine": _machine(), "cases": {}}
    try:
        for case in cases:
            if args.check:
                case.check(case.name, args.check_rows, args.seed, scratch)  # type: ignore[call-arg]
            rows = args.kline_rows if case.name == "klines" else args.rows
            src = generate(case.name, rows, args.seed, scratch / f"{case.name}.csv")
            zsrc = zip_of(src) if "ours_zip" in case.anchor else None
            src.read_bytes()  # warm the page cache for every tool alike
            res: dict[str, dict[str, Any]] = {}
            # round-robin over tools, one fresh process per (round, tool): a load spike from
            # other processes on the machine then hits every tool alike; best time is kept
            for _ in range(args.repeat):
                for tool in (case.ours, *case.anchor):
                    r = measure(tool, case.name, zsrc if tool == "ours_zip" else src, args)
                    if tool not in res:
                        res[tool] = r
                        continue
                    res[tool]["times"] += r["times"]
                    for k in ("peak_rss", "psutil_peak_rss", "arrow_bytes"):
                        res[tool][k] = max(res[tool][k], r[k])
            results["cases"][case.name] = {
                "rows": rows,
                "csv_bytes": src.stat().st_size,
                "tools": res,
            }
            _print_case(case.name, rows, res, sys.stderr if args.json else sys.stdout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


def _machine() -> dict[str, Any]:
    import polars

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "pyarrow": pa.__version__,
        "polars": polars.__version__,
        "pandas": __import__("pandas").__version__,
        "platform": platform.platform(),
    }


def _print_case(name: str, rows: int, res: dict[str, Any], out: Any) -> None:
    ours = min(res["ours"]["times"])
    arrow = res["ours"]["arrow_bytes"]
    print(f"\n{name}: {rows:,} rows; Arrow table {arrow / 1e6:.0f} MB", file=out)
    print(
        f"{'tool':14} {'best s':>8} {'rows/s':>12} {'vs ours':>8} {'peak RSS MB':>12} "
        f"{'peak-base':>10} {'/arrow':>7}",
        file=out,
    )
    for tool, r in res.items():
        best = min(r["times"])
        extra = r["peak_rss"] - r["base_rss"]
        print(
            f"{tool:14} {best:8.2f} {rows / best:12,.0f} {best / ours:8.2f} "
            f"{r['peak_rss'] / 1e6:12.0f} {extra / 1e6:10.0f} {extra / arrow:7.2f}",
            file=out,
        )


if __name__ == "__main__":
    raise SystemExit(main())
