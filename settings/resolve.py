"""The one resolver of a symbol's grid parameters from a config (node, backtest, dashboard and executor).

Precedence, later wins: the tuned per-symbol defaults -> the config's ``vault`` section (the physical
pool, the reserve ratio and the symbol's nominal cap, so a grid sizes against the pool the executor runs)
-> the common ``grid`` overrides -> the symbol's own ``grid`` overrides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from settings.config import ConfigError, GridbridgeConfig
from settings.grid import GridParams, Mode, default_params


def grid_params(config: GridbridgeConfig, code: str, mode: Mode = "realistic") -> GridParams:
    """``code``'s grid parameters under ``config``. Raises ``ConfigError`` naming the symbol when they break
    a rule (an unknown code, weights that do not match the layers)."""
    vault = config.vault
    from_vault: dict[str, Any] = {"physical_pool": vault.physical_pool, "reserve_ratio": vault.reserve_ratio}
    if code in vault.nominal_caps:
        from_vault["nominal_cap"] = float(vault.nominal_caps[code])
    try:
        return default_params(code, mode, **{**from_vault, **config.grid.overrides_for(code)})
    except ValueError as exc:
        raise ConfigError(f"grid settings for {code} are invalid: {exc}") from exc


def grid_params_by_code(
    config: GridbridgeConfig, codes: Iterable[str] | None = None, mode: Mode = "realistic"
) -> dict[str, GridParams]:
    """``grid_params`` for each of ``codes`` (default: the config's codes, ``config.codes``)."""
    return {code: grid_params(config, code, mode) for code in (config.codes if codes is None else codes)}


def declared_base_positions(config: GridbridgeConfig) -> dict[str, int]:
    """The long-term base position (shares) the config declares for each of its codes: a code's resolved
    ``base_position_shares`` when its ``grid`` overrides (common or its own) set one. A code without one
    is absent: the executor then takes what the venue holds beyond the grid's lots at start."""
    return {
        code: grid_params(config, code).base_position_shares
        for code in config.codes
        if "base_position_shares" in config.grid.overrides_for(code)
    }
