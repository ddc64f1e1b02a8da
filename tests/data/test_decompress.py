"""Decompression bombs are refused with a clear error and bounded memory; real archives load."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from alphaforge.data.archive import read_archive_csv
from alphaforge.data.decompress import MIN_LIMIT_BYTES, gunzip
from alphaforge.data.errors import SchemaError

LINE = b"1,2.5,3.5,1.5,2.0,10.0,59999,20.0,3,5.0,10.0,0\n"
"""Bytes to compress (the gzip and zip limits do not care what the text is)."""


def _bomb(path: Path, megabytes: int, line: bytes) -> Path:
    """``line`` repeated to ``megabytes`` MB, as repeated gzip members (a tiny file)."""
    member = gzip.compress(line * ((1 << 20) // len(line)), 9)
    path.write_bytes(member * megabytes)
    return path


def test_gunzip_caps_the_output_and_reads_every_member() -> None:
    two = gzip.compress(b"a,b\n") + gzip.compress(b"c,d\n")
    assert gunzip(two, "x") == b"a,b\nc,d\n"
    with pytest.raises(SchemaError, match="truncated gzip"):
        gunzip(gzip.compress(LINE * 100)[:-12], "x.gz")
    big = gzip.compress(b"\0" * (MIN_LIMIT_BYTES + 1))
    with pytest.raises(SchemaError, match=r"x\.gz: decompresses to more than .* bomb"):
        gunzip(big, "x.gz")


def test_a_zip_declaring_a_huge_member_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1m-2024-01.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1m-2024-01.csv", LINE * ((MIN_LIMIT_BYTES // len(LINE)) + 10))
    with pytest.raises(SchemaError, match=r"declares .* refusing a likely decompression bomb"):
        read_archive_csv(path, "klines", "BTCUSDT")


def test_gzip_bomb_is_refused_by_validate_with_bounded_memory(tmp_path: Path,
                                                              real_dir: Path) -> None:  # fmt: skip
    with gzip.open(real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz") as fh:
        row = fh.read().splitlines(keepends=True)[1]  # a real kline row (after the header)
    bomb = _bomb(tmp_path / "BTCUSDT-1m-2024-01.csv.gz", 600, row)  # 600 MB of rows in ~2 MB
    assert bomb.stat().st_size < 4 << 20
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-c', 'from alphaforge.cli import main; main()', "
        f"'validate', {str(bomb)!r}, '--json'], capture_output=True, text=True)\n"
        "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(p.stdout + p.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    rc, max_rss_kib = (int(x) for x in proc.stdout.split())
    assert rc != 0
    assert "decompression bomb" in proc.stderr
    assert "BTCUSDT-1m-2024-01.csv.gz" in proc.stderr
    # 444 MiB here; without the cap (ALPHAFORGE_MAX_EXPANSION=1e6) this bomb takes 1.8 GiB
    assert max_rss_kib < 700 * 1024, max_rss_kib


def test_real_archives_still_load(real_dir: Path) -> None:
    path = real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz"
    assert read_archive_csv(path, "klines", "DOTUSDT").num_rows == 40_320
    with open(path, "rb") as fh:  # a file object takes the same capped path
        assert read_archive_csv(io.BytesIO(fh.read()), "klines", "DOTUSDT").num_rows == 40_320
