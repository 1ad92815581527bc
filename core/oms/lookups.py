"""Moved to ``core.oms.lost_orders``; this name stays only until the executor's sweeper imports it there."""

from core.oms.lost_orders import LookupPolicy, LookupTrack, MissVerdict

__all__ = ["LookupPolicy", "LookupTrack", "MissVerdict"]
