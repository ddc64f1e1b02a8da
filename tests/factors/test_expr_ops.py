"""Every operator of the expression language against a pandas/numpy reference, NaNs included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from alphaforge.engine.panel import Panel
from alphaforge.factors.errors import ExprError
from alphaforge.factors.expr import compile_expr, evaluate, kernels, ops_nb, parse, ts_nb
from alphaforge.factors.expr import ops as ops_table
from alphaforge.factors.expr.compile import evaluate_many

T, N = 90, 6
RTOL = 1e-9


def _data(seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    volume = rng.lognormal(3.0, 1.0, (T, N))
    returns = rng.normal(0, 0.02, (T, N))
    returns[rng.random((T, N)) < 0.05] = 0.0  # exact zeros for sign/div/not
    signed = rng.normal(0, 1.0, (T, N))
    for a in (close, volume, returns, signed):
        a[rng.random((T, N)) < 0.04] = np.nan
    close[:3, 0] = np.nan  # a late listing
    return {"close": close, "volume": volume, "returns": returns, "open": signed}


DATA = _data()
PANEL = Panel(
    np.arange(T, dtype=np.int64) * 60_000_000, tuple("ABCDEF"), DATA, interval_us=60_000_000
)
DF = {k: pd.DataFrame(v) for k, v in DATA.items()}


def _check(expr: str, ref: pd.DataFrame | np.ndarray, rtol: float = RTOL) -> None:
    got = evaluate(expr, PANEL)
    want = np.asarray(ref, dtype=np.float64)
    assert got.shape == (T, N)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"NaN pattern of {expr}")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12, err_msg=expr)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan)


# ------------------------------------------------------------------ elementwise

with np.errstate(all="ignore"):
    R, C, OPN, V = (DATA[k] for k in ("returns", "close", "open", "volume"))
    UNARY_CASES = {
        "abs(open)": np.abs(OPN),
        "log(open)": _finite(np.where(OPN > 0, np.log(np.abs(OPN)), np.nan)),
        "sign(returns)": np.sign(R),
        "sqrt(open)": np.where(OPN >= 0, np.sqrt(np.abs(OPN)), np.nan),
        "-open": -OPN,
        "not returns": np.where(np.isnan(R), np.nan, (R == 0).astype(float)),
    }
    _both = np.isnan(R) | np.isnan(OPN)
    BINARY_CASES = {
        "returns + open": R + OPN,
        "returns - open": R - OPN,
        "returns * open": R * OPN,
        "open / returns": _finite(OPN / R),
        "returns < open": np.where(_both, np.nan, (R < OPN) * 1.0),
        "returns <= 0": np.where(np.isnan(R), np.nan, (R <= 0) * 1.0),
        "returns > open": np.where(_both, np.nan, (R > OPN) * 1.0),
        "returns >= 0": np.where(np.isnan(R), np.nan, (R >= 0) * 1.0),
        "returns == 0": np.where(np.isnan(R), np.nan, (R == 0) * 1.0),
        "returns != 0": np.where(np.isnan(R), np.nan, (R != 0) * 1.0),
        "returns and open > 0": np.where(_both, np.nan, ((R != 0) & (OPN > 0)) * 1.0),
        "returns or open > 0": np.where(_both, np.nan, ((R != 0) | (OPN > 0)) * 1.0),
        "min(returns, open)": np.minimum(R, OPN),
        "max(returns, open)": np.maximum(R, OPN),
        "power(open, 2)": OPN**2,
        "power(abs(open), 0.5)": np.abs(OPN) ** 0.5,
        "power(open, 0.5)": np.where(OPN >= 0, np.abs(OPN) ** 0.5, np.nan),
        "power(close, open)": _finite(C**OPN),
        "signed_power(open, 3)": np.sign(OPN) * np.abs(OPN) ** 3,
        "signed_power(open, 0.5)": np.sign(OPN) * np.abs(OPN) ** 0.5,
        "2 - open": 2 - OPN,
        "1 / open": _finite(1 / OPN),
        "where(returns > 0, open, -1)": np.where(np.isnan(R), np.nan, np.where(R > 0, OPN, -1.0)),
        "where(returns, 1, open)": np.where(np.isnan(R), np.nan, np.where(R != 0, 1.0, OPN)),
        "clip(open, -0.5, 0.5)": np.clip(OPN, -0.5, 0.5),
        "clip(open, returns, 1)": np.minimum(np.maximum(OPN, R), 1.0),
    }


@pytest.mark.parametrize("expr", sorted(UNARY_CASES))
def test_unary_ops(expr: str) -> None:
    _check(expr, UNARY_CASES[expr])


@pytest.mark.parametrize("expr", sorted(BINARY_CASES))
def test_binary_ops(expr: str) -> None:
    _check(expr, BINARY_CASES[expr])


def test_constant_expression_broadcasts() -> None:
    got = evaluate("(1 + 2) * 3 / 4", PANEL)
    np.testing.assert_array_equal(got, np.full((T, N), 2.25))
    np.testing.assert_array_equal(evaluate("1 / 0", PANEL), np.full((T, N), np.nan))


# ------------------------------------------------------------------ time series


def _decay(w: int):
    weights = np.arange(1, w + 1, dtype=float)
    return lambda a: float(np.dot(a, weights) / weights.sum())


def _ts_cases() -> dict[str, pd.DataFrame]:
    c, r, v = DF["close"], DF["returns"], DF["volume"]
    cases: dict[str, pd.DataFrame] = {}
    for w in (1, 5, 20):
        roll = c.rolling(w)
        cases[f"ts_mean(close, {w})"] = roll.mean()
        cases[f"ts_sum(returns, {w})"] = r.rolling(w).sum()
        cases[f"ts_min(close, {w})"] = roll.min()
        cases[f"ts_max(close, {w})"] = roll.max()
        cases[f"ts_argmin(close, {w})"] = roll.apply(np.argmin, raw=True) + 1
        cases[f"ts_argmax(close, {w})"] = roll.apply(np.argmax, raw=True) + 1
        cases[f"ts_rank(close, {w})"] = roll.rank(pct=True)
        cases[f"ts_product(volume, {w})"] = v.rolling(w).apply(np.prod, raw=True)
        cases[f"ts_decay_linear(close, {w})"] = roll.apply(_decay(w), raw=True)
        cases[f"ts_ewm(close, {w})"] = (
            c.ewm(span=w, adjust=False, ignore_na=True, min_periods=w).mean().where(c.notna())
        )
    for w in (2, 5, 20):
        cases[f"ts_std(close, {w})"] = c.rolling(w).std()
        cases[f"ts_zscore(close, {w})"] = (c - c.rolling(w).mean()) / c.rolling(w).std()
        cases[f"ts_cov(close, volume, {w})"] = c.rolling(w).cov(v)
    for w in (5, 20):
        cases[f"ts_corr(close, volume, {w})"] = c.rolling(w).corr(v)
        cases[f"ts_skew(returns, {w})"] = r.rolling(w).skew()
    for d in (0, 1, 7):
        cases[f"ts_delay(close, {d})"] = c.shift(d)
    for d in (1, 7):
        cases[f"ts_delta(close, {d})"] = c.diff(d)
        cases[f"ts_pct_change(close, {d})"] = c / c.shift(d) - 1
    cases["ts_pct_change(returns, 1)"] = (r / r.shift(1) - 1).where(r.shift(1) != 0)
    cases["ts_mean(ts_delta(close, 1), 4)"] = c.diff(1).rolling(4).mean()
    return cases


TS_CASES = _ts_cases()


@pytest.mark.parametrize("expr", sorted(TS_CASES))
def test_time_series_ops(expr: str) -> None:
    rtol = 1e-7 if ("skew" in expr or "corr" in expr or "std" in expr or "zscore" in expr) else RTOL
    _check(expr, TS_CASES[expr], rtol=rtol)


@pytest.mark.parametrize(
    "expr",
    [
        "ts_mean(volume, 7)",
        "ts_std(volume, 7)",
        "ts_corr(volume, open, 7)",
        "ts_rank(open, 7)",
        "ts_delay(open, 3)",
        "ts_ewm(open, 7)",
        "ts_decay_linear(ts_delta(open, 2), 5)",
    ],
)
def test_warm_up_equals_lookback(expr: str) -> None:
    rng = np.random.default_rng(3)
    clean = Panel(
        np.arange(40, dtype=np.int64),
        ("a", "b"),
        {"volume": rng.lognormal(0, 1, (40, 2)), "open": rng.normal(0, 1, (40, 2))},
    )
    got = evaluate(expr, clean)
    look = parse(expr).lookback
    assert np.isnan(got[:look]).all()
    assert np.isfinite(got[look:]).all()


def test_long_series_running_sums_stay_accurate() -> None:
    rng = np.random.default_rng(5)
    x = 30_000.0 + np.cumsum(rng.normal(0, 50, (20_000, 2)), axis=0)
    x[rng.random(x.shape) < 0.001] = np.nan
    big = Panel(np.arange(x.shape[0], dtype=np.int64), ("a", "b"), {"close": x})
    df = pd.DataFrame(x)
    for expr, ref in [
        ("ts_std(close, 300)", df.rolling(300).std()),
        ("ts_mean(close, 50)", df.rolling(50).mean()),
    ]:
        got = evaluate(expr, big)
        np.testing.assert_allclose(got, ref.to_numpy(), rtol=1e-8, err_msg=expr)


# ------------------------------------------------------------------ cross-section


def _qcut_rows(df: pd.DataFrame, q: int) -> np.ndarray:
    out = np.full(df.shape, np.nan)
    for t, row in enumerate(df.to_numpy()):
        ok = np.isfinite(row)
        if ok.sum() >= q:
            out[t, ok] = pd.qcut(row[ok], q, labels=False) + 1
    return out


def _cs_cases() -> dict[str, np.ndarray | pd.DataFrame]:
    o = DF["open"]
    mean = o.mean(axis=1)
    return {
        "cs_rank(open)": o.rank(axis=1, pct=True),
        "cs_rank(sign(returns))": DF["returns"].apply(np.sign).rank(axis=1, pct=True),
        "cs_zscore(open)": o.sub(mean, axis=0).div(o.std(axis=1), axis=0),
        "cs_demean(open)": o.sub(mean, axis=0),
        "cs_scale(open)": o.div(o.abs().sum(axis=1), axis=0),
        "cs_quantile(open, 3)": _qcut_rows(o, 3),
        "cs_quantile(open, 2)": _qcut_rows(o, 2),
    }


CS_CASES = _cs_cases()


@pytest.mark.parametrize("expr", sorted(CS_CASES))
def test_cross_sectional_ops(expr: str) -> None:
    _check(expr, CS_CASES[expr])


def test_cross_section_edge_rows() -> None:
    x = np.array([[np.nan, np.nan, np.nan], [1.0, np.nan, np.nan], [2.0, 2.0, 2.0]])
    p = Panel(np.arange(3, dtype=np.int64), ("a", "b", "c"), {"open": x})
    assert np.isnan(evaluate("cs_zscore(open)", p)).all()
    np.testing.assert_array_equal(evaluate("cs_rank(open)", p)[1:, 0], [1.0, 2.0 / 3.0])
    np.testing.assert_array_equal(evaluate("cs_demean(open)", p)[2], [0.0, 0.0, 0.0])


# ------------------------------------------------------------------ plan, cache, errors


def test_every_operator_has_a_reference_case() -> None:
    text = " ".join([*UNARY_CASES, *BINARY_CASES, *TS_CASES, *CS_CASES])
    missing = [name for name in ops_table.OPS if f"{name}(" not in text]
    assert not missing


def test_kernel_codes_agree_with_the_operator_table() -> None:
    names = [n for n in dir(ops_table) if n.isupper() and isinstance(getattr(ops_table, n), int)]
    pairs = [(n, m) for n in names for m in (ops_nb, ts_nb) if hasattr(m, n)]
    assert len({n for n, _ in pairs}) > 40
    assert all(getattr(ops_table, n) == getattr(m, n) for n, m in pairs)


def test_common_subexpressions_are_computed_once() -> None:
    plan = compile_expr("ts_mean(close, 5) / ts_std(close, 5) + ts_mean(close,5) * 2")
    kinds = [(s.family, s.code, s.params) for s in plan.steps]
    assert kinds.count(("ts_window", ops_table.MEAN, (5,))) == 1
    assert kinds.count(("field", 0, ())) == 1
    assert compile_expr("ts_mean( close ,5)/ts_std(close,5)+ts_mean(close,5)*2") is plan


def test_evaluate_many_matches_single_evaluation() -> None:
    exprs = ["cs_rank(ts_mean(close, 5))", "ts_mean(close, 5) - close", "returns"]
    many = evaluate_many(exprs, PANEL)
    for e, got in zip(exprs, many, strict=True):
        np.testing.assert_array_equal(got, evaluate(e, PANEL))


def test_field_result_is_a_copy() -> None:
    got = evaluate("close", PANEL)
    got[:] = 0.0
    assert not (PANEL["close"] == 0).all()


def test_missing_field_is_an_expr_error() -> None:
    with pytest.raises(ExprError, match="funding_rate") as info:
        evaluate("funding_rate * 2", PANEL)
    assert info.value.token == "funding_rate"
    with pytest.raises(ExprError, match="no book"):
        evaluate("spread_bps", PANEL)
    with pytest.raises(ExprError, match="Panel"):
        evaluate("close", {"close": DATA["close"]})  # type: ignore[arg-type]


def test_empty_panel() -> None:
    empty = Panel(np.zeros(0, dtype=np.int64), ("a",), {"close": np.zeros((0, 1))})
    assert evaluate("cs_rank(ts_mean(returns, 3))", empty).shape == (0, 1)


def test_constant_windows_after_varying_data_are_exactly_degenerate() -> None:
    # running sums keep rounding residue after large values leave the window; a constant
    # window must still give std 0 and NaN correlation / z-score, not noise
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1e3, (57, 3)), np.full((40, 3), 0.7)])
    y = rng.normal(0, 1, x.shape)
    p = Panel(np.arange(x.shape[0], dtype=np.int64), ("a", "b", "c"), {"open": x, "close": y})
    std = evaluate("ts_std(open, 10)", p)
    np.testing.assert_array_equal(std[66:], 0.0)
    assert np.isnan(evaluate("ts_zscore(open, 10)", p)[66:]).all()
    corr = evaluate("ts_corr(open, close, 10)", p)
    assert np.isnan(corr[66:]).all()
    assert np.isfinite(corr[9:66]).all()


def test_read_only_panel_arrays() -> None:
    close = DATA["close"].copy()
    close.setflags(write=False)
    p = Panel(PANEL.ts_us, PANEL.symbols, {"close": close})
    got = evaluate("ts_mean(close, 5) - close", p)
    np.testing.assert_array_equal(got, evaluate("ts_mean(close, 5) - close", PANEL))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([1.0, 2.0, 3.0, -0.0, 0.0, np.nan, np.inf]), min_size=3,
                      max_size=3), min_size=1, max_size=40),
    st.integers(1, 12),
    st.sampled_from([ts_nb.TMIN, ts_nb.TMAX, ts_nb.ARGMIN, ts_nb.ARGMAX, ts_nb.RANK]),
)  # fmt: skip
def test_fast_window_kernels_equal_the_window_scan(rows, w, code) -> None:
    """The row scans of short windows (what ``ts_window`` runs here), the O(1) queue of
    min/max/argmin/argmax and the ring-buffer rank (longer windows) all agree bit for bit with
    a scan of every window, column by column (ties pick the earliest row or share their rank,
    -0.0 and 0.0 compare equal, a non-finite value blanks its windows)."""
    x = np.ascontiguousarray(rows, dtype=np.float64)
    want = np.empty_like(x)
    ts_nb._direct_block(x, want, 0, x.shape[1], w, code)
    queue = np.empty_like(x)
    if code == ts_nb.RANK:
        ts_nb._rank_block(x, queue, 0, x.shape[1], w)
    else:
        ts_nb._minmax_block(x, queue, 0, x.shape[1], w, code)
    assert w <= min(ts_nb.SCAN_W, ts_nb.RANK_SCAN_W)  # ts_window takes the row scan
    for got in (kernels.ts_window(x, w, code), queue):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # the same row's value


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 320), st.integers(0, 2**31 - 1), st.sampled_from([3, 1000]))
def test_cs_rank_matches_pandas_either_side_of_the_small_row_sort(n, seed, levels):
    """Rows short enough to rank by counting and rows sorted by argsort give pandas' ranks
    (ties averaged), NaN excluded."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (6, n)).astype(np.float64)
    x[rng.random(x.shape) < 0.1] = np.nan
    df = pd.DataFrame(x)
    got = kernels.cross_section(x, ops_nb.CS_RANK, 0)
    np.testing.assert_allclose(got, df.rank(axis=1, pct=True).to_numpy(), rtol=1e-12)
    for row, g in zip(x, got, strict=True):  # bit for bit: tie-averaged ranks over n
        ok = ~np.isnan(row)
        np.testing.assert_array_equal(g[ok], rankdata(row[ok]) / ok.sum())
    assert ops_nb.COUNT_ROW < 300  # both paths are drawn (rows of 10 % NaN)


