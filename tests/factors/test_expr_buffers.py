"""Recycled result buffers (``compile.BufferPool``): a plan hands its dead intermediates to
later steps as outputs, so every kernel must write every cell of its result; and the plan
really does recycle them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from alphaforge.factors.expr import compile as expr_compile
from alphaforge.factors.expr import fused_run, kernels, ops_nb
from alphaforge.factors.expr.compile import BufferPool, _plan, evaluate_many
from alphaforge.factors.expr.parser import parse
from alphaforge.factors.library import LIBRARY
from tests.factors.panels import make_panel


def _filled(value: float) -> kernels.Alloc:
    def alloc(shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, value)

    return alloc


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    shape = (700, 9)
    x = rng.normal(0, 2, shape)
    y = rng.normal(1, 1, shape)
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.02] = 0.0
    y[rng.random(shape) < 0.02] = -np.inf
    x[:, 4] = np.nan  # an all-NaN column
    x[11, :] = np.nan  # an all-NaN row
    return x, y, np.full((1, 1), 2.5)


def _calls() -> dict[str, Callable[[kernels.Alloc], np.ndarray]]:
    x, y, c = _inputs()
    calls: dict[str, Callable[[kernels.Alloc], np.ndarray]] = {}
    for code in range(6):
        calls[f"unary{code}"] = lambda a, code=code: kernels.unary(x, code, a)
        calls[f"unary{code}_scalar"] = lambda a, code=code: kernels.unary(c, code, a)
    for code in range(16):
        calls[f"binary{code}"] = lambda a, code=code: kernels.binary(x, y, code, a)
        calls[f"binary{code}_scalar"] = lambda a, code=code: kernels.binary(c, y, code, a)
    for code in range(4):
        calls[f"arith{code}"] = lambda a, code=code: kernels.arith(x, y, code, a)
        calls[f"arith{code}_scalar"] = lambda a, code=code: kernels.arith(x, c, code, a)
    calls["where"] = lambda a: kernels.where(x, y, c, a)
    for code in range(5):
        calls[f"cs{code}"] = lambda a, code=code: kernels.cross_section(x, code, 4, a)
    for code in range(3):
        calls[f"shift{code}"] = lambda a, code=code: kernels.ts_shift(x, 3, code, a)
    for code in range(12):
        for w in (3, 40, 5000):  # 5000: longer than the panel
            calls[f"window{code}_{w}"] = lambda a, code=code, w=w: kernels.ts_window(x, w, code, a)
    for code in range(2):
        for w in (2, 30, 5000):
            calls[f"pair{code}_{w}"] = lambda a, code=code, w=w: kernels.ts_pair(x, y, w, code, a)
    calls["ewm"] = lambda a: kernels.ts_ewm(x, 12, a)
    prog = np.array([[1, ops_nb.MUL, 0, 1, -1], [1, ops_nb.ADD, 3, 2, -1]], dtype=np.int64)
    calls["fused"] = lambda a: fused_run.run_program([x, y, c], prog, a)
    return calls


@pytest.mark.parametrize("name", sorted(_calls()))
def test_every_kernel_writes_every_cell_of_its_output(name: str) -> None:
    """The same call into buffers pre-filled with two different values gives the same bits
    (NaN included), and the result is the buffer ``alloc`` returned."""
    call = _calls()[name]
    seen: list[np.ndarray] = []

    def alloc(shape: tuple[int, ...]) -> np.ndarray:
        seen.append(np.full(shape, 1e300))
        return seen[-1]

    first = call(alloc)
    assert first is seen[-1], name
    second = call(_filled(-3.5))
    np.testing.assert_array_equal(first, second, err_msg=name)
    np.testing.assert_array_equal(np.signbit(first), np.signbit(second), err_msg=name)


def _library_exprs() -> list[str]:
    return [f.expr for f in LIBRARY.values()]


def test_library_plan_equals_itself_with_poisoned_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole library in one shared plan on a Panel from the product's loaders: recycled
    buffers (the default) give the same bits as fresh buffers filled with garbage, and the
    plan recycles most of its intermediates."""
    panel = make_panel(n_bars=300, n_assets=5, seed=4)
    exprs = _library_exprs()
    counts = {"alloc": 0, "recycled": 0}
    real_alloc = BufferPool.alloc

    def counting(self: BufferPool, shape: tuple[int, ...]) -> np.ndarray:
        counts["alloc"] += 1
        counts["recycled"] += shape == self.shape and bool(self._free)
        return real_alloc(self, shape)

    monkeypatch.setattr(BufferPool, "alloc", counting)
    recycled = evaluate_many(exprs, panel)
    assert counts["recycled"] > counts["alloc"] // 2, counts

    def poisoned(self: BufferPool, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, -7.25e11)

    monkeypatch.setattr(BufferPool, "alloc", poisoned)
    fresh = evaluate_many(exprs, panel)
    for expr, a, b in zip(exprs, recycled, fresh, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=expr)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b), err_msg=expr)


def test_roots_and_fields_are_never_recycled() -> None:
    """A root's array and a panel field are never handed out again: a plan whose roots are
    an intermediate's consumers and a bare field leaves the panel untouched."""
    panel = make_panel(n_bars=200, n_assets=4, seed=2)
    close = panel.fields["close"].copy()
    nodes = [parse("ts_mean(close, 5) + 1"), parse("close"), parse("cs_rank(ts_mean(close, 5))")]
    plan = _plan(nodes)
    a, b, c = plan.run(panel)
    np.testing.assert_array_equal(panel.fields["close"], close)
    np.testing.assert_array_equal(b, close)
    assert b is not panel.fields["close"]
    assert len({id(a), id(b), id(c)}) == 3
    mean = expr_compile.evaluate("ts_mean(close, 5)", panel)
    np.testing.assert_array_equal(a, mean + 1)


def test_a_derived_field_is_recycled_and_a_stored_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``returns`` (derived: a fresh array) goes back to the pool after its last use;
    ``close`` (the panel's own array) never does, and the panel is left as it was."""
    panel = make_panel(n_bars=200, n_assets=4, seed=3)
    close = panel.fields["close"].copy()
    given: list[np.ndarray] = []
    real_give = BufferPool.give

    def record(self: BufferPool, a: np.ndarray) -> None:
        given.append(a)
        real_give(self, a)

    monkeypatch.setattr(BufferPool, "give", record)
    got = expr_compile.evaluate("ts_mean(returns, 3) * ts_mean(close, 3)", panel)
    assert not any(a is panel.fields["close"] for a in given)
    assert len(given) == 3  # returns and the two means; never close
    np.testing.assert_array_equal(panel.fields["close"], close)
    with np.errstate(all="ignore"):
        r = np.full(close.shape, np.nan)
        r[1:] = close[1:] / close[:-1] - 1.0
    want = _rolling_mean(np.where(np.isfinite(r), r, np.nan), 3) * _rolling_mean(close, 3)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def _rolling_mean(a: np.ndarray, w: int) -> np.ndarray:
    import pandas as pd

    return pd.DataFrame(a).rolling(w).mean().to_numpy()
