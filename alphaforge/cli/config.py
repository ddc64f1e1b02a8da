"""Configuration file: ``alphaforge.toml`` -> click's default map.

Resolution order (design.md): command-line flags > environment (``ALPHAFORGE_STORE`` and
``ALPHAFORGE_<COMMAND>_<OPTION>``) > ``alphaforge.toml`` > built-in defaults. Click applies
exactly this order when the file is given as the ``default_map`` and ``ALPHAFORGE`` as the
auto-envvar prefix. The file has one table per command (``[backtest]``, ``[store.ls]`` for
sub-commands), keys are option names with underscores::

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
    return _nest(doc)


def _nest(doc: dict[str, Any]) -> dict[str, Any]:
    """Dotted/nested command tables -> click's nested default map (keys as given)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out[key.replace("-", "_") if not isinstance(value, dict) else key] = (
            _nest(value) if isinstance(value, dict) else value
        )
    return out