@pytest.mark.parametrize("op", ["ts_rank", "ts_max", "ts_argmin", "ts_mean", "ts_skew"])
def test_a_window_longer_than_the_panel_is_all_nan(op: str) -> None:
    """Windows up to 1,000,000 bars are accepted; longer than the panel, every value is NaN
    (the ring and queue kernels return before sizing a per-column buffer by the window)."""
    got = evaluate(f"{op}(close, 1000000)", PANEL)
    assert got.shape == (T, N)
    assert np.isnan(got).all()


def test_kernels_split_across_threads_equal_one_thread() -> None:
    """Over ``pool.PARALLEL_MIN_CELLS`` every kernel family runs ranges of rows, column blocks
    or cells on several threads; the result is the same bits as on one thread."""
    import numba

    from alphaforge.engine import pool

    if numba.get_num_threads() < 2:
        pytest.skip("one thread: nothing to split")
    rng = np.random.default_rng(5)
    shape = (pool.PARALLEL_MIN_CELLS // 37 + 11, 37)  # 3 column blocks, the last one partial
    x, y = rng.normal(size=shape), rng.normal(size=shape) + 2.0
    x[rng.random(shape) < 0.02] = np.nan
    one = np.ones((1, 1))
    calls = {
        "unary": lambda: kernels.unary(x, ops_nb.LOG),
        "arith": lambda: kernels.arith(x, y, ops_nb.DIV),
        "arith_scalar": lambda: kernels.arith(x, one, ops_nb.SUB),
        "binary": lambda: kernels.binary(x, y, ops_nb.MAX),
        "where": lambda: kernels.where(x, y, one),
        "cs_zscore": lambda: kernels.cross_section(x, ops_nb.CS_ZSCORE, 0),
        "cs_quantile": lambda: kernels.cross_section(x, ops_nb.CS_QUANTILE, 5),
        "ts_shift": lambda: kernels.ts_shift(x, 3, ts_nb.PCT),
        "ts_std": lambda: kernels.ts_window(x, 20, ts_nb.STD),
        "ts_rank": lambda: kernels.ts_window(x, 10, ts_nb.RANK),
        "ts_corr": lambda: kernels.ts_pair(x, y, 15, ts_nb.CORR),
        "ts_ewm": lambda: kernels.ts_ewm(x, 12),
    }
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        alone = {k: f() for k, f in calls.items()}
    finally:
        numba.set_num_threads(threads)
    for k, f in calls.items():
        got = f()
        np.testing.assert_array_equal(got, alone[k], err_msg=k)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(alone[k]), err_msg=k)


