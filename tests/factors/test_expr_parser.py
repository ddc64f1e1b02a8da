"""Parser of the expression language: round trips, rejection of non-language input, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaforge.factors.errors import ExprError, FactorError
from alphaforge.factors.expr import Binary, Call, Field, Num, Unary, parse
from alphaforge.factors.expr.lexer import MAX_LENGTH
from alphaforge.factors.expr.parser import MAX_DEPTH
from tests.strategies import expr_asts

# ------------------------------------------------------------------ round trips


@given(expr_asts())
def test_parse_print_round_trip(node) -> None:
    text = str(node)
    again = parse(text)
    assert again == node
    assert hash(again) == hash(node)
    assert str(again) == text


@given(expr_asts())
def test_canonical_form_is_whitespace_insensitive(node) -> None:
    text = str(node)
    spaced = text.replace("(", " ( ").replace(",", " , ")
    squeezed = text.replace(", ", ",")
    assert parse(spaced) == node
    assert parse(squeezed) == node


def test_precedence_and_associativity() -> None:
    c, v = Field("close"), Field("volume")
    assert parse("close - volume - 1") == Binary("-", Binary("-", c, v), Num(1))
    assert parse("close + volume * 2") == Binary("+", c, Binary("*", v, Num(2)))
    assert parse("-close * 2") == Binary("*", Unary("-", c), Num(2))
    assert parse("close > 1 and volume < 2 or not close == 3") == Binary(
        "or",
        Binary("and", Binary(">", c, Num(1)), Binary("<", v, Num(2))),
        Unary("not", Binary("==", c, Num(3))),
    )
    assert parse("+close") == c
    assert str(parse("1.50")) == "1.5"
    assert parse("20.0") == parse("20") == Num(20)
    assert parse(".5e1") == Num(5)


def test_canonical_text_of_nested_expression() -> None:
    node = parse("cs_rank( ts_mean(returns,20) )/2")
    assert str(node) == "(cs_rank(ts_mean(returns, 20)) / 2)"
    assert node.canonical() == str(node)
    assert node.fields() == {"returns"}


@pytest.mark.parametrize(
    ("text", "lookback"),
    [
        ("close", 0),
        ("returns", 1),
        ("ts_mean(close, 20)", 19),
        ("ts_mean(returns, 20)", 20),
        ("ts_delay(close, 0)", 0),
        ("ts_delay(ts_mean(close, 5), 3)", 7),
        ("ts_corr(ts_delta(close, 2), volume, 10)", 11),
        ("cs_rank(ts_std(close, 5)) + ts_max(high, 30)", 29),
        ("ts_ewm(close, 12)", 11),
        ("cs_quantile(close, 5)", 0),
    ],
)
def test_lookback(text: str, lookback: int) -> None:
    assert parse(text).lookback == lookback


# ------------------------------------------------------------------ rejection


@pytest.mark.parametrize(
    ("text", "pos", "token"),
    [
        ("__import__('os')", 11, "'"),
        ("__import__", 0, "__import__"),
        ("close.__class__", 5, "."),
        ("open[0]", 4, "["),
        ("lambda: 1", 6, ":"),
        ("lambda", 0, "lambda"),
        ("'close'", 0, "'"),
        ('"close"', 0, '"'),
        ("close; volume", 5, ";"),
        ("x = 1", 2, "="),
        ("close = 1", 6, "="),
        ("exec", 0, "exec"),
        ("eval(close)", 0, "eval"),
        ("close ** 2", 7, "*"),
        ("close @ volume", 6, "@"),
        ("close if 1 else 2", 6, "if"),
        ("1 < 2 < 3", 6, "<"),
        ("ts_mean(close)", 0, "ts_mean"),
        ("ts_mean(close, volume)", 15, "volume"),
        ("ts_mean(close, 2.5)", 15, "2.5"),
        ("ts_mean(close, 0)", 15, "0"),
        ("close(1)", 0, "close"),
        ("ts_mean", 0, "ts_mean"),
        ("(close", 6, ""),
        ("close)", 5, ")"),
        ("", 0, ""),
        ("2abc", 0, "2a"),
        ("1e999", 0, "1e999"),
        ("close,volume", 5, ","),
        ("f(close)", 0, "f"),
    ],
)
def test_rejects_non_language_input(text: str, pos: int, token: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert info.value.pos == pos
    assert info.value.token == token
    assert f"position {pos}" in str(info.value)


@pytest.mark.parametrize(
    "text", ["ts_delay(close, -1)", "ts_delay(close, -(3))", "ts_delta(close,-2)"]
)
def test_negative_lag_is_a_parse_error(text: str) -> None:
    with pytest.raises(ExprError, match=r"must be >= \d+; got -"):
        parse(text)


def test_integer_argument_must_be_literal() -> None:
    with pytest.raises(ExprError, match="integer literal"):
        parse("ts_delay(close, 1 + 1)")
    with pytest.raises(ExprError, match="integer literal"):
        parse("ts_delay(close, returns)")


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("clsoe", "close"),
        ("ts_maen(close, 5)", "ts_mean"),
        ("cs_rnak(close)", "cs_rank"),
        ("volum", "volume"),
        ("quote_vol", "quote_volume"),
        ("ts_stdev(close, 5)", "ts_std"),
    ],
)
def test_unknown_names_suggest_the_closest(text: str, suggestion: str) -> None:
    with pytest.raises(ExprError, match=f"did you mean '{suggestion}'"):
        parse(text)


def test_errors_are_value_errors_in_the_factor_tree() -> None:
    with pytest.raises(ValueError, match="unknown name") as info:
        parse("nope")
    assert isinstance(info.value, FactorError)


def test_depth_and_length_limits() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "close" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ExprError, match="nested deeper"):
        parse(deep)
    assert parse("(" * 20 + "close" + ")" * 20) == Field("close")
    with pytest.raises(ExprError, match="nested deeper"):
        parse("-" * (MAX_DEPTH + 5) + "close")
    with pytest.raises(ExprError, match="limit"):
        parse("close + " * (MAX_LENGTH // 8 + 1) + "1")


def test_non_string_input() -> None:
    with pytest.raises(ExprError, match="must be a str"):
        parse(b"close")  # type: ignore[arg-type]


def test_hand_built_nodes_are_validated() -> None:
    with pytest.raises(ExprError, match="did you mean 'close'"):
        Field("closee")
    with pytest.raises(ExprError):
        Num(-1.0)
    with pytest.raises(ExprError):
        Num(float("nan"))
    with pytest.raises(ExprError, match="takes 2"):
        Call("ts_mean", (Field("close"),))
    with pytest.raises(ExprError):
        Unary("~", Field("close"))


# ------------------------------------------------------------------ fuzzing


def _parse_or_expr_error(text: str) -> None:
    """Parse; anything but a node or an ExprError with a position inside the text fails."""
    pos = -1
    try:
        node = parse(text)
    except ExprError as exc:
        pos = exc.pos
    if pos == -1:
        assert parse(str(node)) == node
    else:
        assert 0 <= pos <= len(text)


_ALPHABET = "abcdelmnorstuvwxz_0123456789.eE+-*/<>=!(),[]'\"; \t\n:&|~^@#%{}\\`$?"
_WORDS = ["close", "ts_mean", "cs_rank", "and", "or", "not", "(", ")", ",", "-", "20", "1e", "."]


@given(st.text(alphabet=_ALPHABET, max_size=60))
def test_fuzzed_garbage_raises_only_expr_error(text: str) -> None:
    _parse_or_expr_error(text)


@given(st.lists(st.sampled_from(_WORDS), max_size=25).map(" ".join))
def test_fuzzed_token_soup_raises_only_expr_error(text: str) -> None:
    _parse_or_expr_error(text)


@given(st.text(max_size=40))
def test_fuzzed_unicode_raises_only_expr_error(text: str) -> None:
    _parse_or_expr_error(text)


def test_long_operator_chains_parse_or_fail_with_a_position() -> None:
    """A flat chain of 400 '+' terms (~2,400 characters) is an ExprError naming where, never a
    RecursionError; a chain at the limit prints, analyses and evaluates."""
    from alphaforge.factors.expr.parser import MAX_HEIGHT

    with pytest.raises(ExprError, match=f"deeper than {MAX_HEIGHT} levels") as info:
        parse(" + ".join(["close"] * 400))
    assert info.value.pos > 0
    ok = parse(" + ".join(["close"] * MAX_HEIGHT))
    assert str(parse(str(ok))) == str(ok)
    assert ok.lookback == 0


def test_cs_quantile_cost_does_not_grow_with_q() -> None:
    """A huge bucket count is answered in O(log q) per cell (a binary search over the edges),
    and still equals the bucket of the same row under the plain edge scan."""
    import numpy as np

    from alphaforge.factors.expr import evaluate
    from alphaforge.panels import synthetic_panel

    p = synthetic_panel(n_symbols=7, n_bars=60, seed=2).panel
    big = evaluate("cs_quantile(close, 1000000)", p)
    row = p["close"][-1]
    order = np.argsort(row)
    n, q = row.size, 1_000_000
    pos = np.arange(q + 1) * (n - 1) / q
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    edges = row[order[lo]] + (pos - lo) * (row[order[hi]] - row[order[lo]])
    want = np.clip(np.searchsorted(edges, row, side="left"), 1, q)
    np.testing.assert_array_equal(big[-1], want.astype(float))
