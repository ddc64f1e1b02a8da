"""``alphaforge validate --reconcile``: klines vs aggTrades and spot vs futures from the store,
two kline files (archive vs REST export), JSON output, exit codes, errors for missing inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.data.schemas import AGG_TRADES
from alphaforge.data.store import Store
from alphaforge.data.synthetic import generate_market

runner = CliRunner()
IV = 60_000_000
N_BARS = 600
SYMS = ("SYN000USDT", "SYN001USDT")


def _klines(market: str = "usdm", n_bars: int = N_BARS) -> pa.Table:
    kl = generate_market(
        n_symbols=2,
        n_bars=n_bars,
        book_levels=0,
        planted_ic=0.0,
        market=market,  # type: ignore[arg-type]
    ).klines
    # four aggTrades (open, high, low, close) per bar need >= 4 trades behind them
    trades = np.maximum(np.asarray(kl["trades"]), 4)
    return kl.set_column(kl.schema.get_field_index("trades"), "trades", pa.array(trades))


def _agg_from_klines(kl: pa.Table) -> pa.Table:
    """Per bar four aggTrades at +0/10/20/30 s priced open, high, low, close; the qty sums to
    the bar's volume and the trade ids cover exactly the bar's trade count."""
    n = kl.num_rows
    ot = np.asarray(kl["open_time"].cast(pa.int64()))
    px = np.stack([np.asarray(kl[c]) for c in ("open", "high", "low", "close")], axis=1)
    qty = np.repeat(np.asarray(kl["volume"])[:, None] / 4.0, 4, axis=1)
    cnt = np.ones((n, 4), dtype=np.int64)
    cnt[:, 0] = np.asarray(kl["trades"]) - 3
    last = np.cumsum(cnt.ravel())
    return pa.table(
        {
            "symbol": np.repeat(np.asarray(kl["symbol"].to_pylist(), dtype=object), 4).tolist(),
            "agg_trade_id": np.arange(4 * n, dtype=np.int64),
            "price": px.ravel(),
            "qty": qty.ravel(),
            "first_trade_id": last - cnt.ravel() + 1,
            "last_trade_id": last,
            "ts": pa.array((ot[:, None] + np.array([0, 10, 20, 30]) * 1_000_000).ravel()).cast(
                AGG_TRADES.field("ts").type
            ),
            "is_buyer_maker": np.zeros(4 * n, dtype=bool),
        }
    ).cast(AGG_TRADES)


def _set(t: pa.Table, col: str, row: int, fn: Any) -> pa.Table:
    x = np.asarray(t[col]).copy()
    x[row] = fn(x[row])
    return t.set_column(t.schema.get_field_index(col), col, pa.array(x))


def _iso(t: pa.Table, row: int) -> str:
    us = int(t["open_time"].cast(pa.int64())[row].as_py())
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat()[:19]


def _run(*args: str | Path) -> Any:
    return runner.invoke(app, ["validate", *[str(a) for a in args]])


def _reports(res: Any) -> dict[str, dict[str, Any]]:
    doc = json.loads(res.stdout)
    return {r["source"].rsplit(" ", 1)[-1]: r for r in doc["reports"]}


def _check(rep: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in rep["checks"] if c["name"] == name)


@pytest.fixture(scope="module")
def synth() -> tuple[pa.Table, pa.Table]:
    kl = _klines()
    return kl, _agg_from_klines(kl)


def _store(root: Path, kl: pa.Table, agg: pa.Table | None) -> Path:
    st = Store(root)
    st.write(kl, "klines_1m", market="usdm", source="test")
    if agg is not None:
        st.write(agg, "agg_trades", market="usdm", source="test")
    return root


KVA = ("--reconcile", "klines-vs-aggtrades", "--market", "usdm", "--interval", "1m")


def test_klines_vs_agg_trades_clean(synth: tuple[pa.Table, pa.Table], tmp_path: Path) -> None:
    root = _store(tmp_path / "s", *synth)
    res = _run(*KVA, "--store", root, "--symbols", ",".join(SYMS), "--json")
    assert res.exit_code == 0, res.output
    reps = _reports(res)
    assert set(reps) == set(SYMS)
    for r in reps.values():
        assert r["worst_severity"] is None, r
        assert r["expected"] == N_BARS - 2  # first and last bar of the trades may be partial
        assert r["completeness"] == 1.0


def test_klines_vs_agg_trades_planted_at_the_right_bar(
    synth: tuple[pa.Table, pa.Table], tmp_path: Path
) -> None:
    kl, agg = synth
    # rows N_BARS.. are SYN001USDT: plant there so the row index is per symbol
    bad = _set(kl, "high", N_BARS + 300, lambda h: h + 0.5)
    bad = _set(bad, "volume", N_BARS + 123, lambda v: v * 1.01)
    root = _store(tmp_path / "s", bad, agg)
    res = _run(*KVA, "--store", root, "--symbols", ",".join(SYMS), "--json")
    assert res.exit_code == 1, res.output
    reps = _reports(res)
    assert reps["SYN000USDT"]["worst_severity"] is None
    r = reps["SYN001USDT"]
    ohlc = _check(r, "recon_ohlc_mismatch")
    assert ohlc["count"] == 1
    assert ohlc["rows"][0]["row"] == 300
    assert ohlc["rows"][0]["ts"].startswith(_iso(bad, N_BARS + 300))
    assert ohlc["rows"][0]["kline_high"] == pytest.approx(
        float(kl["high"][N_BARS + 300].as_py()) + 0.5
    )
    vol = _check(r, "recon_volume_mismatch")
    assert [x["row"] for x in vol["rows"]] == [123]
    assert r["flagged"] == 2
    # table output and --fail-on: the same findings, exit 1 at error and above
    res = _run(*KVA, "--store", root, "--symbols", "SYN001USDT")
    assert res.exit_code == 1
    assert "recon_ohlc_mismatch" in res.output
    assert "recon_volume_mismatch" in res.output
    res = _run(*KVA, "--store", root, "--symbols", "SYN000USDT", "--fail-on", "warning")
    assert res.exit_code == 0, res.output


def test_trades_missing_from_one_bar(synth: tuple[pa.Table, pa.Table], tmp_path: Path) -> None:
    kl, agg = synth
    ts = np.asarray(agg["ts"].cast(pa.int64()))
    bar = int(kl["open_time"].cast(pa.int64())[40].as_py())
    gone = agg.filter(pa.array((ts < bar) | (ts >= bar + IV)))
    root = _store(tmp_path / "s", kl, gone)
    res = _run(*KVA, "--store", root, "--symbols", "SYN000USDT", "--json")
    assert res.exit_code == 1, res.output
    r = _reports(res)["SYN000USDT"]
    assert [x["row"] for x in _check(r, "recon_bar_without_trades")["rows"]] == [40]


def test_missing_dataset_and_bad_arguments_exit_2(
    synth: tuple[pa.Table, pa.Table], tmp_path: Path
) -> None:
    kl, _ = synth
    root = _store(tmp_path / "s", kl, None)
    res = _run(*KVA, "--store", root, "--symbols", "SYN000USDT")
    assert res.exit_code == 2
    assert "agg_trades" in res.output
    assert "SYN000USDT" in res.output
    res = _run(*KVA, "--store", root)
    assert res.exit_code == 2
    assert "--symbols" in res.output
    res = _run(*KVA, "--store", root, "--symbols", "NOPEUSDT")
    assert res.exit_code == 2
    assert "NOPEUSDT" in res.output
    assert "klines_1m" in res.output
    res = _run("--reconcile", "klines-vs-aggtrades", "--store", root, "--symbols", "SYN000USDT",
               "--interval", "7m")  # fmt: skip
    assert res.exit_code == 2
    assert "7m" in res.output
    res = _run("--reconcile", "kline-vs-trades", "--store", root, "--symbols", "SYN000USDT")
    assert res.exit_code == 2
    assert "klines-vs-aggtrades" in res.output
    res = _run("--reconcile", "spot-vs-futures", "--store", root, "--symbols", "SYN000USDT")
    assert res.exit_code == 2
    assert "spot" in res.output


def test_spot_vs_futures_basis_outlier(tmp_path: Path) -> None:
    spot, fut = _klines("spot", 800), _klines("usdm", 800)
    st = Store(tmp_path / "s")
    st.write(spot, "klines_1m", market="spot", source="test")
    st.write(fut, "klines_1m", market="usdm", source="test")
    args = ("--reconcile", "spot-vs-futures", "--store", tmp_path / "s", "--symbols",
            "SYN000USDT", "--basis-window", "240", "--json")  # fmt: skip
    res = _run(*args, "--fail-on", "warning")
    assert res.exit_code == 0, res.output
    assert _check(_reports(res)["SYN000USDT"], "basis_outlier")["count"] == 0
    st2 = Store(tmp_path / "s2")
    st2.write(spot, "klines_1m", market="spot", source="test")
    st2.write(_set(fut, "close", 500, lambda c: c * 1.03), "klines_1m", market="usdm",
              source="test")  # fmt: skip
    args = (*args[:3], tmp_path / "s2", *args[4:])
    res = _run(*args)
    assert res.exit_code == 0, res.output  # an outlier is a warning
    res = _run(*args, "--fail-on", "warning")
    assert res.exit_code == 1
    out = _check(_reports(res)["SYN000USDT"], "basis_outlier")
    assert [x["row"] for x in out["rows"]] == [500]
    assert out["rows"][0]["basis_bps"] == pytest.approx(300.0, rel=1e-9)


def test_files_archive_vs_rest(synth: tuple[pa.Table, pa.Table], tmp_path: Path) -> None:
    kl = synth[0].slice(0, N_BARS)  # SYN000USDT
    a, b = tmp_path / "archive.parquet", tmp_path / "rest.parquet"
    pq.write_table(kl, a)
    rest = _set(kl.slice(100, 200), "close", 50, lambda c: c + 0.01)  # row 150 of a
    rest = rest.filter(pa.array(np.arange(rest.num_rows) != 120))  # row 220 of a
    pq.write_table(rest, b)
    res = _run("--reconcile", "files", a, b, "--json")
    assert res.exit_code == 1, res.output
    (r,) = json.loads(res.stdout)["reports"]
    assert r["expected"] == 200
    assert [x["row"] for x in _check(r, "value_mismatch")["rows"]] == [150]
    assert "close" in _check(r, "value_mismatch")["description"]
    assert [x["row"] for x in _check(r, "only_in_a")["rows"]] == [220]
    assert _check(r, "only_in_b")["count"] == 0
    pq.write_table(kl.slice(100, 200), b)
    res = _run("--reconcile", "files", a, b)
    assert res.exit_code == 0, res.output


def test_files_errors(synth: tuple[pa.Table, pa.Table], tmp_path: Path) -> None:
    kl = synth[0]
    a, b, c = (tmp_path / f"{x}.parquet" for x in "abc")
    pq.write_table(kl.slice(0, 100), a)
    pq.write_table(kl.slice(N_BARS, 100), b)  # the other symbol
    pq.write_table(kl.slice(300, 100), c)  # SYN000USDT, no time overlap with a
    res = _run("--reconcile", "files", a, b)
    assert res.exit_code == 2
    assert "SYN001USDT" in res.output
    res = _run("--reconcile", "files", a, c)
    assert res.exit_code == 2
    assert "overlap" in res.output
    res = _run("--reconcile", "files", a)
    assert res.exit_code == 2
    assert "exactly 2" in res.output
    res = _run("--reconcile", "files", a, tmp_path / "none.parquet")
    assert res.exit_code == 2
    assert "none.parquet" in res.output
    res = _run("--reconcile", "files", a, c, "--repair", tmp_path / "out.parquet")
    assert res.exit_code == 2
    assert "--repair" in res.output
    assert not (tmp_path / "out.parquet").exists()
    res = _run("--reconcile", "klines-vs-aggtrades", a, "--symbols", "SYN000USDT")
    assert res.exit_code == 2
    assert "--store" in res.output


@pytest.mark.shared
def test_real_agg_trades_vs_independent_klines(real_dir: Path, tmp_path: Path) -> None:
    from tests.data.test_validate_reconcile import _klines_from, _pandas_klines
    from tests.data.test_validate_streams import _agg

    agg = _agg(real_dir)
    kl = _klines_from(_pandas_klines(agg))  # pandas resample, not the code under test
    st = Store(tmp_path / "s")
    st.write(agg, "agg_trades", market="spot", source="test")
    st.write(_set(kl, "low", 77, lambda x: x * 0.999), "klines_1m", market="spot", source="t")
    res = _run("--reconcile", "klines-vs-aggtrades", "--store", tmp_path / "s", "--market",
               "spot", "--symbols", "XRPETH", "--json")  # fmt: skip
    assert res.exit_code == 1, res.output
    r = _reports(res)["XRPETH"]
    assert r["expected"] == kl.num_rows - 2
    assert [x["row"] for x in _check(r, "recon_ohlc_mismatch")["rows"]] == [77]
    assert r["flagged"] == 1


@pytest.mark.shared
def test_files_real_archive_csv_vs_parquet_export(real_dir: Path, tmp_path: Path) -> None:
    from alphaforge.data.archive import read_archive_path

    csv = real_dir / "binance_spot_klines" / "BTCUSDT-1h-2022-01.csv"
    rest = read_archive_path(csv, "klines_1h").slice(100, 300)  # a REST pull of part of it
    rest = _set(rest, "volume", 7, lambda v: v + 1.0)  # row 107 of the archive
    out = tmp_path / "rest.parquet"
    pq.write_table(rest, out)
    res = _run("--reconcile", "files", csv, out, "--json")
    assert res.exit_code == 1, res.output
    (r,) = json.loads(res.stdout)["reports"]
    assert r["expected"] == 300
    assert [x["row"] for x in _check(r, "value_mismatch")["rows"]] == [107]
    assert "volume" in _check(r, "value_mismatch")["description"]
    assert _check(r, "only_in_a")["count"] == _check(r, "only_in_b")["count"] == 0
