"""QualityReport outputs and `alphaforge validate` (files, store, exit codes, repair)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.data.archive import read_archive_path
from alphaforge.data.schemas import KLINES
from alphaforge.data.store import Store
from alphaforge.data.validate import validate_klines
from alphaforge.data.validate_report import CheckResult, QualityReport

IV = 60_000_000
FUT = "binance_futures_klines"


def _bars(n: int, drop: tuple[int, ...] = (), bad_ohlc: tuple[int, ...] = ()) -> pa.Table:
    t0 = 1_700_000_000_000_000 - 1_700_000_000_000_000 % IV
    ot = t0 + IV * np.arange(n, dtype=np.int64)
    keep = np.setdiff1d(np.arange(n), drop)
    px = 100.0 + np.sin(np.arange(n)) * 0.1
    o, h, lo = px.copy(), px + 0.2, px - 0.2
    o[list(bad_ohlc)] = h[list(bad_ohlc)] + 1.0
    v = np.full(n, 2.0)
    t = pa.table(
        {
            "symbol": ["TESTUSDT"] * n,
            "open_time": pa.array(ot).cast(KLINES.field("open_time").type),
            "open": o,
            "high": h,
            "low": lo,
            "close": px,
            "volume": v,
            "close_time": pa.array(ot + IV - 1000).cast(KLINES.field("close_time").type),
            "quote_volume": px * v,
            "trades": np.full(n, 5, np.int64),
            "taker_buy_volume": v / 2,
            "taker_buy_quote_volume": px * v / 2,
        }
    ).cast(KLINES)
    return t.take(pa.array(keep))


def test_completeness_formula_hand_computed() -> None:
    rep = validate_klines(_bars(12, drop=(3, 4), bad_ohlc=(7,)), "1m")
    assert (rep.expected, rep.missing, rep.flagged) == (12, 2, 1)
    assert rep.completeness == pytest.approx((12 - 2 - 1) / 12)
    assert rep.worst_severity == "error"
    assert rep.failed("error")
    assert rep.failed("warning")
    ohlc = rep.check("ohlc_inconsistent")
    assert ohlc.count == 1
    assert ohlc.rows[0]["row"] == 5  # row 7 of the grid, 2 rows dropped before it
    assert ohlc.rows[0]["ts"].endswith("Z")


def test_empty_and_clean_reports() -> None:
    empty = validate_klines(_bars(0), "1m")
    assert empty.completeness == 1.0
    assert empty.worst_severity is None
    clean = validate_klines(_bars(50), "1m")
    assert clean.worst_severity is None
    assert not clean.failed("info")


def test_json_html_rich_outputs() -> None:
    rep = validate_klines(_bars(30, drop=(10,), bad_ohlc=(20,)), "1m", source="<x&y>")
    doc = json.loads(rep.to_json())
    assert doc["completeness"] == pytest.approx(rep.completeness)
    names = {c["name"]: c for c in doc["checks"]}
    assert names["missing_bars"]["details"][0]["missing_bars"] == 1
    assert names["ohlc_inconsistent"]["rows"][0]["row"] == 19
    html = rep.to_html()
    assert html.startswith('<section class="quality-report"')
    assert "&lt;x&amp;y&gt;" in html
    assert "<x&y>" not in html
    from rich.console import Console

    con = Console(record=True, width=200)
    con.print(rep.to_rich())
    text = con.export_text()
    assert "ohlc_inconsistent" in text
    assert "missing_bars" in text


def test_check_result_validation() -> None:
    with pytest.raises(ValueError, match="severity"):
        CheckResult("x", "klines", "fatal", 0, "d")  # type: ignore[arg-type]
    rep = QualityReport("klines", "t", 0, (), 0, 0, 0)
    with pytest.raises(KeyError, match="no check"):
        rep.check("nope")


runner = CliRunner()


@pytest.mark.shared
def test_cli_exit_codes_on_real_files(real_dir: Path) -> None:
    clean = str(real_dir / FUT / "DOTUSDT-1m-2024-11.csv.gz")
    res = runner.invoke(app, ["validate", clean])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["validate", clean, "--fail-on", "warning", "--json"])
    assert res.exit_code == 0, res.output  # large real moves inform; they do not warn
    doc = json.loads(res.stdout)
    assert doc["reports"][0]["worst_severity"] == "info"
    checks = {c["name"]: c["count"] for c in doc["reports"][0]["checks"]}
    assert checks["return_outlier"] > 0  # still reported
    cdd = str(real_dir / "cryptodatadownload" / "Binance_BTCUSDT_1h.csv.gz")
    res = runner.invoke(app, ["validate", cdd, "--json"])
    assert res.exit_code == 1
    checks = {c["name"]: c["count"] for c in json.loads(res.stdout)["reports"][0]["checks"]}
    assert checks["mixed_timestamp_units"] > 0
    assert checks["overlapping_layouts"] == 2649


def test_cli_bad_input_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "nothing-here.csv"
    bad.write_text("a,b\n1,2\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "nothing-here.csv" in res.output


def test_cli_repair_parquet(tmp_path: Path) -> None:
    src = tmp_path / "bars.parquet"
    pq.write_table(_bars(40, drop=(5, 6, 30)), src)
    out = tmp_path / "fixed.parquet"
    res = runner.invoke(
        app, ["validate", str(src), "--dataset", "klines_1m", "--repair", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output  # gaps are warnings
    doc = json.loads(res.stdout)
    assert doc["repair"]["n_filled"] == 3
    fixed = pq.read_table(out)
    assert fixed.num_rows == 40
    assert np.flatnonzero(np.asarray(fixed["repaired"])).tolist() == [5, 6, 30]
    assert json.loads((tmp_path / "fixed.parquet.repair.json").read_text())["n_filled"] == 3
    assert pq.read_table(src).num_rows == 37  # the input is never modified


@pytest.mark.shared
def test_cli_store_sets_partition_status(real_dir: Path, tmp_path: Path) -> None:
    t = read_archive_path(real_dir / FUT / "AVAXUSDT-1m-2026-06.csv.gz", "klines_1m")
    keep = np.ones(t.num_rows, dtype=bool)
    keep[1000] = False
    st = Store(tmp_path / "store")
    st.write(t.filter(pa.array(keep)), "klines_1m", market="usdm", source="test")
    res = runner.invoke(
        app,
        [
            "validate",
            "--store",
            str(tmp_path / "store"),
            "--dataset",
            "klines_1m",
            "--symbols",
            "AVAXUSDT",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)["reports"][0]
    miss = next(c for c in rep["checks"] if c["name"] == "missing_bars")
    assert miss["count"] == 1
    (part,) = st.partitions("klines_1m", market="usdm")
    assert part.validation_status == "warnings"
    assert part.validation_summary["checks"]["missing_bars"] == 1


@pytest.mark.parametrize(
    "dataset",
    [
        "klines_1m",
        "agg_trades",
        "trades",
        "funding",
        "book_snapshots",
        "book_ticker",
        "depth_updates",
    ],
)
def test_every_validator_accepts_an_empty_table(dataset: str) -> None:
    from alphaforge.data.schemas import DATASETS
    from alphaforge.data.validate import base_dataset, validate_table

    rep = validate_table(DATASETS[base_dataset(dataset)[0]].empty_table(), dataset)
    assert rep.n_rows == 0
    assert rep.completeness == 1.0
    assert rep.worst_severity is None


def test_synthetic_market_passes_every_error_check() -> None:
    from alphaforge.data.synthetic import generate_market
    from alphaforge.data.validate import validate_table

    m = generate_market(n_symbols=3, n_bars=2000, book_levels=5, book_every=10)
    for name, table in (("klines_1m", m.klines), ("funding", m.funding),
                        ("book_snapshots", m.books)):  # fmt: skip
        rep = validate_table(table, name)
        assert rep.worst_severity != "error", (name, rep.to_json())
        assert rep.n_rows == table.num_rows > 0
    assert validate_table(m.klines, "klines_1m").completeness == 1.0


def test_non_finite_prices_are_errors_without_numpy_warnings(real_dir: Path) -> None:
    import warnings

    from alphaforge.data.validate import validate_table

    t = read_archive_path(real_dir / "binance_futures_klines" / "DOTUSDT-1m-2024-11.csv.gz",
                          "klines_1m")  # fmt: skip
    close = t.column("close").to_numpy().copy()
    close[[5, 9, 11]] = [np.nan, np.inf, 0.0]
    bad = t.set_column(t.schema.get_field_index("close"), "close", pa.array(close))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a zero close must not leak a RuntimeWarning
        rep = validate_table(bad, "klines_1m")
    assert rep.check("non_finite_value").row_index.tolist() == [5, 9]
    assert 11 in rep.check("non_positive_price").row_index.tolist()
    assert rep.worst_severity == "error"
    assert validate_table(t, "klines_1m").check("non_finite_value").count == 0


def test_a_multi_file_run_reports_every_file(real_dir: Path, tmp_path: Path) -> None:
    good = real_dir / "binance_futures_klines" / "LINKUSDT-1m-2023-02.csv.gz"
    empty = tmp_path / "BTCUSDT-1m-2024-01.csv"
    empty.write_text("")
    garbage = tmp_path / "ETHUSDT-1m-2024-01.csv"
    garbage.write_bytes(bytes(range(256)))
    res = CliRunner().invoke(app, ["validate", str(empty), str(good), str(garbage), "--json"])
    assert res.exit_code == 2
    doc = json.loads(res.stdout if hasattr(res, "stdout") else res.output)
    assert [r["source"] for r in doc["reports"]] == [str(good)]
    named = {u["file"] for u in doc["unreadable"]}
    assert named == {str(empty), str(garbage)}
    assert "no data rows" in next(u["error"] for u in doc["unreadable"] if u["file"] == str(empty))


def test_fail_on_named_checks(real_dir: Path, tmp_path: Path) -> None:
    """Fail on gaps only: a real month with ordinary volatility passes, one with a gap fails."""
    src = real_dir / "binance_futures_klines" / "LINKUSDT-1m-2023-02.csv.gz"
    ok = CliRunner().invoke(app, ["validate", str(src), "--fail-on", "missing_bars"])
    assert ok.exit_code == 0, ok.output
    t = read_archive_path(src, "klines_1m")
    holed = tmp_path / "holed.parquet"
    pq.write_table(pa.concat_tables([t.slice(0, 100), t.slice(130)]), holed)
    gap = CliRunner().invoke(app, ["validate", str(holed), "--dataset", "klines_1m",
                                   "--fail-on", "missing_bars,duplicate_bars"])  # fmt: skip
    assert gap.exit_code == 1
    bad = CliRunner().invoke(app, ["validate", str(src), "--fail-on", "missing_barz"])
    assert bad.exit_code == 2
    assert "missing_bars" in bad.output
