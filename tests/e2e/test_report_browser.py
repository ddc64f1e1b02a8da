"""The HTML report renders in headless Chromium with every figure drawn (screenshot taken)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from alphaforge.engine.report import ReportInputs, build_report

CHECK = """<script>window.addEventListener('load', () => {
  const figs = [...document.querySelectorAll('figure > svg')];
  const ok = figs.filter(s => {
    const box = s.getBoundingClientRect();
    const marks = s.querySelectorAll('path, rect:has(> title)');  // lines, areas, bars, cells
    return box.width > 300 && box.height > 60 && marks.length > 0;
  }).length;
  const over = document.documentElement.scrollWidth > window.innerWidth + 1;
  const empty = [...document.querySelectorAll('h2')].filter(h => {
    const n = h.nextElementSibling;
    return !n || n.tagName === 'H2' || (n.tagName === 'TABLE' && n.rows.length < 2);
  }).map(h => h.textContent);
  const blank = [...document.querySelectorAll('th')].filter(t => !t.textContent.trim()).length;
  const d = document.createElement('div'); d.id = 'imgcheck';
  d.textContent = 'drawn=' + ok + '/' + figs.length + ' overflow=' + over +
    ' empty=[' + empty.join('|') + '] blank_headers=' + blank;
  document.body.appendChild(d);
});</script>"""


def check_rendered(html: Path, tmp: Path, n_figures: int) -> Path:
    """Render ``html`` in headless Chromium: every figure laid out at a readable size with marks
    drawn in it (the SVG parsed), nothing wider than the window,
    no heading without content, no blank table header; returns a screenshot that is not blank."""
    exe = _chromium()
    page = tmp / "check.html"
    page.write_text(html.read_text().replace("</body>", CHECK + "</body>"))
    dom = subprocess.run([exe, *_flags(tmp), "--window-size=1000,4000",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    want = f"drawn={n_figures}/{n_figures} overflow=false empty=[] blank_headers=0"
    assert want in dom.stdout, (dom.stdout[-600:], dom.stderr[-2000:])
    shot = tmp / "shot.png"
    subprocess.run([exe, *_flags(tmp), "--window-size=1000,4000", f"--screenshot={shot}",
                    html.as_uri()], capture_output=True, timeout=120, check=False)  # fmt: skip
    assert shot.is_file()
    import matplotlib.image as mpimg

    px = mpimg.imread(shot)[..., :3]
    assert (px.mean(axis=2) < 0.9).mean() > 0.05  # text, tables and figures: not a blank page
    return shot


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("ALPHAFORGE_REQUIRE_SHARED") == "1":
            pytest.fail("CI must render the report: chromium is not installed (see .ci/run)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return exe


def _flags(tmp: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp / 'profile'}"]  # fmt: skip


def test_report_renders_with_every_figure(tmp_path: Path) -> None:
    _chromium()
    rng = np.random.default_rng(0)
    t = 3000
    ts = 1_704_067_200_000_000 + 3_600_000_000 * np.arange(t, dtype=np.int64)
    eq = np.cumprod(1 + rng.normal(0.0002, 0.01, t))
    paths = build_report(ReportInputs(
        title="browser check", ts_us=ts, equity=eq, periods_per_year=8760.0,
        metrics={"sharpe": 1.2}, turnover=np.abs(rng.normal(0, 0.1, t)),
        costs={"fees": 1.0, "slippage": 0.5}, slippage_bps=rng.normal(2, 1, 500),
        ic_series=rng.normal(0.02, 0.1, t), ic_decay={1: 0.03, 5: 0.02, 60: 0.005},
        quantile_returns=[-0.001, 0.0, 0.0005, 0.001, 0.002],
        gap_components={"delay": 1.0, "half_spread": 2.0, "impact": 0.5, "fees": 1.0,
                        "opportunity": -0.2}), tmp_path / "out")  # fmt: skip
    n_figures = len(paths.figures)
    assert n_figures == 10
    check_rendered(paths.html, tmp_path, n_figures)
