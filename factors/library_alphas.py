"""101 Formulaic Alphas (Kakushadze 2016, arXiv:1601.00991) that need no industry data.

Each entry is ``(name, expression, doc)``. The expressions follow the paper's formulas term by
term, translated to this language:

- rank -> cs_rank; ts_rank -> ts_rank (percentile in (0, 1]; the paper leaves the scale open);
  delay -> ts_delay; delta -> ts_delta; correlation -> ts_corr; covariance -> ts_cov;
  stddev -> ts_std; sum -> ts_sum; product -> ts_product; scale -> cs_scale;
  SignedPower -> signed_power; decay_linear -> ts_decay_linear; ts_argmax/argmin are 1-based
  from the oldest bar; ``x ^ y`` -> power(x, y); ``c ? a : b`` -> where(c, a, b); ``-1 * x`` -> -x.
- Crypto adaptations: "days" are bars; ``volume`` is base-asset volume; ``adv{d}`` (average daily
  dollar volume) is ``ts_mean(quote_volume, d)``; ``vwap`` is the bar VWAP (quote_volume / volume
  when the panel has none). No alpha here needs industry classification or market cap.
"""

from __future__ import annotations

_D1 = "ts_delta(close, 1)"

ALPHAS: tuple[tuple[str, str, str], ...] = (
    (
        "alpha001",
        "cs_rank(ts_argmax(signed_power(where(returns < 0, ts_std(returns, 20), close), 2), 5))"
        " - 0.5",
        "(rank(Ts_ArgMax(SignedPower(((returns < 0) ? stddev(returns, 20) : close), 2.), 5))"
        " - 0.5)",
    ),
    (
        "alpha002",
        "-ts_corr(cs_rank(ts_delta(log(volume), 2)), cs_rank((close - open) / open), 6)",
        "(-1 * correlation(rank(delta(log(volume), 2)), rank(((close - open) / open)), 6))",
    ),
    (
        "alpha003",
        "-ts_corr(cs_rank(open), cs_rank(volume), 10)",
        "(-1 * correlation(rank(open), rank(volume), 10))",
    ),
    ("alpha004", "-ts_rank(cs_rank(low), 9)", "(-1 * Ts_Rank(rank(low), 9))"),
    (
        "alpha005",
        "cs_rank(open - ts_sum(vwap, 10) / 10) * -abs(cs_rank(close - vwap))",
        "(rank((open - (sum(vwap, 10) / 10))) * (-1 * abs(rank((close - vwap)))))",
    ),
    ("alpha006", "-ts_corr(open, volume, 10)", "(-1 * correlation(open, volume, 10))"),
    (
        "alpha008",
        "-cs_rank(ts_sum(open, 5) * ts_sum(returns, 5)"
        " - ts_delay(ts_sum(open, 5) * ts_sum(returns, 5), 10))",
        "(-1 * rank(((sum(open, 5) * sum(returns, 5)) - delay((sum(open, 5) * sum(returns, 5)),"
        " 10))))",
    ),
    (
        "alpha009",
        f"where(0 < ts_min({_D1}, 5), {_D1}, where(ts_max({_D1}, 5) < 0, {_D1}, -{_D1}))",
        "((0 < ts_min(delta(close, 1), 5)) ? delta(close, 1) : ((ts_max(delta(close, 1), 5) < 0)"
        " ? delta(close, 1) : (-1 * delta(close, 1))))",
    ),
    (
        "alpha010",
        f"cs_rank(where(0 < ts_min({_D1}, 4), {_D1}, where(ts_max({_D1}, 4) < 0, {_D1}, -{_D1})))",
        "rank(((0 < ts_min(delta(close, 1), 4)) ? delta(close, 1) : ((ts_max(delta(close, 1), 4)"
        " < 0) ? delta(close, 1) : (-1 * delta(close, 1)))))",
    ),
    (
        "alpha012",
        f"sign(ts_delta(volume, 1)) * -{_D1}",
        "(sign(delta(volume, 1)) * (-1 * delta(close, 1)))",
    ),
    (
        "alpha013",
        "-cs_rank(ts_cov(cs_rank(close), cs_rank(volume), 5))",
        "(-1 * rank(covariance(rank(close), rank(volume), 5)))",
    ),
    (
        "alpha014",
        "-cs_rank(ts_delta(returns, 3)) * ts_corr(open, volume, 10)",
        "((-1 * rank(delta(returns, 3))) * correlation(open, volume, 10))",
    ),
    (
        "alpha015",
        "-ts_sum(cs_rank(ts_corr(cs_rank(high), cs_rank(volume), 3)), 3)",
        "(-1 * sum(rank(correlation(rank(high), rank(volume), 3)), 3))",
    ),
    (
        "alpha016",
        "-cs_rank(ts_cov(cs_rank(high), cs_rank(volume), 5))",
        "(-1 * rank(covariance(rank(high), rank(volume), 5)))",
    ),
    (
        "alpha018",
        "-cs_rank(ts_std(abs(close - open), 5) + (close - open) + ts_corr(close, open, 10))",
        "(-1 * rank(((stddev(abs((close - open)), 5) + (close - open)) + correlation(close, open,"
        " 10))))",
    ),
    (
        "alpha019",
        "-sign(close - ts_delay(close, 7) + ts_delta(close, 7))"
        " * (1 + cs_rank(1 + ts_sum(returns, 250)))",
        "((-1 * sign(((close - delay(close, 7)) + delta(close, 7)))) * (1 + rank((1 +"
        " sum(returns, 250)))))",
    ),
    (
        "alpha020",
        "-cs_rank(open - ts_delay(high, 1)) * cs_rank(open - ts_delay(close, 1))"
        " * cs_rank(open - ts_delay(low, 1))",
        "(((-1 * rank((open - delay(high, 1)))) * rank((open - delay(close, 1)))) * rank((open -"
        " delay(low, 1))))",
    ),
    (
        "alpha022",
        "-(ts_delta(ts_corr(high, volume, 5), 5) * cs_rank(ts_std(close, 20)))",
        "(-1 * (delta(correlation(high, volume, 5), 5) * rank(stddev(close, 20))))",
    ),
    (
        "alpha023",
        "where(ts_sum(high, 20) / 20 < high, -ts_delta(high, 2), 0)",
        "(((sum(high, 20) / 20) < high) ? (-1 * delta(high, 2)) : 0)",
    ),
    (
        "alpha026",
        "-ts_max(ts_corr(ts_rank(volume, 5), ts_rank(high, 5), 5), 3)",
        "(-1 * ts_max(correlation(ts_rank(volume, 5), ts_rank(high, 5), 5), 3))",
    ),
    (
        "alpha028",
        "cs_scale(ts_corr(ts_mean(quote_volume, 20), low, 5) + (high + low) / 2 - close)",
        "scale(((correlation(adv20, low, 5) + ((high + low) / 2)) - close)); adv20 = 20-bar mean"
        " quote volume",
    ),
    (
        "alpha033",
        "cs_rank(-(1 - open / close))",
        "rank((-1 * ((1 - (open / close))^1)))",
    ),
    (
        "alpha034",
        "cs_rank((1 - cs_rank(ts_std(returns, 2) / ts_std(returns, 5))) + (1 - cs_rank("
        + _D1
        + ")))",
        "rank(((1 - rank((stddev(returns, 2) / stddev(returns, 5)))) + (1 - rank(delta(close,"
        " 1)))))",
    ),
    (
        "alpha035",
        "ts_rank(volume, 32) * (1 - ts_rank(close + high - low, 16)) * (1 - ts_rank(returns, 32))",
        "((Ts_Rank(volume, 32) * (1 - Ts_Rank(((close + high) - low), 16))) * (1 -"
        " Ts_Rank(returns, 32)))",
    ),
    (
        "alpha038",
        "-cs_rank(ts_rank(close, 10)) * cs_rank(close / open)",
        "((-1 * rank(Ts_Rank(close, 10))) * rank((close / open)))",
    ),
    (
        "alpha040",
        "-cs_rank(ts_std(high, 10)) * ts_corr(high, volume, 10)",
        "((-1 * rank(stddev(high, 10))) * correlation(high, volume, 10))",
    ),
    ("alpha041", "power(high * low, 0.5) - vwap", "(((high * low)^0.5) - vwap)"),
    (
        "alpha042",
        "cs_rank(vwap - close) / cs_rank(vwap + close)",
        "(rank((vwap - close)) / rank((vwap + close)))",
    ),
    (
        "alpha044",
        "-ts_corr(high, cs_rank(volume), 5)",
        "(-1 * correlation(high, rank(volume), 5))",
    ),
    (
        "alpha053",
        "-ts_delta(((close - low) - (high - close)) / (close - low), 9)",
        "(-1 * delta((((close - low) - (high - close)) / (close - low)), 9))",
    ),
    (
        "alpha054",
        "-((low - close) * power(open, 5)) / ((low - high) * power(close, 5))",
        "((-1 * ((low - close) * (open^5))) / ((low - high) * (close^5)))",
    ),
    (
        "alpha055",
        "-ts_corr(cs_rank((close - ts_min(low, 12)) / (ts_max(high, 12) - ts_min(low, 12))),"
        " cs_rank(volume), 6)",
        "(-1 * correlation(rank(((close - ts_min(low, 12)) / (ts_max(high, 12) - ts_min(low,"
        " 12)))), rank(volume), 6))",
    ),
    (
        "alpha101",
        "(close - open) / ((high - low) + 0.001)",
        "((close - open) / ((high - low) + .001)); the 0.001 is in quote currency, so the"
        " alpha depends on the price scale (kept as published)",
    ),
)
"""(name, expression, the paper's formula and adaptation notes)."""
