"""``alphaforge pull`` end to end against the loopback fake Binance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.data.store import Store
from tests.data.fake_binance import FakeBinance, add_kline_archive, read_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake(real_dir: Path) -> Iterator[FakeBinance]:
    f = FakeBinance()
    path = real_dir / "binance_futures_klines/AVAXUSDT-1m-2026-07.csv.gz"
    add_kline_archive(f, "usdm", "AVAXUSDT", "1m", read_text(path))
    with f:
        yield f


def _args(fake: FakeBinance, store: Path, *extra: str) -> list[str]:
    return ["pull", "--symbols", "avaxusdt", "--store", str(store), "--base-url", fake.url,
            "--archive-base-url", fake.url, *extra]  # fmt: skip


@pytest.mark.shared
def test_pull_json_via_console_script(fake: FakeBinance, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("alphaforge")
    cmd = [str(exe), *_args(fake, tmp_path, "--start", "2026-07-01", "--end", "2026-07-02T02:00",
                            "--json")]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env=dict(os.environ), check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["dataset"] == "klines_1m"
    assert rep["files_downloaded"] == 1  # the 07-01 daily zip; 00:00-02:00 of 07-02 from REST
    assert rep["rows_fetched"] == 1440 + 120
    assert rep["rate"]["limit"] == 2400
    assert rep["bytes"] > 0
    got = Store(tmp_path).read("klines_1m", "binance", "usdm", ["AVAXUSDT"])
    assert got.num_rows == 1560


@pytest.mark.shared
def test_pull_progress_bar_and_errors(fake: FakeBinance, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, _args(fake, tmp_path, "--start", "2026-07-05", "--end", "2026-07-06",
                                   "--source", "archive"))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "rows fetched 1,440" in res.output
    # archive only, and the archive lacks today: the pull says what is missing and exits 1
    part = runner.invoke(app, _args(fake, tmp_path / "partial", "--start", "2026-07-05",
                                    "--source", "archive", "--json"))  # fmt: skip
    assert part.exit_code == 1
    doc = json.loads(part.stdout)
    assert doc["complete"] is False
    assert doc["missing"]
    args = _args(fake, tmp_path, "--start", "2026-07-05T01:00", "--end", "2026-07-05T02:00")
    args[args.index("avaxusdt")] = "NOPEUSDT"
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2
    assert "does not know symbol 'NOPEUSDT'" in bad.output
    fake.add_fault("/fapi/v1/klines", "418", retry_after=600)
    # a range not stored yet (07-05 is: a pull asks REST only for what is missing)
    ban = runner.invoke(app, _args(fake, tmp_path, "--start", "2026-07-06T01:00", "--source",
                                   "rest", "--end", "2026-07-06T02:00"))  # fmt: skip
    assert ban.exit_code == 3
    assert "banned until" in ban.output
