"""Configuration file: ``alphaforge.toml`` -> click's default map.

Resolution order (design.md): command-line flags > environment (``ALPHAFORGE_STORE`` and
``ALPHAFORGE_<COMMAND>_<OPTION>``) > ``alphaforge.toml`` > built-in defaults. Click applies
exactly this order when the file is given as the ``default_map`` and ``ALPHAFORGE`` as the
auto-envvar prefix. The file has one table per command (``[backtest]``, ``[store.ls]`` for
sub-commands), keys are option names with underscores; the ``[storage]`` table (object storage and
tiers) is read by ``data.storage_config`` instead::

    [backtest]
    fee_bps = 5.0
    store = "/data/alphaforge"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from alphaforge.engine.errors import OptionError

CONFIG_FILE = "alphaforge.toml"


def load_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The default map from ``path`` (default: $ALPHAFORGE_CONFIG or ./alphaforge.toml).

    Returns {} when no file exists.

    Raises:
        OptionError: a file that is not valid TOML (names the file and the parse error).
    """
    p = Path(path or os.environ.get("ALPHAFORGE_CONFIG", CONFIG_FILE))
    if not p.is_file():
        return {}
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionError(f"{p}: invalid TOML: {exc}") from None
    doc.pop("storage", None)  # where the store lives, not a command: data.storage_config
    return _nest(doc)


def _nest(doc: dict[str, Any]) -> dict[str, Any]:
    """Dotted/nested command tables -> click's nested default map (keys as given)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out[key.replace("-", "_") if not isinstance(value, dict) else key] = (
            _nest(value) if isinstance(value, dict) else value
        )
    return out


def check_config(defaults: dict[str, Any], group: Any, source: str = CONFIG_FILE) -> None:
    """Every table of the file must name a command and every key one of its options.

    Args:
        defaults: ``load_config``'s map. group: the click group of the CLI.
        source: the file, for messages.

    Raises:
        OptionError: an unknown command table or option key (a misspelt key would otherwise be
            silently ignored), with the closest valid name.
    """
    import difflib

    def walk(table: dict[str, Any], cmd: Any, where: str) -> None:
        subs = getattr(cmd, "commands", None)
        options = {p.name for p in getattr(cmd, "params", [])}
        for key, value in table.items():
            if isinstance(value, dict) and subs is not None:
                if key not in subs:
                    raise _unknown(source, f"[{where}{key}]", "command", key, list(subs))
                walk(value, subs[key], f"{where}{key}.")
            elif key not in options:
                raise _unknown(source, f"{key} in [{where.rstrip('.')}]", "option", key,
                               sorted(options))  # fmt: skip

    def _unknown(src: str, what: str, kind: str, key: str, valid: list[str]) -> OptionError:
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(valid)}"
        return OptionError(f"{src}: unknown {kind} {what}{hint}")

    walk(defaults, group, "")
