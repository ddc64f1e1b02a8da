"""Fusion of elementwise chains (factors/expr/fuse.py, fused_nb.py): which steps fuse, and
fused plans equal one-kernel-per-op plans bit for bit on random expressions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alphaforge.engine.panel import Panel
from alphaforge.factors.expr import fused_nb, fused_run, kernels, ops_nb
from alphaforge.factors.expr.compile import _plan, compile_expr
from alphaforge.factors.expr.nodes import Binary, Call, Field, Num, Unary
from alphaforge.factors.expr.parser import parse

T, N = 10_000, 7  # 70,000 cells: several chunks and parallel tasks, a partial last chunk


def _panel() -> Panel:
    rng = np.random.default_rng(5)
    f = {k: rng.normal(0, 2, (T, N)) for k in ("open", "high", "low", "close", "volume")}
    f["close"][rng.random((T, N)) < 0.05] = 0.0
    f["low"][rng.random((T, N)) < 0.02] = -0.0
    f["high"][rng.random((T, N)) < 0.03] = np.nan
    f["volume"][rng.random((T, N)) < 0.01] = np.inf
    return Panel(np.arange(T, dtype=np.int64) * 60_000_000, tuple("ABCDEFG"), f,
                 interval_us=60_000_000)  # fmt: skip


PANEL = _panel()
FIELDS = ("open", "high", "low", "close", "volume")


def _elementwise(max_leaves: int = 14) -> st.SearchStrategy:
    """Elementwise-heavy ASTs over the panel's fields, with constants (0 included), shared
    subtrees and an occasional ts_mean/cs_rank that the chain then reads as a leaf."""
    nums = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 1e-3, 1e300]).map(Num)
    leaves = st.one_of(st.sampled_from(FIELDS).map(Field), nums)

    def extend(kids: st.SearchStrategy) -> st.SearchStrategy:
        fns = ["abs", "log", "sign", "sqrt"]
        fns2 = ["power", "signed_power", "min", "max"]
        return st.one_of(
            st.builds(Unary, st.sampled_from(["-", "not"]), kids),
            st.builds(
                Binary,
                st.sampled_from(
                    ["+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "and", "or"]
                ),
                kids,
                kids,
            ),
            st.builds(lambda f, a: Call(f, (a,)), st.sampled_from(fns), kids),
            st.builds(lambda f, a, b: Call(f, (a, b)), st.sampled_from(fns2), kids, kids),
            st.builds(lambda a, b, c: Call("where", (a, b, c)), kids, kids, kids),
            st.builds(lambda a, b, c: Call("clip", (a, b, c)), kids, kids, kids),
            st.builds(lambda a: Binary("+", a, a), kids),  # a shared subtree
            st.builds(lambda a: Call("ts_mean", (a, Num(3.0))), kids),
            st.builds(lambda a: Call("cs_rank", (a,)), kids),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))  # -0.0 stays -0.0


@settings(max_examples=150, deadline=None)
@given(st.lists(_elementwise(), min_size=1, max_size=3))
def test_fused_plans_equal_one_kernel_per_op(nodes) -> None:
    fused = _plan(nodes).run(PANEL)
    plain = _plan(nodes, fuse=False).run(PANEL)
    for a, b in zip(fused, plain, strict=True):
        _same(a, b)


def test_a_chain_is_one_step_and_shared_values_stay_materialised() -> None:
    plan = compile_expr("-(close - open) / (high - low + 0.001)")
    fams = [s.family for s in plan.steps]
    assert fams.count("fused") == 1
    assert not {"unary", "binary"} & set(fams)
    (f,) = [s for s in plan.steps if s.family == "fused"]
    assert len(f.program) == 5  # -, -, +, /, neg
    assert len(f.inputs) == 5  # close, open, high, low, 0.001
    # a value read by two consumers is computed once and read by both chains
    shared = _plan([parse("(close - open) * 2 + ts_mean(close - open, 3)")])
    assert [s.family for s in shared.steps].count("binary") == 1  # close - open, once
    # a root is never inlined: evaluate_many hands out both
    roots = _plan([parse("close - open"), parse("(close - open) * 2")])
    assert len(roots.run(PANEL)) == 2
    _same(roots.run(PANEL)[1], 2 * (PANEL["close"] - PANEL["open"]))


def test_a_chain_of_constants_stays_a_constant() -> None:
    got = compile_expr("-(2 * 3 + 1) + close * 0")(PANEL)
    want = _plan([parse("-(2 * 3 + 1) + close * 0")], fuse=False).run(PANEL)[0]
    _same(got, want)
    prog = np.array([[fused_nb.BINARY, 2, 0, 1, -1], [fused_nb.UNARY, 0, 2, -1, -1]])
    two, three = np.full((1, 1), 2.0), np.full((1, 1), 3.0)
    assert fused_run.run_program([two, three], prog).tolist() == [[-6.0]]


def test_a_chain_reading_more_arrays_than_the_kernel_takes_is_not_fused() -> None:
    nine = " + ".join(f"ts_mean(close, {w})" for w in range(2, 11))  # 9 arrays, 8 additions
    plan = compile_expr(nine)
    assert "fused" not in [s.family for s in plan.steps]
    eight = compile_expr(" + ".join(f"ts_mean(close, {w})" for w in range(2, 10)))
    assert [s.family for s in eight.steps].count("fused") == 1
    _same(plan(PANEL), _plan([parse(nine)], fuse=False).run(PANEL)[0])


def test_large_programs_split_across_threads_equal_one_thread() -> None:
    """Over PARALLEL_MIN_CELLS, cell ranges run on several threads; the result is the same."""
    import numba

    rng = np.random.default_rng(9)
    shape = (fused_run.PARALLEL_MIN_CELLS // 97 + 13, 97)  # ranges end mid-chunk
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    a[rng.random(shape) < 0.01] = np.nan
    prog = np.array([[fused_nb.BINARY, 3, 0, 1, -1], [fused_nb.UNARY, 2, 2, -1, -1]])  # log(a/b)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = fused_run.run_program([a, b], prog)
    finally:
        numba.set_num_threads(threads)
    many = fused_run.run_program([a, b], prog)
    _same(many, one)
    unfused = kernels.unary(kernels.arith(a, b, ops_nb.DIV), ops_nb.LOG)
    _same(many, unfused)  # bit for bit: the same scalar functions (libm's log)
    with np.errstate(all="ignore"):
        want = np.log(a / b)
    # numpy's own SIMD log (AVX-512 machines) may differ from libm's in the last bit
    np.testing.assert_allclose(many, np.where(np.isfinite(want), want, np.nan),
                               rtol=2 * np.finfo(np.float64).eps, atol=0.0)  # fmt: skip
