"""Open interest from Binance ``metrics`` archive files: parse, ingest, pull (loopback archive
server), the panel's ``open_interest`` as last published, and the positioning factors on it.

No real metrics file is available to the tests (``../shared/data/real/README.md``, known
gaps), so the files are written in the archive's documented layout (header, 5-minute
``create_time`` strings) for the real DOT and LINK klines of February 2026 that the tests
ingest beside them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import alphaforge as af
from alphaforge.data.archive import read_archive_path
from alphaforge.data.archive_fetch import ArchiveClient
from alphaforge.data.errors import SchemaError
from alphaforge.data.pull import pull
from alphaforge.data.store import Store
from tests.data.fake_binance import FakeBinance

HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)


def metrics_day(symbol: str, day: datetime, seed: int, empty_at: int | None = None) -> str:
    """One day of 5-minute rows in the archive layout (open interest a random walk)."""
    rng = np.random.default_rng(seed)
    oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.002, 288)))
    lines = [HEADER]
    for k in range(288):
        t = (day + timedelta(minutes=5 * k)).strftime("%Y-%m-%d %H:%M:%S")
        v = "" if k == empty_at else f"{oi[k]:.3f}"
        lines.append(f"{t},{symbol},{v},{oi[k] * 5.0:.5f},1.91,3.27,1.46,1.08")
    return "\n".join(lines) + "\n"


DAY = datetime(2026, 2, 3, tzinfo=UTC)


def test_parse_the_documented_layout(tmp_path: Path) -> None:
    path = tmp_path / "DOTUSDT-metrics-2026-02-03.csv"
    path.write_text(metrics_day("DOTUSDT", DAY, 1, empty_at=7))
    t = read_archive_path(path, "metrics")
    assert t.num_rows == 288
    assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    ts = t.column("ts").cast(pa.int64()).to_pylist()
    assert ts[0] == int(DAY.timestamp() * 1e6)
    assert ts[1] - ts[0] == 300_000_000
    assert t.column("open_interest").null_count == 1  # the empty value stays missing
    assert t.column("taker_vol_ratio").to_pylist()[0] == 1.08
    other = tmp_path / "LINKUSDT-metrics-2026-02-03.csv"
    other.write_text(metrics_day("DOTUSDT", DAY, 1))
    with pytest.raises(SchemaError, match=r"rows of \['DOTUSDT'\] in a file named for LINKUSDT"):
        read_archive_path(other, "metrics")


@pytest.mark.shared
def test_ingest_then_panel_and_factors(real_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "downloads" / "futures" / "um"
    folder.mkdir(parents=True)
    for seed, sym in enumerate(("DOTUSDT", "LINKUSDT", "ALGOUSDT")):
        for d in range(3):
            day = DAY + timedelta(days=d)
            name = f"{sym}-metrics-{day:%Y-%m-%d}.csv"
            (folder / name).write_text(metrics_day(sym, day, 10 * seed + d))
    klines = real_dir / "binance_futures_klines"
    store = af.Store(tmp_path / "store")
    rep = store.ingest(folder, *(klines / f"{s}-1m-2026-02.csv.gz" for s in
                                 ("DOTUSDT", "LINKUSDT", "ALGOUSDT")), market="usdm")  # fmt: skip
    assert rep.ok
    assert {i.dataset for i in rep.items} == {"metrics", "klines_1m"}
    panel = store.panel(start="2026-02-03", end="2026-02-06", interval="5m")
    oi = panel["open_interest"]
    raw = Store(tmp_path / "store").read("metrics", symbols=["DOTUSDT"])
    t = raw.column("ts").cast(pa.int64()).to_numpy()
    v = raw.column("open_interest").to_numpy()
    j = panel.symbols.index("DOTUSDT")
    for row in (0, 1, 100, panel.T - 1):  # the last value published at or before the bar
        k = np.searchsorted(t, panel.ts_us[row], side="right") - 1
        assert oi[row, j] == v[k]
    assert np.isfinite(panel["open_interest_value"]).mean() > 0.99
    res = af.score("oi_change_12", panel, horizons=(1, 12))
    assert res.lookahead["status"] == "safe"
    assert np.isfinite(res.rank_ic.loc[1, "mean"])
    names = {f.name for f in af.library()}
    assert {"oi_change_12", "oi_price_divergence", "oi_turnover"} <= names
    assert af.score("oi_turnover", panel, horizons=(1,)).raw.n_rows == panel.T


@pytest.mark.shared
def test_a_panel_without_metrics_names_the_dataset(klines_only_panel: af.Panel) -> None:
    with pytest.raises(Exception, match=r"open_interest.*metrics"):
        af.score("oi_change_12", klines_only_panel)


def test_pull_metrics_from_the_daily_archive(tmp_path: Path) -> None:
    fake = FakeBinance()
    for d in range(2):
        day = DAY + timedelta(days=d)
        fake.add_archive_file(
            f"data/futures/um/daily/metrics/DOTUSDT/DOTUSDT-metrics-{day:%Y-%m-%d}.zip",
            metrics_day("DOTUSDT", day, d).encode(),
        )
    now = (DAY + timedelta(days=10)).timestamp()
    with fake:
        rep = pull(Store(tmp_path), "archive", "usdm", "metrics", ["DOTUSDT"], None,
                   "2026-02-03", "2026-02-05", archive=ArchiveClient(fake.url),
                   clock=lambda: now)  # fmt: skip
    assert rep.files_downloaded == 2
    got = Store(tmp_path).read("metrics", "binance", "usdm", ["DOTUSDT"])
    assert got.num_rows == 576
    assert json.dumps(rep.to_dict())  # the report is JSON-safe
