"""The demo finds what was planted and says so: the planted factor selected by net Sharpe on the
train split and profitable on the one holdout look, the bounce collapsing net of book-walk
fills, the leaky candidate caught, and a report that renders right in a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import alphaforge as af
from tests.e2e.test_report_browser import check_rendered


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "out"
    lines: list[str] = []
    res = af.demo(str(out), progress=lines.append)
    assert [ln[:3] for ln in lines if ln[:1].isdigit()] == [f"{i}/6" for i in range(1, 7)]
    return out, res.summary


def test_the_planted_factor_is_found_and_holds_out_of_sample(demo: tuple[Path, dict]) -> None:
    _, s = demo
    assert s["planted"]["planted_factor"] == "taker_imbalance_20"
    assert s["found_planted"] is True
    assert s["selected"] == "taker_imbalance_20"
    assert s["train"]["sharpe"] > 0
    assert s["test_metrics"]["total_return"] > 0  # the holdout agrees
    assert s["holdout"]["test_rank_ic"] > 0
    assert s["trials"]["n_trials"] >= 60  # the whole library counted as trials
    assert "rebalanced every 12 bars" in s["execution"]


def test_the_mirage_collapses_and_the_leak_is_caught(demo: tuple[Path, dict]) -> None:
    _, s = demo
    assert s["bounce"]["gross_sharpe"] > 3
    assert s["bounce"]["net_sharpe"] < 0
    assert s["leak"]["verdict"] == "caught by the lookahead check"
    assert "reads future data" in s["leak"]["detail"]
    assert sum(s["proposals"]["counts"].values()) >= 8


def test_the_report_reads_right(demo: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = demo
    doc = json.loads((out / "report.json").read_text())
    assert doc["span"] == "21 days"
    assert "CAGR" not in doc["performance"]  # three weeks: no compounding to a year
    assert {"Costs: gross vs net", "Research honesty"} <= set(doc["sections"])
    assert "monthly_returns" not in doc["figures"]  # one month of test data: no calendar
    assert {"equity_drawdown", "rolling_sharpe", "ic_over_time", "gap_waterfall"} <= set(
        doc["figures"])  # fmt: skip
    html = (out / "report.html").read_text()
    assert "Planted: taker_imbalance_20" in html
    check_rendered(out / "report.html", tmp_path, len(doc["figures"]))
