"""Shared hypothesis strategies for the test suite (append new sections; keep them independent)."""

from __future__ import annotations

from hypothesis import strategies as st


# ---------------------------------------------------------------- expression ASTs (factors.expr)
def expr_asts(max_leaves: int = 12) -> st.SearchStrategy:
    """Random valid ASTs of the factor expression language (factors.expr.nodes).

    Numbers are non-negative finite floats (negation is a Unary node), integer-literal
    arguments respect each operator's minimum, nesting stays well under the parser's limit.
    """
    from alphaforge.factors.expr.nodes import Binary, Call, Field, Num, Unary
    from alphaforge.factors.expr.ops import BINARY_OPS, OPS, UNARY_OPS
    from alphaforge.factors.fields import FIELDS

    nums = st.one_of(
        st.integers(0, 10**6).map(float),
        st.floats(0, 1e12, allow_nan=False, allow_infinity=False),
        st.floats(0, 1e-6, allow_nan=False, allow_infinity=False),
    ).map(Num)
    leaves = st.one_of(nums, st.sampled_from(sorted(FIELDS)).map(Field))

    def extend(children: st.SearchStrategy) -> st.SearchStrategy:
        unary = st.builds(Unary, st.sampled_from(sorted(UNARY_OPS)), children)
        binary = st.builds(Binary, st.sampled_from(sorted(BINARY_OPS)), children, children)

        @st.composite
        def call(draw: st.DrawFn) -> Call:
            spec = OPS[draw(st.sampled_from(sorted(OPS)))]
            ints = dict(spec.int_args)
            args = [
                Num(float(draw(st.integers(ints[i], ints[i] + 30))))
                if i in ints
                else draw(children)
                for i in range(spec.arity)
            ]
            return Call(spec.name, tuple(args))

        return st.one_of(unary, binary, call())

    return st.recursive(leaves, extend, max_leaves=max_leaves)


# --------------------------------------------------------------- data validation (issue 4)
def planted_defects(
    kinds: tuple[str, ...], n_slots: int, max_defects: int = 8
) -> st.SearchStrategy:
    """Lists of (kind, slot, jitter): distinct slots (so defects never touch each other), each
    kind drawn from ``kinds``; jitter in [0, 5) moves the defect inside its slot."""
    return st.lists(
        st.tuples(
            st.sampled_from(kinds),
            st.integers(0, n_slots - 1),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=max_defects,
        unique_by=lambda d: d[1],
    )


def float_arrays_with_nans(max_size: int = 300) -> st.SearchStrategy:
    """float64 lists with NaNs and ties (for rolling-median golden tests)."""
    elem = st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, 1.0, -1.0, 2.5]),
        st.just(float("nan")),
    )
    return st.lists(elem, min_size=0, max_size=max_size)


# ---------------------------------------------------------------- markets (engine backtest)
@st.composite
def price_paths(draw: st.DrawFn, max_t: int = 60, max_n: int = 4) -> tuple:
    """(close (T, N), open (T, N), weights (T, N)) with positive prices and bounded weights.

    Opens are the previous close moved by a small gap, so lag >= 1 fills differ from closes.
    """
    import numpy as np

    t = draw(st.integers(2, max_t))
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, draw(st.sampled_from([0.001, 0.01, 0.05])), (t, n))
    close = 100.0 * np.exp(np.cumsum(rets, axis=0))
    gaps = np.exp(rng.normal(0.0, 0.002, (t, n)))
    open_ = np.vstack([close[:1] * gaps[:1], close[:-1] * gaps[1:]])
    w = rng.uniform(-1.0, 1.0, (t, n)) / n
    if draw(st.booleans()):
        w[rng.random((t, n)) < 0.3] = np.nan
    return close, open_, w


# ---------------------------------------------------------------- order-book sides (issue 6)
def book_sides(max_levels: int = 30) -> st.SearchStrategy:
    """One side of a book as (px (L,), qty (L,)) float64: prices strictly increasing from a
    positive best (an ask side; reverse for bids), positive quantities."""
    import numpy as np

    @st.composite
    def side(draw: st.DrawFn) -> tuple:
        n = draw(st.integers(1, max_levels))
        best = draw(st.floats(1.0, 1e5))
        steps = draw(st.lists(st.floats(1e-4, 0.05), min_size=n, max_size=n))
        qty = draw(st.lists(st.floats(1e-3, 50.0), min_size=n, max_size=n))
        px = best * np.cumprod(1.0 + np.array(steps)) / (1.0 + steps[0])
        return px.astype(np.float64), np.array(qty, dtype=np.float64)

    return side()
