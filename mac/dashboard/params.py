"""The run's settings as the dashboard needs them: the config file and each symbol's compiled grid params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mac.dashboard.labels import CODES
from mac.grid.params import CompiledParams, compile_params
from settings.config import GridbridgeConfig
from settings.grid import default_params
from shared_schema.models import symbol_key
from shared_schema.safe_json import safe_loads


def load_run_config(path: Path | None) -> GridbridgeConfig:
    """The run's config file (the defaults without one), read with the bounded JSON reader. Raises
    ``OSError`` or ``ValueError`` (``JsonRefused``, a validation error) for a file that cannot be used."""
    if path is None:
        return GridbridgeConfig()
    return GridbridgeConfig.model_validate(safe_loads(Path(path).read_bytes()))


def load_params(config_path: Path | None) -> dict[str, CompiledParams]:
    """Per-symbol params: the tuned defaults, then the config's grid overrides when a config is found."""
    overrides: dict[str, dict[str, Any]] = {c: {} for c in CODES}
    if config_path is not None and config_path.is_file():
        try:
            raw = safe_loads(config_path.read_bytes())
            grid = raw.get("grid", {}) if isinstance(raw, dict) else {}
            common = {k: v for k, v in grid.items() if not isinstance(v, dict)}
            for c in CODES:
                overrides[c] = {**common, **grid.get(c, grid.get(symbol_key(c), {}))}
        except (OSError, ValueError, AttributeError):
            pass
    out = {}
    for c in CODES:
        try:
            out[c] = compile_params(default_params(c, "realistic", **overrides[c]))
        except ValueError:
            out[c] = compile_params(default_params(c))
    return out
