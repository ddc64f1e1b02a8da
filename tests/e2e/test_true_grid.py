"""A store with a missing month, a delisted symbol and a gap (built from real archive files):
every command sees the true hourly grid, ranks and trades only listed symbols, and backtest,
sweep and score agree with each other and with a pandas computation on that grid."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import alphaforge as af
from alphaforge.sweeps import run_sweep_study
from tests.e2e.conftest import run_cli

K = "binance_futures_klines"
DELIST = pd.Timestamp("2026-02-20", tz="UTC")
GAP = (pd.Timestamp("2026-02-10 06:00", tz="UTC"), pd.Timestamp("2026-02-10 09:00", tz="UTC"))


def _write(lines: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def study(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("grid")
    inbox = root / "futures" / "um"
    for name in ("ALGOUSDT-1m-2026-02", "AVAXUSDT-1m-2026-02", "AVAXUSDT-1m-2026-06",
                 "LINKUSDT-1m-2026-02", "DOTUSDT-1m-2026-02"):  # fmt: skip
        lines = gzip.decompress((real_dir / K / f"{name}.csv.gz").read_bytes()).decode()
        rows = [ln for ln in lines.splitlines() if ln and ln[0].isdigit()]
        t = np.array([int(r.split(",", 1)[0]) for r in rows])
        keep = np.ones(len(rows), dtype=bool)
        if name.startswith("LINK"):
            keep &= t < DELIST.value // 1_000_000  # last bar before Feb 20: delisted
        if name.startswith("DOT"):
            keep &= (t < GAP[0].value // 1_000_000) | (t >= GAP[1].value // 1_000_000)
        _write([r for r, k in zip(rows, keep, strict=True) if k], inbox / f"{name}.csv")
    store = af.Store(root / "store")
    assert store.ingest(inbox).ok
    return {"root": root, "store": store, "inbox": inbox}


def _hand_closes(inbox: Path) -> pd.DataFrame:
    """Hourly closes by pandas from the files: bars labelled by their close time."""
    frames = {}
    for f in sorted(inbox.glob("*.csv")):
        df = pd.read_csv(f, header=None, usecols=[0, 4], names=["open_time", "close"])
        t = pd.to_datetime(df["open_time"] + 60_000, unit="ms", utc=True)
        s = pd.Series(df["close"].to_numpy(), index=t)
        frames.setdefault(f.name.split("-")[0], []).append(s)
    close = pd.DataFrame({k: pd.concat(v) for k, v in frames.items()})
    return close.resample("1h", label="right", closed="right").last()


def test_the_panel_is_the_true_grid_with_the_universe(study: dict) -> None:
    p = study["store"].panel(interval="1h")
    step = np.diff(p.ts_us)
    assert (step == 3_600_000_000).all()  # no row joins the missing months
    hand = _hand_closes(study["inbox"])
    full = hand.reindex(pd.to_datetime(p.ts_us, unit="us", utc=True))
    np.testing.assert_array_equal(p["close"], full[list(p.symbols)].to_numpy())
    ts = pd.to_datetime(p.ts_us, unit="us", utc=True)
    link = p.symbols.index("LINKUSDT")
    assert not p["tradable"][ts > DELIST, link].any()  # delisted: its bars end before the data
    algo = p.symbols.index("ALGOUSDT")
    assert not p["tradable"][ts > pd.Timestamp("2026-03-01 01:00", tz="UTC"), algo].any()
    march = (ts > pd.Timestamp("2026-03-02", tz="UTC")) & (
        ts < pd.Timestamp("2026-06-01", tz="UTC")
    )
    assert np.isnan(p["close"][march]).all()
    dot = p.symbols.index("DOTUSDT")
    assert p["partial"][(ts > GAP[0]) & (ts <= GAP[1] + pd.Timedelta("1h")), dot].any()


def test_backtest_sweep_and_score_agree_on_the_grid(study: dict) -> None:
    p = study["store"].panel(interval="1h")
    run = af.backtest("rev_5", p, rebalance_every=4, fee_bps=4.0)
    trades = run.trades
    ts = pd.to_datetime(p.ts_us, unit="us", utc=True)
    assert not ((trades["symbol"] == "LINKUSDT") & (trades["ts"] > DELIST)).any()
    gap_months = (trades["ts"] > pd.Timestamp("2026-03-02", tz="UTC")) & (
        trades["ts"] < pd.Timestamp("2026-06-01", tz="UTC"))  # fmt: skip
    assert not gap_months.any()
    assert np.isfinite(run.equity).all()
    swept = run_sweep_study(p, ["rev_5"], {"rebalance_every": [4], "fee_bps": [4.0]},
                            str(study["root"] / "results"))  # fmt: skip
    (row,) = swept.ranked
    assert row["total_return"] == pytest.approx(run.metrics["total_return"], rel=1e-10)
    assert row["sharpe"] == pytest.approx(run.metrics["sharpe"], rel=1e-10)
    # score: RankIC at h=1 by hand (pandas/scipy) on the same grid and universe
    scored = af.score("rev_5", p, horizons=(1,), quantiles=2)
    values = af.factor("rev_5").evaluate(p)
    values[p["tradable"] <= 0] = np.nan
    opn = p["open"]
    fwd = np.full_like(opn, np.nan)
    fwd[:-2] = opn[2:] / opn[1:-1] - 1.0  # decision at t: enter at open[t+1], exit open[t+2]
    ics = []
    for t in range(p.T):
        ok = np.isfinite(values[t]) & np.isfinite(fwd[t])
        if ok.sum() >= 3:
            ics.append(stats.spearmanr(values[t, ok], fwd[t, ok]).statistic)
    assert scored.rank_ic.loc[1, "n"] == len(ics)
    assert scored.rank_ic.loc[1, "mean"] == pytest.approx(np.nanmean(ics), rel=1e-9)
    assert ts.size == p.T


def test_every_command_runs_on_it_at_1h(study: dict) -> None:
    cwd = study["root"]
    base = ["--store", "store", "--interval", "1h"]
    bt = json.loads(run_cli(["backtest", "rev_5", *base, "--json"], cwd).stdout)
    assert bt["data"]["bars"] == study["store"].panel(interval="1h").T
    sc = json.loads(run_cli(["score", "rev_5", *base, "--horizons", "1,4", "--no-redundancy",
                             "--json"], cwd).stdout)  # fmt: skip
    assert sc["n_rows"] == bt["data"]["bars"]
    sw = run_cli(["sweep", "--factors", "rev_5", *base, "--json"], cwd, check=False)
    assert sw.returncode == 0, sw.stderr[-2000:]
    rep = json.loads(run_cli(["report", "rev_5", *base, "--out", "rep", "--json"], cwd).stdout)
    assert Path(cwd / rep["report"]).is_file() or Path(rep["report"]).is_file()
    # the demo's figures wherever the data allows them, and the quality of the data used
    assert {"equity_drawdown", "monthly_returns", "rolling_sharpe", "ic_over_time", "ic_decay",
            "quantile_returns", "turnover", "cost_breakdown"} <= set(rep["figures"])  # fmt: skip
    doc = json.loads((cwd / "rep" / "report.json").read_text())
    assert {"Costs: gross vs net", "Research honesty"} <= set(doc["sections"])
    html = (cwd / "rep" / "report.html").read_text()
    assert "Stored partitions read" in html
    assert "missing bars inside listings" in html
    from tests.e2e.test_report_browser import check_rendered

    shots = cwd / "shots"
    shots.mkdir(exist_ok=True)
    check_rendered(cwd / "rep" / "report.html", shots, len(rep["figures"]))
    # the whole library ranked on the real store in one call agrees with score of one factor
    lib = json.loads(run_cli(["score", "--library", *base, "--horizons", "1", "--json"],
                             cwd).stdout)  # fmt: skip
    row = next(r for r in lib["rows"] if r["name"] == "rev_5")
    assert row["rank_ic"] == pytest.approx(sc["rank_ic"]["1"]["mean"], rel=1e-9)
    assert row["sharpe"] == pytest.approx(bt["metrics"]["sharpe"], rel=1e-12)
    assert {s["name"] for s in lib["skipped"]} >= {"funding_carry", "book_imbalance"}
    # one set of defaults: the report, score's long-short block and backtest are one portfolio
    assert rep["metrics"]["sharpe"] == pytest.approx(bt["metrics"]["sharpe"], rel=1e-12)
    assert sc["backtest"]["sharpe"] == pytest.approx(bt["metrics"]["sharpe"], rel=1e-12)


def test_propose_ranks_only_listed_symbols(study: dict) -> None:
    """propose on the store: every candidate is scored on the universe only (a delisted
    symbol's rows are blank after its last bar), through the CLI as a user runs it."""
    from alphaforge.factors.ledger import Ledger
    from alphaforge.factors.propose import Gate, Study, StudyConfig
    from alphaforge.factors.propose_parse import Candidate

    panel = study["store"].panel(interval="1h")
    cfg = StudyConfig(study="grid", rounds=1, per_round=4, gate=Gate(min_abs_t=0.0,
                      min_sharpe=-1e9), library_check=False, rebalance_every=1)  # fmt: skip
    s = Study(panel, cfg, Ledger(study["root"] / "unit.sqlite"))
    link = s.train.symbols.index("LINKUSDT")
    gone = s.train.ts_us > DELIST.value // 1000
    assert gone.any()
    assert (s.train["tradable"][gone, link] == 0).all()
    # a trailing mean would still have values after the last bar; the universe blanks them
    from alphaforge.engine.tradable import universe_values
    from alphaforge.factors.expr import compile_expr

    raw = compile_expr("ts_mean(returns, 24)")(s.train)
    assert not np.isfinite(universe_values(raw, s.train)[gone, link]).any()
    status = s.evaluate(Candidate("m", "ts_mean(returns, 24)", ""), {})
    assert status in ("accepted", "failed_gate")
    out = run_cli(["propose", "--offline", "--store", "store", "--interval", "1h", "--rounds",
                   "1", "--per-round", "6", "--json"], study["root"], check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert sum(doc["counts"].values()) == 6
