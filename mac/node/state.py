"""The node's settings, its per-symbol runtime and the durable state file that carries them over a restart."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mac.grid.core import GridState, initial_state
from mac.grid.params import CompiledParams, compile_params
from mac.grid.risk_policy import GridRiskPolicy, risk_policy_from_config
from mac.state_codec import decode, encode
from settings.config import GridbridgeConfig
from settings.grid import GridParams
from shared_schema.models import symbol_key
from shared_schema.safe_json import safe_loads

STATE_VERSION = 1


def state_file(shared_dir: Path, code: str) -> Path:
    """The node's durable state for one symbol. ``dashboard_state_<code>.json`` is the design's name for it:
    the dashboard reads the file as is, and a restarted node resumes its lots, outbox and penalty from it."""
    return Path(shared_dir) / f"dashboard_state_{symbol_key(code)}.json"


@dataclass
class NodeSettings:
    signal_ttl_s: float = 300.0  # market seconds a signal stays valid
    stale_after_s: float = 120.0  # wall seconds after which an unchanged quote/pool file is stale
    history: int = 60000  # utilisation points kept for the dashboard: a year of 1-minute bars
    events_kept: int = 500
    risk_policy: GridRiskPolicy = field(default_factory=GridRiskPolicy)  # what DEGRADED means for the grid
    max_quote_ahead_s: float | None = 300.0  # quotes/bars stamped further ahead of the wall clock are refused
    reject_backoff_s: float = 60.0  # market seconds an order the executor rejected is held before it is re-sent
    reject_backoff_max_s: float = 1800.0  # the wait doubles with each rejection in a row, up to this


def node_settings_from_config(config: GridbridgeConfig) -> NodeSettings:
    """NodeSettings from a validated config's ``node`` section (the grid's own parameters come from
    ``settings.resolve.grid_params``)."""
    node = config.node
    return NodeSettings(signal_ttl_s=node.signal_ttl_s, stale_after_s=node.stale_after_s,
                        risk_policy=risk_policy_from_config(node), max_quote_ahead_s=node.max_quote_ahead_s)


@dataclass
class SymbolRuntime:
    code: str
    params: CompiledParams
    grid: GridState
    last_bar_t: int = 0
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)  # client_order_id -> signal payload, until final
    mismatch: str = ""
    mismatch_seen: int = 0
    events: deque = field(default_factory=lambda: deque(maxlen=500))
    history: deque = field(default_factory=lambda: deque(maxlen=60000))  # [t, utilization, penalty_on]
    counters: Counter = field(default_factory=Counter)
    last_indicators: dict[str, float] = field(default_factory=dict)
    external_done: list[str] = field(default_factory=list)  # sells by others already folded into the grid
    backoff: dict[str, list[int]] = field(default_factory=dict)  # order key -> [rejections in a row, until (ms)]


def load_runtime(shared_dir: Path, code: str, params: GridParams, settings: NodeSettings) -> SymbolRuntime:
    """The symbol's runtime from its state file, or a flat one when there is none."""
    compiled = compile_params(params)
    path = state_file(shared_dir, code)
    runtime = SymbolRuntime(code, compiled, initial_state(compiled))
    runtime.events = deque(maxlen=settings.events_kept)
    runtime.history = deque(maxlen=settings.history)
    try:
        raw = safe_loads(path.read_bytes())
    except FileNotFoundError:
        return runtime
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"node state {path} is unreadable ({exc}); move it away to start flat") from exc
    runtime.grid = decode(raw["grid"])
    runtime.last_bar_t = raw["last_bar_t"]
    runtime.outbox = raw.get("outbox", {})
    runtime.events.extend(raw.get("events", []))
    runtime.history.extend(raw.get("history", []))
    runtime.counters.update(raw.get("counters", {}))
    runtime.last_indicators = raw.get("indicators", {})
    runtime.external_done = list(raw.get("external_done", []))
    runtime.backoff = {str(k): [int(v[0]), int(v[1])] for k, v in raw.get("backoff", {}).items()}
    return runtime


def dashboard_view(rt: SymbolRuntime, now: datetime, executor_down: bool, data_problems: list[str]) -> dict[str, Any]:
    """The persisted state, written so the dashboard can read it as is."""
    grid = rt.grid
    return {
        "state_version": STATE_VERSION,
        "code": rt.code,
        "updated_at": now.isoformat(),
        "last_bar_t": rt.last_bar_t,
        "penalty_on": grid.penalty_on,
        "anchor": grid.anchor,
        "lots": [
            {"client_order_id": lot.client_order_id, "shares": lot.shares, "cost": str(lot.cost),
             "buy_price": lot.buy_price, "status": lot.status, "layer_index": lot.layer_index,
             "take_profit_price": take_profit_price(rt.params, lot.buy_price)}
            for lot in grid.lots
        ],
        "pending": sorted(rt.outbox),
        "mismatch": rt.mismatch,
        "executor_down": executor_down,
        "data_problems": list(data_problems),
        "indicators": rt.last_indicators,
        "counters": dict(rt.counters),
        "events": list(rt.events),
        "history": list(rt.history),
        "outbox": rt.outbox,
        "external_done": rt.external_done,
        "backoff": rt.backoff,
        "grid": encode(grid),
    }


def take_profit_price(cp: CompiledParams, buy_price: float) -> float:
    """The price at which a lot bought at ``buy_price`` is sold, in the flat-trend case."""
    return round(buy_price * (1 + cp.sell_profit_threshold * cp.sell_threshold_factor), 4)