@pytest.mark.parametrize("w", [3, 1000])
def test_window_kernels_equal_column_by_column(w: int) -> None:
    """Blocks of columns walked together (up to ``ts_nb.WIDE``, fewer for long windows by
    ``ts_nb.RING_CELLS``) give each column the bits it gets alone: every ts_window code, the
    pair kernels and the EWMA on 300 columns against slices of 7, NaN and ties included."""
    rng = np.random.default_rng(w)
    x = np.round(rng.normal(0, 2, (1500, 300)), 1)
    y = rng.normal(1, 1, x.shape)
    x[rng.random(x.shape) < 0.01] = np.nan
    assert w == 3 or ts_nb._width(w) < x.shape[1] // 2 - ts_nb.BLOCK  # blocks within a range
    calls = {f"window{c}": (lambda a, b, c=c: kernels.ts_window(a, w, c)) for c in range(12)}
    calls["corr"] = lambda a, b: kernels.ts_pair(a, b, w, ts_nb.CORR)
    calls["cov"] = lambda a, b: kernels.ts_pair(a, b, w, ts_nb.COV)
    calls["ewm"] = lambda a, b: kernels.ts_ewm(a, w)
    for name, f in calls.items():
        whole = f(x, y)
        for j in range(0, x.shape[1], 7):  # every column, in slices narrower than a block
            part = f(np.ascontiguousarray(x[:, j : j + 7]), np.ascontiguousarray(y[:, j : j + 7]))
            np.testing.assert_array_equal(whole[:, j : j + 7], part, err_msg=f"{name} col {j}")


