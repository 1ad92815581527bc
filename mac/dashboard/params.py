"""The run's settings as the dashboard needs them: the config file and each symbol's compiled grid params."""

from __future__ import annotations

from pathlib import Path

from mac.dashboard.labels import CODES
from mac.grid.params import CompiledParams, compile_params
from settings.config import GridbridgeConfig
from settings.resolve import grid_params
from shared_schema.safe_json import safe_loads


def load_run_config(path: Path | None) -> GridbridgeConfig:
    """The run's config file (the defaults without one), read with the bounded JSON reader. Raises
    ``OSError`` or ``ValueError`` (``JsonRefused``, a validation error) for a file that cannot be used."""
    if path is None:
        return GridbridgeConfig()
    return GridbridgeConfig.model_validate(safe_loads(Path(path).read_bytes()))


def load_params(config_path: Path | None) -> dict[str, CompiledParams]:
    """Per-symbol compiled grid params, resolved by the one resolver (``settings.resolve.grid_params``) from
    the run's config. A config that cannot be read (the page reports it) or a symbol whose settings break a
    rule gets the default config's params."""
    config = GridbridgeConfig()
    if config_path is not None and config_path.is_file():
        try:
            config = load_run_config(config_path)
        except (OSError, ValueError):
            pass
    out = {}
    for c in CODES:
        try:
            out[c] = compile_params(grid_params(config, c))
        except ValueError:  # ConfigError
            out[c] = compile_params(grid_params(GridbridgeConfig(), c))
    return out
