"""The public API (``import alphaforge as af``): every name documented, the docs self-contained,
results as pandas, and the same numbers as the CLI (one code path)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import alphaforge as af
from alphaforge.backtests import run_factor_backtest
from alphaforge.factors.errors import ExprError
from alphaforge.factors.registry import Registry
from alphaforge.factors.score import score_factor
from tests.e2e.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
API_DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", af.__all__)
def test_every_public_name_is_documented(name: str) -> None:
    assert f"### `af.{name}`" in API_DOC, f"docs/api.md has no section for af.{name}"
    obj = getattr(af, name)
    if callable(obj):
        assert (obj.__doc__ or "").strip(), f"af.{name} has no docstring"


def test_the_reference_documents_no_name_that_is_not_public() -> None:
    documented = set(re.findall(r"^### `af\.(\w+)`", API_DOC, flags=re.M))
    assert documented == set(af.__all__)


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", _doc_files(), ids=lambda p: p.name)
def test_docs_link_only_inside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text.replace("`../shared/data/real/`", ""), path
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert not re.match(r"[a-z]+://", target), f"{path.name} links outside: {target}"
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: broken {target}"


@pytest.fixture(scope="module")
def panel() -> af.Panel:
    return af.synthetic_panel(n_symbols=6, n_bars=900, seed=3)


def test_score_results_are_pandas_and_equal_score_factor(panel: af.Panel) -> None:
    res = af.score("mom_20", panel, horizons=(1, 5))
    # the API records the trial in the research ledger; the same trial again counts once
    raw = score_factor("mom_20", panel, horizons=(1, 5), registry=Registry())
    assert res.to_dict() == raw.to_dict()
    assert res.raw.trials is not None
    assert res.raw.trials["n_trials"] == 1
    assert isinstance(res.rank_ic, pd.DataFrame)
    assert list(res.rank_ic.index) == [1, 5]
    assert res.rank_ic.loc[1, "mean"] == raw.rank_ic[1]["mean"]
    assert list(res.quantiles.columns) == [f"q{i}" for i in range(1, 6)]
    assert res.quantiles.loc[5].tolist() == pytest.approx(list(raw.quantile_returns[5]))
    assert res.decay.to_dict() == pytest.approx(dict(raw.decay))
    assert "RankIC" in " ".join(res.summary()["metric"])
    assert "<table>" in res._repr_html_()
    fig = res.plot()
    assert len(fig.axes) == 3


def test_factor_handles_library_names_expressions_and_values(panel: af.Panel) -> None:
    lib = af.factor("mom_20")
    assert lib.name == "mom_20"
    assert lib.lookback == 20
    assert lib.fields == frozenset({"close"})
    ad_hoc = af.factor(lib.expr)
    np.testing.assert_array_equal(ad_hoc.evaluate(panel), lib.evaluate(panel))
    frame = lib.frame(panel)
    assert list(frame.columns) == list(panel.symbols)
    by_values = af.score(frame, panel, horizons=(1,))
    by_name = af.score(lib, panel, horizons=(1,))
    assert by_values.rank_ic.loc[1, "mean"] == by_name.rank_ic.loc[1, "mean"]
    assert len(af.library()) >= 70
    with pytest.raises(ExprError, match="position"):
        af.factor("cs_rank(close,")


def test_backtest_run_is_pandas_and_equals_the_cli(panel: af.Panel, tmp_path: Path) -> None:
    run = af.backtest("mom_20", panel, fee_bps=4.0, rebalance_every=5)
    raw = run_factor_backtest(panel, "mom_20", fee_bps=4.0, rebalance_every=5)
    assert run.metrics == raw.metrics
    assert isinstance(run.equity, pd.Series)
    assert run.equity.index.tz is not None
    np.testing.assert_array_equal(run.equity.to_numpy(), raw.result.equity)
    trades = run.trades
    assert set(trades["symbol"]) <= set(panel.symbols)
    assert trades["fee"].sum() == pytest.approx(run.metrics["fees"])
    assert (trades["ts"] > trades["decision_ts"]).all()  # fills after the decision (lag 1)
    paths = run.report(tmp_path / "rep")
    assert paths.html.is_file()
    cli = json.loads(run_cli(["backtest", "mom_20", "--bars", "900", "--seed", "3", "--json",
                              "--rebalance-every", "5"], tmp_path).stdout)  # fmt: skip
    synth = af.synthetic_panel(n_bars=900, seed=3)
    assert cli["metrics"]["sharpe"] == pytest.approx(
        af.backtest("mom_20", synth, rebalance_every=5).metrics["sharpe"], rel=1e-12
    )


def test_panel_from_long_pandas_and_polars_round_trips(panel: af.Panel) -> None:
    long = panel.to_pandas()
    assert long.index.names == ["ts", "symbol"]
    for frame in (long, long.reset_index(), pl.from_pandas(long.reset_index())):
        back = af.Panel.from_pandas(frame)
        assert back.symbols == panel.symbols
        assert back.interval_us == panel.interval_us
        np.testing.assert_array_equal(back["close"], panel["close"])
    wide = af.Panel.from_pandas({"close": panel.to_pandas("close")})
    assert wide.interval_us == panel.interval_us


def test_store_api_on_real_files(real_dir: Path, tmp_path: Path) -> None:
    store = af.Store(tmp_path / "store")
    rep = store.ingest(real_dir / "binance_futures_klines" / "LINKUSDT-1m-2026-02.csv.gz",
                       real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz",
                       market="usdm")  # fmt: skip
    assert rep.ok
    ls = store.ls()
    assert list(ls["symbol"]) == ["DOTUSDT", "LINKUSDT"]
    assert ls["rows"].tolist() == [40_320, 40_320]
    table = store.read("klines_1m", ["LINKUSDT"], start="2026-02-02", end="2026-02-03")
    assert table.num_rows == 1_440
    p = store.panel(["DOTUSDT", "LINKUSDT"], fields=["open", "close"])
    assert set(p.fields) == {"open", "close", "tradable"}
    assert p.N == 2
    assert "klines_1m" in store._repr_html_()
