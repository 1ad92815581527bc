"""The executor's heartbeat as its readers see it: one rule for the node and the dashboard.

The executor rewrites ``shared_pool.json`` at least every ``heartbeat_s`` wall seconds (the file says how
often), and at once after any change of the vault, the risk state or the halt switch. A pool file older
than ``DOWN_AFTER_HEARTBEATS`` heartbeats means the executor is down (or cut off from the share): a reader
blocks new buys and says so. A file without ``heartbeat_s`` (an older executor) falls back to the plain
staleness bound.
"""

from __future__ import annotations

from datetime import datetime

DOWN_AFTER_HEARTBEATS = 2.5  # a kill is reported within 3 heartbeats, one late write is not an outage


def executor_down_after_s(heartbeat_s: float | None, fallback_s: float) -> float:
    """Wall seconds without a rewrite of the pool file after which the executor counts as down."""
    return fallback_s if heartbeat_s is None else DOWN_AFTER_HEARTBEATS * heartbeat_s


def executor_silence_s(updated_at: datetime, heartbeat_s: float | None, now: datetime,
                       fallback_s: float) -> float | None:
    """How long the executor has been silent past its bound (seconds since the last rewrite), or None
    when it is alive."""
    age = (now - updated_at).total_seconds()
    return age if age > executor_down_after_s(heartbeat_s, fallback_s) else None


def executor_down_message(age_s: float) -> str:
    return f"executor down: shared_pool.json not rewritten for {age_s:.0f} s (heartbeat stopped)"
