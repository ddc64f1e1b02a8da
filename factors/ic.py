"""Information coefficients, quantile returns and turnover of a factor (array API).

Thin, validating wrappers around the kernels in ``factors.score_nb``. Inputs are (T, N)
float64 factor values and forward returns (see ``factors.returns``) with NaN = missing.

NaN: every statistic uses the pairwise-complete assets of a row (finite factor and finite
forward return); a row with fewer than ``min_obs`` such assets gives NaN and is skipped by
the summaries, never zero-filled.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from alphaforge.engine.pool import pool, run_ranges
from alphaforge.factors import score_nb, ts_ic_nb, turnover_nb
from alphaforge.factors.errors import ScoreError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Method = Literal["pearson", "spearman"]


def as_panel_array(name: str, arr: object, ndim: int = 2) -> F64:
    """C-contiguous float64 copy/view of ``arr`` with ``ndim`` dimensions, else ScoreError."""
    try:
        a = np.ascontiguousarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScoreError(f"{name} must be a numeric array; got {type(arr).__name__}") from exc
    if a.ndim != ndim:
        raise ScoreError(f"{name} must have {ndim} dimensions; got shape {a.shape}")
    return a


def _pair(factor: object, fwd: object) -> tuple[F64, F64]:
    f = as_panel_array("factor", factor)
    r = as_panel_array("forward returns", fwd)
    if f.shape != r.shape:
        raise ScoreError(f"factor has shape {f.shape} but forward returns have {r.shape}")
    return f, r


def _min_obs(min_obs: int) -> int:
    if int(min_obs) != min_obs or min_obs < 2:
        raise ScoreError(f"min_obs must be an integer >= 2; got {min_obs!r}")
    return int(min_obs)


def cs_ic(
    factor: F64,
    fwd: F64,
    method: Method = "spearman",
    min_obs: int = 3,
    *,
    f_order: I64 | None = None,
) -> F64:
    """Per-timestamp cross-sectional IC.

    Args:
        factor: (T, N) factor values.
        fwd: (T, N) forward returns aligned with the factor's decision rows.
        method: "pearson" (IC) or "spearman" (RankIC, average ranks for ties).
        min_obs: fewest pairwise-complete assets for a row to get a value.
        f_order: ``argsort_rows(factor)`` if already computed.

    Returns:
        (T,) float64 correlation per row, NaN where undefined.

    Equivalent to: ``scipy.stats.spearmanr(f[t], r[t], nan_policy="omit")`` per row.
    """
    if method not in ("pearson", "spearman"):
        raise ScoreError(f"method must be 'pearson' or 'spearman'; got {method!r}")
    f, r = _pair(factor, fwd)
    cs = cross_section(f, r[None], quantiles=2, min_obs=min_obs, f_order=f_order)
    out: F64 = cs.rank_ic[0] if method == "spearman" else cs.ic[0]
    return out


def qcut_probabilities(quantiles: int) -> F64:
    """The probabilities pandas.qcut uses for ``quantiles`` equal-count bins, (q+1,).

    pandas rounds k/q up to the next float when q * (k/q) != k; we do the same so the
    bin edges agree bit for bit.
    """
    q = int(quantiles)
    if q != quantiles or q < 2:
        raise ScoreError(f"quantiles must be an integer >= 2; got {quantiles!r}")
    qs = np.linspace(0.0, 1.0, q + 1)
    np.putmask(qs, q * qs != np.arange(q + 1), np.nextafter(qs, 1.0))
    return qs


def quantile_bins(factor: F64, quantiles: int = 5, min_obs: int = 3) -> I64:
    """Per-timestamp equal-count quantile bins (0 = lowest factor), -1 where NaN.

    Equivalent to: ``pandas.qcut(f[t].dropna(), quantiles, labels=False)`` per row; rows
    whose edges are not unique (many ties) are all -1, where pandas raises.
    """
    f = as_panel_array("factor", factor)
    qk = qcut_probabilities(quantiles)
    order, mo = argsort_rows(f), _min_obs(min_obs)
    out: I64 = np.full(f.shape, -1, dtype=np.int64)
    run_ranges(lambda lo, hi: score_nb.cs_bins(f, order, qk, mo, out, lo, hi), f.shape[0], f.size)
    return out


def argsort_rows(x: F64) -> I64:
    """Row-wise ascending argsort with every non-finite value placed last, threaded.

    Non-finite values are replaced by +inf first: numpy's vectorized (SIMD) sort takes a
    much slower path on rows containing NaN. The order among non-finite values is
    unspecified; the kernels skip them. numpy releases the GIL while sorting, so row chunks
    sort in parallel on the shared threads (``engine.pool``; numba's thread count).
    """
    import numba

    x = np.where(np.isfinite(x), x, np.inf)
    out = np.empty(x.shape, dtype=np.int64)
    workers = max(1, min(int(numba.get_num_threads()), x.shape[0] // 2048))
    if workers == 1:
        out[:] = np.argsort(x, axis=1)
        return out
    bounds = np.linspace(0, x.shape[0], workers + 1).astype(int)

    def part(i: int) -> None:
        out[bounds[i] : bounds[i + 1]] = np.argsort(x[bounds[i] : bounds[i + 1]], axis=1)

    list(pool().map(part, range(workers)))
    return out


@dataclass(frozen=True, slots=True)
class CrossSection:
    """Per-timestamp cross-sectional statistics for H horizons.

    Attributes:
        ic: (H, T) Pearson IC.
        rank_ic: (H, T) Spearman RankIC.
        qmean: (H, T, q) mean forward return per quantile bin (0 = lowest factor).
        qcount: (H, T, q) assets per bin.
    """

    ic: F64
    rank_ic: F64
    qmean: F64
    qcount: F64


def cross_section(
    factor: F64,
    fwd: F64,
    quantiles: int = 5,
    min_obs: int = 3,
    demean: bool = False,
    *,
    f_order: I64 | None = None,
) -> CrossSection:
    """IC, RankIC and quantile mean returns for every horizon in one pass.

    Args:
        factor: (T, N) factor values.
        fwd: (H, T, N) forward returns per horizon (``factors.returns.forward_returns``).
        quantiles: number of equal-count bins per row (pandas.qcut convention).
        min_obs: fewest pairwise-complete assets for a row to count.
        demean: subtract each row's mean forward return before averaging by bin
            (alphalens ``mean_return_by_quantile(demeaned=True)``).
        f_order: ``argsort_rows(factor)`` when the caller already has it (scoring several
            horizons one at a time sorts the factor once).

    Returns:
        CrossSection with (H, T) and (H, T, q) arrays.
    """
    f = as_panel_array("factor", factor)
    r = as_panel_array("forward returns", fwd, ndim=3)
    if r.shape[1:] != f.shape:
        raise ScoreError(f"forward returns have (T, N) = {r.shape[1:]}; factor has {f.shape}")
    if f_order is None:
        f_order = argsort_rows(f)
    elif f_order.shape != f.shape or f_order.dtype != np.int64:
        raise ScoreError(f"f_order must be int64 of shape {f.shape}; got {f_order.shape}")
    r_order = argsort_rows(r.reshape(-1, r.shape[2])).reshape(r.shape)
    qk, mo, dm, fo = qcut_probabilities(quantiles), _min_obs(min_obs), bool(demean), f_order
    h_len, t_len, q = r.shape[0], r.shape[1], len(qk) - 1
    ic, ric = np.full((h_len, t_len), np.nan), np.full((h_len, t_len), np.nan)
    qm, qc = np.full((h_len, t_len, q), np.nan), np.zeros((h_len, t_len, q))
    run_ranges(lambda lo, hi: score_nb.cs_ic_quantiles(f, r, fo, r_order, qk, mo, dm, ic, ric,
                                                       qm, qc, lo, hi),
               t_len, r.size)  # fmt: skip
    return CrossSection(ic, ric, qm, qc)


def newey_west_lags(n: int, horizon: int) -> int:
    """Bartlett bandwidth for an IC series of ``n`` values at ``horizon`` bars:
    ``max(2 * horizon, floor(4 * (n / 100) ** (2 / 9)))`` (the overlap of h-bar returns spans
    h - 1 lags; twice that keeps the Bartlett weights from under-counting it), capped at n - 1.
    """
    auto = math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)) if n > 0 else 0
    return max(0, min(n - 1, max(2 * max(horizon, 1), auto)))


def newey_west_variance(x: F64, lags: int) -> float:
    """Long-run variance of a series (Newey-West, Bartlett kernel, no small-sample correction).

    Formula: gamma_k = sum_t (x_t - m)(x_{t-k} - m) / n;
        LRV = gamma_0 + 2 * sum_{k=1..L} (1 - k / (L + 1)) * gamma_k,
    as statsmodels' HAC covariance of a regression on a constant (use_correction=False).
    """
    d = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    n = d.size
    v = float(d @ d) / n
    for k in range(1, min(lags, n - 1) + 1):
        v += 2.0 * (1.0 - k / (lags + 1.0)) * float(d[k:] @ d[:-k]) / n
    return v


def ic_summary(
    series: F64, horizon: int = 1, periods_per_year: float | None = None
) -> dict[str, float]:
    """Mean, std, ICIR, standard error and t-stat of a per-timestamp IC series.

    Formula:
        mean = mean(ic); std = std(ic, ddof=1); icir = mean / std;
        se_windows = std / sqrt(n / horizon)  (n / horizon non-overlapping forward windows);
        se_nw = sqrt(LRV / n), Newey-West with ``newey_west_lags(n, horizon)`` lags, which
            also covers the autocorrelation a persistent factor gives its IC series;
        se = max(se_windows, se_nw); t_stat = mean / se;
        icir_annual = icir * sqrt(periods_per_year / horizon).
    The larger of the two errors keeps the t-stat honest in both regimes: consecutive h-bar
    returns overlap (se_windows is exact for pure overlap, where Bartlett weights under-count)
    and factor persistence correlates the IC series (which only se_nw sees). On a null with
    both (AR(1) 0.3 under h-bar overlapping sums, n = 3,000) |t| > 1.96 happens 5-7 % of the
    time at h = 1, 5, 15, 60, against 14 % for the windows error alone at h = 1.

    NaN: NaN rows are skipped; fewer than 2 values gives NaN; zero std gives NaN ICIR.
    """
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    h = max(horizon, 1)
    mean = float(np.mean(x)) if n else math.nan
    std = float(np.std(x, ddof=1)) if n >= 2 else math.nan
    icir = mean / std if n >= 2 and std > 0 else math.nan
    lags = newey_west_lags(n, h)
    se_windows = std / math.sqrt(n / h) if n >= 2 else math.nan
    se_nw = math.sqrt(max(newey_west_variance(x, lags), 0.0) / n) if n >= 2 else math.nan
    se = max(se_windows, se_nw) if n >= 2 else math.nan
    out = {
        "mean": mean,
        "std": std,
        "icir": icir,
        "t_stat": mean / se if n >= 2 and se > 0 else math.nan,
        "n": float(n),
        "se": se,
        "se_nw": se_nw,
        "nw_lags": float(lags),
    }
    if periods_per_year is not None:
        out["icir_annual"] = icir * math.sqrt(periods_per_year / h)
    return out


def rank_autocorrelation(factor: F64, lag: int = 1, min_obs: int = 3) -> F64:
    """Per-row correlation of cross-sectional factor ranks with those ``lag`` rows earlier.

    Equivalent to alphalens ``factor_rank_autocorrelation(factor_data, period=lag)``.
    Returns (T,), NaN for t < lag.
    """
    f = as_panel_array("factor", factor)
    if lag < 1:
        raise ScoreError(f"lag must be >= 1 row; got {lag}")
    order, mo, t_len = argsort_rows(f), _min_obs(min_obs), f.shape[0]
    ranks = np.full(f.shape, np.nan)
    run_ranges(lambda lo, hi: turnover_nb.cs_ranks(f, order, ranks, lo, hi), t_len, f.size)
    out: F64 = np.full(t_len, np.nan)
    run_ranges(lambda lo, hi: turnover_nb.cs_rank_autocorr(ranks, int(lag), mo, out, lo, hi),
               t_len, f.size)  # fmt: skip
    return out


def quantile_turnover(bins: I64, k: int, lag: int = 1) -> F64:
    """Share of bin k's members at t that were not in bin k at t - lag, (T,).

    Equivalent to alphalens ``quantile_turnover(quantile_factor, k + 1, period=lag)``.
    """
    b = np.ascontiguousarray(bins, dtype=np.int64)
    if b.ndim != 2:
        raise ScoreError(f"bins must be (T, N); got shape {b.shape}")
    out: F64 = np.full(b.shape[0], np.nan)
    run_ranges(lambda lo, hi: turnover_nb.bin_turnover(b, int(k), int(lag), out, lo, hi),
               b.shape[0], b.size)  # fmt: skip
    return out


def ts_ic(factor: F64, fwd: F64, method: Method = "spearman", min_obs: int = 10) -> F64:
    """Whole-period time-series IC per asset: corr(factor[:, j], fwd[:, j]) -> (N,)."""
    f, r = _pair(factor, fwd)
    rank, mo = method == "spearman", _min_obs(min_obs)
    out: F64 = np.full(f.shape[1], np.nan)
    run_ranges(lambda lo, hi: ts_ic_nb.ts_corr_assets(f, r, rank, mo, out, lo, hi),
               f.shape[1], f.size)  # fmt: skip
    return out


def rolling_ts_ic(factor: F64, fwd: F64, window: int, min_obs: int | None = None) -> F64:
    """Rolling time-series Pearson IC per asset over ``window`` rows -> (T, N).

    Equivalent to: ``f[:, j].rolling(window, min_periods=min_obs).corr(r[:, j])``
    (NaN before the first full window).
    """
    f, r = _pair(factor, fwd)
    if window < 2:
        raise ScoreError(f"window must be >= 2 rows; got {window}")
    mo = _min_obs(window if min_obs is None else min_obs)
    out: F64 = np.full(f.shape, np.nan)
    run_ranges(lambda lo, hi: ts_ic_nb.ts_rolling_corr(f, r, int(window), mo, out, lo, hi),
               f.shape[1], f.size * int(window))  # fmt: skip
    return out


def marginal_returns(exec_px: F64, horizon: int) -> F64:
    """Return of the single bar ``horizon`` steps after entry: px[t+h]/px[t+h-1] - 1, (T, N)."""
    h = int(horizon)
    out = np.full(exec_px.shape, np.nan)
    if h < exec_px.shape[0]:
        out[:-h] = exec_px[h:] / exec_px[h - 1 : -1] - 1.0
    return out


def half_life(horizons: npt.ArrayLike, ic_values: npt.ArrayLike) -> float:
    """Half-life (bars) of an IC decay curve by a least-squares exponential fit.

    Formula:
        fit ic(h) = a * exp(-lam * h) to the finite (h, ic) points by unweighted least
        squares, 0 <= lam <= 50 / (smallest positive h); half_life = ln 2 / lam. Fitting the
        values (not their logs) lets near-zero, sign-flipping tail points count as "decayed"
        instead of dominating a log-linear fit.

    Method (variable projection): for a fixed lam the best a is closed-form, so the fit is a
    one-dimensional search of the profile ``sse(lam) = v.v - (v.g)^2 / g.g`` with
    ``g = exp(-lam h)``: a log-spaced grid of ``_FIT_GRID`` rates over eight decades below
    the bound, then the root of the profile's slope between the best grid point's neighbours
    (bisection in log(lam)). This finds the global least-squares fit up to the grid's
    resolution; a local solver from a starting guess (``scipy.optimize.curve_fit``, used
    before, and the tests' reference) can stop in a worse local minimum, and its import
    took 0.5 s of every scoring command.

    NaN: fewer than 2 finite points or an all-zero curve gives NaN; a curve that does not
    decay within 100 times the longest horizon gives +inf.
    """
    h = np.asarray(horizons, dtype=np.float64)
    v = np.asarray(ic_values, dtype=np.float64)
    ok = np.isfinite(v) & np.isfinite(h)
    h, v = h[ok], v[ok]
    if h.size < 2 or not np.any(v != 0):
        return math.nan
    lam_max = 50.0 / max(float(np.min(h[h > 0])) if np.any(h > 0) else 1.0, 1e-9)
    # a * exp(-lam h) = (a exp(-lam h0)) * exp(-lam (h - h0)): the same fit of the rate, with
    # the first point's weight exp(0) = 1 (no underflow) and values of order 1
    longest = float(np.max(h))
    h, v = h - float(np.min(h)), v / float(np.max(np.abs(v)))
    log_lam = math.log(lam_max) + np.linspace(-8.0 * math.log(10.0), 0.0, _FIT_GRID)
    fit = _profile_fit(h, v, np.exp(log_lam))
    k = int(np.argmax(fit))
    if fit[k] <= _profile_fit(h, v, np.zeros(1))[0]:
        return math.inf  # no decay fits better than a flat curve
    lam = math.exp(_best_log_rate(h, v, log_lam[max(k - 1, 0) : k + 2]))
    hl = math.log(2.0) / lam
    return hl if hl <= 100.0 * longest else math.inf


_FIT_GRID = 321
"""Rates on the half-life fit's grid (eight decades: neighbours 6 % apart)."""


def _profile_fit(h: F64, v: F64, lam: F64) -> F64:
    """(v.g)^2 / g.g for g = exp(-lam_k h), per rate (K,): the part of v.v an exponential
    with rate lam_k explains at its best amplitude (h >= 0 with a zero: g.g >= 1)."""
    g = np.exp(-lam[:, None] * h[None, :])
    vg = g @ v
    return np.asarray(vg * vg / np.einsum("kn,kn->k", g, g), dtype=np.float64)


def _slope_sign(h: F64, v: F64, x: float) -> float:
    """Sign of d/dlam of ``_profile_fit`` at lam = exp(x): of (v.g) ((v.g')(g.g) - (v.g)(g.g'))
    with g' = dg/dlam = -h g (the derivative's positive factors dropped)."""
    g = np.exp(-math.exp(x) * h)
    vg, gg = float(v @ g), float(g @ g)
    vdg, gdg = -float(v @ (h * g)), -float(g @ (h * g))
    return math.copysign(1.0, vg) * (vdg * gg - vg * gdg)


def _best_log_rate(h: F64, v: F64, xs: F64) -> float:
    """log(lam) of the profile's maximum near the best grid point: ``xs`` holds it and its
    grid neighbours (log rates, ascending). Each interval between them where the profile's
    slope turns from rising to falling holds a maximum, found by bisecting the slope to the
    last bit (a search on the profile's values would stop at about 1e-8 relative, where the
    maximum's flatness drowns in rounding); the best of those and of the points is taken."""
    pts = [float(x) for x in xs]
    cands = list(pts)
    for lo, hi in itertools.pairwise(pts):
        if _slope_sign(h, v, lo) > 0.0 > _slope_sign(h, v, hi):
            for _ in range(_BISECTIONS):
                mid = 0.5 * (lo + hi)
                if mid <= lo or mid >= hi:
                    break
                if _slope_sign(h, v, mid) > 0.0:
                    lo = mid
                else:
                    hi = mid
            cands.append(0.5 * (lo + hi))
    fit = _profile_fit(h, v, np.exp(np.array(cands)))
    return cands[int(np.argmax(fit))]


_BISECTIONS = 64
"""Halvings of the interval between neighbouring grid rates (0.058 wide in log(lam)): past
the float64 resolution of log(lam)."""
