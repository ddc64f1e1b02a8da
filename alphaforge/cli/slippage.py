"""``alphaforge slippage-study``: what order-book depth does to a strategy's PnL (real books).

Engine-only: the composition root (alphaforge/cli/__init__.py) injects
``load_recording(paths) -> (depth_updates, trades)`` (data.recordings) and
``load_store(store, symbol, market, start, end) -> SymbolStreams`` (alphaforge.store_streams:
the stored depth and trades of one symbol with its listing window from the store's universe).
The study itself is engine/slippage_study.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from alphaforge.cli.render import fail, table_text, to_json
from alphaforge.engine.types import Exhaustion

SHARED_DEFAULT = Path(__file__).resolve().parents[3] / "shared/data/real/binance_ws_hftbacktest"
"""Where the development checkout keeps the real recording (../shared beside the repository);
an installed wheel has no default recording, and the command then asks for --recording."""
DEFAULT_RECORDING = ("usdm/btcusdt_20240808.gz", "usdm/btcusdt_20240809.gz")
_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000}
_COLS = ("size", "model", "levels", "pnl", "pnl_bps", "sharpe", "fills", "cost_bps",
         "cost_per_trade", "unfilled_frac")  # fmt: skip


def parse_bar(text: str) -> int:
    """'1s', '500ms', '1m', '250000us' -> µs."""
    m = re.fullmatch(r"(\d+)(us|ms|s|m)", text.strip())
    if not m or int(m.group(1)) <= 0:
        raise typer.BadParameter(f"bar {text!r}: expected <positive int><us|ms|s|m>, e.g. 1s")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _levels(text: str) -> list[int]:
    out = []
    for tok in text.split(","):
        tok = tok.strip().lower()
        if tok == "all":
            out.append(0)
        elif tok.isdigit() and int(tok) > 0:
            out.append(int(tok))
        else:
            raise typer.BadParameter(f"--levels token {tok!r}: expected a positive int or 'all'")
    return out


def _sizes(text: str) -> list[float]:
    try:
        out = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(f"--sizes {text!r}: expected comma-separated numbers") from None
    if not out or any(not x > 0 for x in out):
        raise typer.BadParameter(f"--sizes {text!r}: expected positive quote amounts")
    return out


def default_recording() -> list[Path]:
    """The shared USD-M BTCUSDT recording (and its continuation when present), or []."""
    files = [SHARED_DEFAULT / p for p in DEFAULT_RECORDING]
    return [f for f in files if f.is_file()] if files[0].is_file() else []


def render(study: dict[str, Any], as_json: bool) -> str:
    """The study as JSON or a table."""
    if as_json:
        return to_json(study)
    rows = [tuple(r[c] for c in _COLS) for r in study["rows"]]
    head = (f"slippage study: {study['book'].get('symbol')} {study['bars']} bars, "
            f"{study['orders']} orders, sqrt-impact k={study['impact_k']:.3g}")  # fmt: skip
    return table_text(head, list(_COLS), rows)


def register(
    app: typer.Typer,
    load_recording: Callable[[list[Path]], Any],
    load_store: Callable[..., Any],
    errors: tuple[type[Exception], ...],
) -> None:
    """Add ``slippage-study`` to ``app``."""

    @app.command("slippage-study")
    def slippage_study(
        recording: Annotated[
            list[Path] | None,
            typer.Option(help="hftbacktest recording file(s) of one stream, in time order."),
        ] = None,
        store: Annotated[
            str | None,
            typer.Option(
                help="Study a symbol's depth and trades from this store instead of a "
                "recording (needs --symbol)."
            ),
        ] = None,
        symbol: Annotated[str | None, typer.Option(help="Symbol to study (with --store).")] = None,
        market: Annotated[str, typer.Option(help="Market of --store: usdm or spot.")] = "usdm",
        start: Annotated[str | None, typer.Option(help="ISO start (UTC), with --store.")] = None,
        end: Annotated[str | None, typer.Option(help="ISO end (UTC, exclusive), with --store.")] = (
            None
        ),
        bar: Annotated[str, typer.Option(help="Bar length: 1s, 500ms, 1m.")] = "1s",
        sizes: Annotated[str, typer.Option(help="Order sizes (init cash, quote).")] = (
            "1e4,1e5,1e6,1e7"
        ),
        levels: Annotated[str, typer.Option(help="Book depths, 'all' = every level.")] = (
            "5,20,100,all"
        ),
        latency_us: Annotated[int, typer.Option(help="Decision-to-book latency, µs.")] = 0,
        window_bars: Annotated[int, typer.Option("--window", help="Trade-flow window, bars.")] = 5,
        fee_bps: Annotated[float, typer.Option(help="Taker fee, bps.")] = 0.0,
        fixed_bps: Annotated[float, typer.Option(help="fixed_bps model cost, bps.")] = 1.0,
        impact_k: Annotated[float | None, typer.Option(help="sqrt-impact k (default: fit).")] = (
            None
        ),
        exhaustion: Annotated[str, typer.Option(help="penalty|cancel_rest past the depth.")] = (
            "penalty"
        ),
        penalty_bps: Annotated[float, typer.Option(help="Penalty past the depth, bps.")] = 0.0,
        max_seconds: Annotated[
            float | None, typer.Option(help="Use only the first N seconds of the recording.")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="Directory for study.png/json.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Run one strategy at several sizes, book depths and slippage models on a real book."""
        from alphaforge.engine import slippage_study as ss

        if store is not None and recording:
            raise fail(typer.BadParameter("--store and --recording: pass one source"), as_json)
        if store is not None and not symbol:
            raise fail(typer.BadParameter("--store needs --symbol (the symbol to study)"), as_json)
        files = list(recording) if recording else ([] if store else default_recording())
        if store is None and not files:
            raise fail(
                typer.BadParameter(
                    "no recording given and no development checkout's default "
                    f"({SHARED_DEFAULT}); pass --recording PATH (a Binance depth+trade "
                    "recording in the hftbacktest collector format, .gz) or --store DIR "
                    "--symbol SYMBOL"
                ),
                as_json,
            )
        try:
            bar_us, size_list, level_list = parse_bar(bar), _sizes(sizes), _levels(levels)
            if exhaustion.upper() not in Exhaustion.__members__:
                raise typer.BadParameter(f"--exhaustion {exhaustion!r}: penalty|cancel_rest")
        except typer.BadParameter as exc:
            raise fail(exc, as_json) from None
        exh = Exhaustion[exhaustion.upper()]
        source: dict[str, Any]
        try:
            window: tuple[int | None, int | None] = (None, None)
            if store is not None:
                streams = load_store(store, symbol, market, start, end)
                depth, trades, window = streams.depth, streams.trades, streams.window_us
                source = {"store": store, "symbol": symbol, "market": market}
                source.update(datasets=streams.sources, listing_window_us=list(window))
            else:
                depth, trades = load_recording(files)
                source = {"recording": [str(f) for f in files]}
            if max_seconds is not None:
                depth, trades = ss.first_seconds(depth, trades, max_seconds)
            bars = ss.build_bars(depth, trades, bar_us, latency_us, window_us=window)
            study = ss.run_study(bars, size_list, level_list, window=window_bars,
                                 fee_bps=fee_bps, fixed_bps=fixed_bps, impact_k=impact_k,
                                 exhaustion=exh, penalty_bps=penalty_bps)  # fmt: skip
        except errors as exc:
            raise fail(exc, as_json) from None
        study.update(source)
        study["latency_us"] = latency_us
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            ss.plot_study(study, str(out / "slippage_study.png"))
            (out / "slippage_study.json").write_text(to_json(study))
            study["plot"] = str(out / "slippage_study.png")
        typer.echo(render(study, as_json))
