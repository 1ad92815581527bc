"""The node's settings and grid parameters from a validated ``GridbridgeConfig``."""

from __future__ import annotations

from typing import Any

from mac.grid.risk_policy import GridRiskPolicy
from mac.node.state import NodeSettings
from settings.grid import GridParams
from shared_schema.models import symbol_key


def node_settings_from_config(config: Any) -> NodeSettings:
    """NodeSettings from a validated ``GridbridgeConfig`` (its ``node`` section)."""
    node = config.node
    policy = GridRiskPolicy(degraded_action=node.degraded_action,
                            degraded_step_multiplier=node.degraded_step_multiplier)
    return NodeSettings(signal_ttl_s=node.signal_ttl_s, stale_after_s=node.stale_after_s, risk_policy=policy,
                        max_quote_ahead_s=node.max_quote_ahead_s)


def grid_params_from_config(config: Any, codes: list[str]) -> dict[str, GridParams]:
    """Per-symbol GridParams: the tuned defaults, then the config's ``grid`` overrides (common, then per code)."""
    from settings.config import ConfigError
    from settings.grid import default_params

    raw = dict(config.grid)
    common = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    out = {}
    for code in codes:
        own = raw.get(code, raw.get(symbol_key(code), {}))
        overrides = {"physical_pool": config.vault.physical_pool, "reserve_ratio": config.vault.reserve_ratio,
                     "nominal_cap": float(config.vault.nominal_caps.get(code, 200000)), **common, **own}
        try:
            out[code] = default_params(code, "realistic", **overrides)
        except ValueError as exc:
            raise ConfigError(f"grid settings for {code} are invalid: {exc}") from exc
    return out