@pytest.mark.parametrize("b", [2.0, 0.5])
def test_power_fast_exponents_equal_numpy(b: float) -> None:
    """``power`` and ``signed_power`` with exponent 2 or 0.5 give the bits of numpy's (and so
    pandas') ``x ** 2`` and ``x ** 0.5``, which numpy computes as a square and a square root,
    unfused and fused: random values over 600 binary orders, squares that fall exactly between
    two doubles, signed zeros, infinities, subnormals and negatives. (libm's ``pow`` is off by
    one unit in the last place for about 0.08 % of these; the kernel used it before.)"""
    from alphaforge.factors.expr import fused_run

    rng = np.random.default_rng(7)
    random = rng.normal(0, 1, 200_000) * np.exp(rng.uniform(-300, 300, 200_000))
    midpoints = np.arange(2**26 + 1, 2**26 + 400_001, 2, dtype=np.float64)  # k*k needs 54 bits
    edges = np.array([0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e-160, 1.4e154, 1e200, 1.0])
    a = np.concatenate([random, midpoints, midpoints * 2.0**-600, -midpoints, edges])
    a = a.reshape(-1, 1)
    c = np.full((1, 1), b)
    with np.errstate(all="ignore"):
        plain = np.power(a, b)
        plain[(a < 0) & (b != np.floor(b))] = np.nan
        signed = np.sign(a) * np.power(np.abs(a), b)
    for code, want in ((ops_nb.POW, plain), (ops_nb.SPOW, signed)):
        want = np.where(np.isfinite(want), want, np.nan)
        want[a == 0] = 0.0  # +0.0: libm's pow(-0.0, 0.5) is +0.0, and sign(0) * ... is 0
        prog = np.array([[1, code, 0, 1, -1]], dtype=np.int64)
        for got in (kernels.binary(a, c, code), fused_run.run_program([a, c], prog)):
            np.testing.assert_array_equal(got, want, err_msg=f"code {code}")
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=f"{code}")
