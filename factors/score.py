"""Score a factor: ICs, decay, quantiles, turnover, costs, a long-short backtest, DSR.

    >>> s = score_factor("cs_rank(-ts_pct_change(close, 5))", panel, horizons=(1, 5, 15))
    >>> s.rank_ic[1]["mean"], s.half_life, s.backtest["sharpe"], s.dsr["dsr"]

Every statistic is defined in ``factors.score_parts`` (formulas, NaN policy); forward
returns use the engine's execution prices (``factors.returns``). With ``split`` the panel is
cut by time: everything is scored on the rows before the cut (the train part, whose
forward returns end at the cut: no train statistic sees a test price) and, with
``test=True``, once more on the rows from the cut on (``FactorScore.test``). The factor
itself is evaluated once on the whole panel and then cut: a factor reads only the past
(``factors.lookahead`` checks that), and the test part keeps its warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.defaults import DEFAULTS
from alphaforge.engine.errors import EngineError
from alphaforge.engine.panel import Panel
from alphaforge.engine.timing import timing_warnings
from alphaforge.factors import score_parts
from alphaforge.factors.errors import FactorError, ScoreError
from alphaforge.factors.registry import Registry, deflate
from alphaforge.factors.resolve import FactorInput, resolve_factor
from alphaforge.factors.returns import nan_tail_rows
from alphaforge.factors.score_result import FactorScore

F64 = npt.NDArray[np.float64]

DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 15, 60, 240, 1440)
"""Default horizons in bars; the ones the panel cannot support are dropped."""

MIN_SCORED_ROWS = 20
"""A horizon h is kept when at least max(MIN_SCORED_ROWS, h) rows have a forward return."""


def usable_horizons(panel: Panel, horizons: Sequence[int], lag: int) -> tuple[int, ...]:
    """The horizons (sorted, unique) with at least max(MIN_SCORED_ROWS, h) scored rows."""
    hs = sorted({int(h) for h in horizons})
    if not hs or hs[0] < 1:
        raise ScoreError(f"horizons must be integers >= 1 bar; got {list(horizons)}")
    return tuple(h for h in hs if panel.T - nan_tail_rows(panel, h, lag) >= max(MIN_SCORED_ROWS, h))


def split_row(panel: Panel, split: float | int | str) -> int:
    """Row index of the train/test cut: a fraction in (0, 1), a UTC time (us int or ISO)."""
    if isinstance(split, float) and 0.0 < split < 1.0:
        return round(panel.T * split)
    if isinstance(split, str):
        import pandas as pd

        try:
            ts = pd.Timestamp(split)
        except ValueError as exc:
            raise ScoreError(f"split {split!r} is not an ISO date/time") from exc
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        cut_us = int(ts.as_unit("us").asm8.astype(np.int64))
    elif isinstance(split, int | np.integer):
        cut_us = int(split)
    else:
        raise ScoreError(
            f"split must be a fraction in (0, 1), an ISO time or int us; got {split!r}"
        )
    return int(np.searchsorted(panel.ts_us, cut_us, "left"))


def score_factor(
    factor: FactorInput,
    panel: Panel,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    lag: int = DEFAULTS.lag,
    quantiles: int = 5,
    fee_bps: float = DEFAULTS.fee_bps,
    slippage_bps: float = DEFAULTS.slippage_bps,
    rebalance_every: int = DEFAULTS.rebalance_every,
    split: float | int | str | None = None,
    test: bool = False,
    n_trials: int | None = None,
    var_trials: float | None = None,
    redundancy: bool | Mapping[str, str | F64] = False,
    min_obs: int = 3,
    available_us: npt.ArrayLike | None = None,
    registry: Registry | None = None,
    study: str | None = None,
    allow_holdout_reuse: bool = False,
) -> FactorScore:
    """Score a factor on a Panel.

    Args:
        factor: library name, expression text, a callable ``Panel -> (T, N)`` (checked for
            lookahead first, ``factors.lookahead``) or a (T, N) array aligned with the panel.
        panel: Panel with ``close`` (and ``open`` to trade at the next open), fixed interval.
        horizons: forward-return horizons in bars; unsupported ones are dropped (noted).
        lag: rows between decision and trade (factors.returns).
        quantiles: equal-count bins per row.
        fee_bps, slippage_bps: costs of the long-short backtest, bps of traded notional.
        rebalance_every: the long-short backtest sets targets on every k-th bar only
            (engine.defaults: the same defaults as ``alphaforge backtest``).
        split: train/test cut (fraction, ISO time or us); None scores the whole panel.
        test: with a split, also score the test part once.
        n_trials: trials behind this factor, for the Deflated Sharpe Ratio; None: the
            study-wide count of the ``registry`` (1 without one).
        var_trials: variance of the trials' per-bar Sharpe ratios (None: see factors.dsr).
        redundancy: True for every library factor, or name -> expression/array to compare.
        min_obs: fewest assets in a row for a cross-sectional statistic.
        available_us: for an array, when each value became known ((T,) or (T, N) UTC us);
            without it an array's lookahead verdict is "unverified".
        registry: the research registry (``factors.registry``): the scored trial is recorded,
            the DSR deflated at the study-wide count of distinct trials on this data (with the
            spread of their Sharpe ratios), and a ``test`` look at the holdout is claimed first.
        study: a label for the registry (it does not reset any count).
        allow_holdout_reuse: look at a holdout this signal already saw (the result is marked
            with the look number) instead of raising ``HoldoutReused``.

    Every result carries the lookahead verdict and, in ``warnings``, timing warnings (lag 0 or
    a close fallback, ``engine.timing``) and an unverified array.

    Raises:
        ScoreError: no usable horizon, a bad split, mis-shaped input.
        LookaheadError: a callable that reads later rows, an array value known after its bar.
        HoldoutReused: ``test`` on a holdout this signal (by values) already saw.
    """
    if panel.interval_us is None:
        raise ScoreError("panel has no interval_us; scoring needs a fixed bar interval")
    name, expr, values, verdict = resolve_factor(factor, panel, available_us=available_us)
    others = _redundancy_inputs(redundancy, panel, name) if redundancy else None
    warn = list(timing_warnings(lag, "open" in panel))
    if verdict.status == "unverified":
        warn.append(verdict.detail)
    notes: list[str] = []
    cut = panel.T
    if split is not None:
        cut = split_row(panel, split)
        if not 0 < cut < panel.T:
            raise ScoreError(f"split {split!r} falls at row {cut}; the panel has {panel.T} rows")
    scored_panel = panel if split is None else panel.take_rows(slice(0, cut))
    args = (horizons, lag, quantiles, fee_bps, slippage_bps, n_trials or 1, var_trials,
            rebalance_every)  # fmt: skip
    train_others = None if others is None else {k: v[:cut] for k, v in others.items()}
    main = _score(name, expr, values[:cut], scored_panel, *args, train_others, min_obs)
    trials = None
    if registry is not None:
        main, trials = _count_trial(registry, main, values[:cut], scored_panel, lag, study,
                                    deflate_by_registry=n_trials is None)  # fmt: skip
    tested = None
    if split is not None and test:
        holdout = panel.take_rows(slice(cut, None))
        if registry is None:
            warn.append("holdout look not recorded: no registry (the API and CLI keep one)")
        else:
            look = registry.claim_holdout(scored_panel, holdout, values[:cut], source="score",
                                          name=name, expression=expr, study=study,
                                          allow_reuse=allow_holdout_reuse)  # fmt: skip
            (warn if look.look > 1 else notes).append(look.note())
        tested = _score(name, expr, values[cut:], holdout, *args, None, min_obs)
    honesty = {"lookahead": verdict.to_dict(), "warnings": tuple(warn), "trials": trials,
               "notes": (*main.notes, *notes)}  # fmt: skip
    if split is None:
        return _replace(main, **honesty)
    info = {"cut_us": int(panel.ts_us[cut]), "train_rows": cut, "test_rows": panel.T - cut}
    if tested is not None:
        tested = _replace(tested, lookahead=verdict.to_dict(), warnings=tuple(warn))
    return _replace(main, split=info, test=tested, **honesty)


def trial_key(name: str, expr: str | None, values: F64, **settings: Any) -> str:
    """Identity of a trial: the canonical expression (or, for a callable or an array, its name
    and a hash of its values) and the settings that make a variant."""
    import hashlib

    ident = expr if expr is not None else (
        f"{name}#{hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()[:12]}"
    )  # fmt: skip
    return ident + "".join(f"|{k}={v}" for k, v in sorted(settings.items()))


def _count_trial(registry: Registry, scored: FactorScore, values: F64, panel: Panel, lag: int,
                 study: str | None, *, deflate_by_registry: bool
                 ) -> tuple[FactorScore, dict[str, Any]]:  # fmt: skip
    """Record the scored trial; return the score deflated at the study-wide trial count."""
    sr = float(scored.dsr.get("sr", math.nan)) if scored.dsr else math.nan
    key = trial_key(scored.name, scored.expression, values, lag=lag)
    registry.record_trial(panel, "score", key, name=scored.name, study=study, sr_per_bar=sr,
                          n_obs=int(scored.dsr.get("n_obs", 0)) if scored.dsr else 0)  # fmt: skip
    count = registry.trial_count(panel)
    info: dict[str, Any] = {"n_trials": count.n_trials, "by_kind": count.by_kind,
                            "ledger": str(registry.path)}  # fmt: skip
    if not deflate_by_registry:
        info["note"] = "DSR uses the trial count given explicitly"
        return scored, info
    dsr = deflate(count, dict(scored.dsr), panel.periods_per_year)
    info["sr_needed_annual"] = dsr.get("sr_needed_annual", math.nan)
    return _replace(scored, dsr=dsr), info


def _replace(s: FactorScore, **kw: Any) -> FactorScore:
    from dataclasses import replace

    return replace(s, **kw)


def _redundancy_inputs(
    redundancy: bool | Mapping[str, str | F64], panel: Panel, own: str
) -> dict[str, F64]:
    if isinstance(redundancy, Mapping):
        items: Mapping[str, str | F64] = redundancy
    else:
        from alphaforge.factors.library import list_factors

        items = {f.name: f.expr for f in list_factors(panel=panel)}
    return evaluate_all({n: v for n, v in items.items() if n != own}, panel)


def evaluate_all(factors: Mapping[str, str | F64], panel: Panel) -> dict[str, F64]:
    """Values of several factors, expressions evaluated together (shared subexpressions once).

    Library names are replaced by their expressions; arrays are checked for shape.
    """
    from alphaforge.factors.expr.compile import evaluate_many
    from alphaforge.factors.library import LIBRARY

    out: dict[str, F64] = {}
    texts: dict[str, str] = {}
    for n, spec in factors.items():
        if isinstance(spec, str):
            texts[n] = LIBRARY[spec].expr if spec in LIBRARY else spec
        else:
            out[n] = resolve_factor(spec, panel)[2]
    values = evaluate_many(list(texts.values()), panel)
    for n, v in zip(texts, values, strict=True):
        out[n] = np.ascontiguousarray(v, dtype=np.float64)
    return out


def _score(
    name: str,
    expr: str | None,
    values: F64,
    panel: Panel,
    horizons: Sequence[int],
    lag: int,
    quantiles: int,
    fee_bps: float,
    slippage_bps: float,
    n_trials: int,
    var_trials: float | None,
    rebalance_every: int,
    others: Mapping[str, F64] | None,
    min_obs: int,
) -> FactorScore:
    hs = usable_horizons(panel, horizons, lag)
    notes = []
    dropped = sorted({int(h) for h in horizons} - set(hs))
    if dropped:
        notes.append(f"horizons {dropped} dropped: the panel has only {panel.T} rows")
    if not hs:
        raise ScoreError(
            f"no horizon in {list(horizons)} fits a panel of {panel.T} rows (lag {lag})"
        )
    n_assets = panel.N
    if n_assets < min_obs:
        notes.append(
            f"{n_assets} asset(s) < min_obs={min_obs}: cross-sectional statistics are NaN; "
            "see the time-series RankIC"
        )
    core = score_parts.ic_block(values, panel, hs, lag, quantiles, min_obs)
    try:
        bt = score_parts.backtest_block(values, panel, lag, fee_bps, slippage_bps, n_trials,
                                        var_trials, rebalance_every)  # fmt: skip
    except (EngineError, FactorError) as exc:
        notes.append(f"backtest skipped: {exc}")
        bt = {"backtest": {}, "costs": {}, "dsr": {}}
    decay = score_parts.decay_block(values, panel, hs, lag, min_obs)
    return FactorScore(
        name=name,
        expression=expr,
        n_rows=panel.T,
        n_assets=panel.N,
        start_us=int(panel.ts_us[0]) if panel.T else 0,
        end_us=int(panel.ts_us[-1]) if panel.T else 0,
        lag=int(lag),
        horizons=hs,
        quantiles=int(quantiles),
        periods_per_year=float(panel.periods_per_year),
        ic=core["ic"],
        rank_ic=core["rank_ic"],
        quantile_returns=core["quantile_returns"],
        spread=core["spread"],
        decay=decay["decay"],
        half_life=float(decay["half_life"]),
        ts_rank_ic=score_parts.ts_block(values, core["fwd1"], panel.symbols),
        turnover=score_parts.turnover_block(values, quantiles, min_obs),
        backtest=bt["backtest"],
        costs=bt["costs"],
        dsr=bt["dsr"],
        redundancy=None
        if others is None
        else score_parts.redundancy_block(values, others, min_obs),
        notes=tuple(notes),
    )


def rank_factors(
    factors: Mapping[str, str | F64],
    panel: Panel,
    horizon: int = 1,
    lag: int = 1,
    min_obs: int = 3,
) -> list[tuple[str, float, float]]:
    """Factors ordered by |t-stat| of their RankIC at one horizon: [(name, mean, t_stat)].

    The t-stat (mean / std * sqrt(n / h), factors.ic.ic_summary) rather than the mean ranks
    them, so a factor that is defined (non-constant) on only a handful of rows cannot top
    the list on a noisy mean. NaN t-stats rank last.
    """
    from alphaforge.factors import ic
    from alphaforge.factors.returns import forward_returns

    fwd = forward_returns(panel, (horizon,), lag)[0]
    out = []
    for n, values in evaluate_all(factors, panel).items():
        summ = ic.ic_summary(ic.cs_ic(values, fwd, "spearman", min_obs), horizon)
        out.append((n, summ["mean"], summ["t_stat"]))
    return sorted(out, key=lambda kv: -abs(kv[2]) if math.isfinite(kv[2]) else math.inf)
