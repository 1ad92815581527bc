"""Audit vocabulary shared by the pure kernel: stable codes, severities and the event record.

This module is pure (no IO) so the risk, OMS and execution cores can build audit events; ``core.audit``
writes and reads them. Codes are stable strings: the gate, the dashboard and old audit files depend on
them, so rename nothing, only add.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class AuditCode(str, Enum):
    # Risk state machine and symbol-level risk flags.
    RISK_STATE_CHANGE = "RISK_STATE_CHANGE"
    RISK_RECOVERY_STAGE = "RISK_RECOVERY_STAGE"
    RISK_SYMBOL_FROZEN = "RISK_SYMBOL_FROZEN"
    RISK_SYMBOL_UNLOCKED = "RISK_SYMBOL_UNLOCKED"
    RISK_DUST_LOCKED = "RISK_DUST_LOCKED"
    RISK_LIQ_DISTANCE_LOW = "RISK_LIQ_DISTANCE_LOW"
    RISK_LIQ_DISTANCE_RESTORED = "RISK_LIQ_DISTANCE_RESTORED"
    RISK_ORDER_REFUSED = "RISK_ORDER_REFUSED"
    RISK_LEVERAGE_VIOLATION = "RISK_LEVERAGE_VIOLATION"
    RISK_REDUCE_ONLY_VIOLATION = "RISK_REDUCE_ONLY_VIOLATION"
    RISK_FORCED_REDUCTION = "RISK_FORCED_REDUCTION"  # a reducing state cancelled buys or sold grid lots
    # OMS.
    OMS_ILLEGAL_TRANSITION = "OMS_ILLEGAL_TRANSITION"
    OMS_RECONCILE_MISMATCH = "OMS_RECONCILE_MISMATCH"
    OMS_RECONCILE_OK = "OMS_RECONCILE_OK"
    # Execution.
    EXEC_FILTER_IGNORE = "EXEC_FILTER_IGNORE"
    EXEC_DUST_POSITION_STUCK = "EXEC_DUST_POSITION_STUCK"
    EXEC_PROTECTIVE_ORDER_MISSING = "EXEC_PROTECTIVE_ORDER_MISSING"
    EXEC_TP_ATTACH_FAILED = "EXEC_TP_ATTACH_FAILED"
    EXEC_OCO_CANCEL = "EXEC_OCO_CANCEL"
    EXEC_RATE_LIMITED = "EXEC_RATE_LIMITED"
    EXEC_HEALTH_DEGRADED = "EXEC_HEALTH_DEGRADED"
    EXEC_REBALANCE_SKIPPED = "EXEC_REBALANCE_SKIPPED"
    # Kill switch and control doors.
    KILL_SWITCH_FORCE_HALT = "KILL_SWITCH_FORCE_HALT"
    KILL_SWITCH_FORCE_REDUCE = "KILL_SWITCH_FORCE_REDUCE"
    KILL_SWITCH_RESET_FUSE = "KILL_SWITCH_RESET_FUSE"
    KILL_SWITCH_FORCE_UNLOCK = "KILL_SWITCH_FORCE_UNLOCK"
    KILL_SWITCH_RESUME = "KILL_SWITCH_RESUME"
    CONTROL_ACCEPTED = "CONTROL_ACCEPTED"
    CONTROL_REJECTED = "CONTROL_REJECTED"
    # Orders and signals, emitted by the executor; the gate reads them (see core.gate).
    ORDER_SUBMITTED = "ORDER_SUBMITTED"
    ORDER_ACK = "ORDER_ACK"
    ORDER_PARTIAL = "ORDER_PARTIAL"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_CANCEL_DEFERRED = "ORDER_CANCEL_DEFERRED"  # a cancel held back (DEFER), then SEND or DROP
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_ERROR = "ORDER_ERROR"
    SIGNAL_ACCEPTED = "SIGNAL_ACCEPTED"
    SIGNAL_REJECTED = "SIGNAL_REJECTED"
    # Account, data, deployment.
    EQUITY_SNAPSHOT = "EQUITY_SNAPSHOT"
    DATA_GAP = "DATA_GAP"
    ROLLBACK = "ROLLBACK"
    # One executor per shared folder (windows.lease).
    EXECUTOR_LEASE_TAKEN_OVER = "EXECUTOR_LEASE_TAKEN_OVER"  # a stale lease replaced with --take-over
    EXECUTOR_LEASE_RECLAIMED = "EXECUTOR_LEASE_RECLAIMED"  # the same state folder's previous run, restarted
    EXECUTOR_LEASE_LOST = "EXECUTOR_LEASE_LOST"  # the lease names another executor: this one stopped
    # Crypto venue, OMS and trend loop (crypto.venue, crypto.execution, crypto.trend).
    # core's margined-market parts (core.risk, core.execution), market-agnostic:
    RISK_CROSS_MARGIN_FOUND = "RISK_CROSS_MARGIN_FOUND"  # a cross-margin position seen: opens blocked
    RISK_CROSS_MARGIN_CLEARED = "RISK_CROSS_MARGIN_CLEARED"
    RISK_LIQ_REDUCTION_PLANNED = "RISK_LIQ_REDUCTION_PLANNED"  # the cuts that restore the liq distance
    EXEC_PROTECTIVE_ATTACHED = "EXEC_PROTECTIVE_ATTACHED"  # a stop-loss / take-profit confirmed live
    EXEC_PROTECTIVE_TIMEOUT = "EXEC_PROTECTIVE_TIMEOUT"  # not confirmed within attach_timeout_ms
    EXEC_RATE_LIMIT_BACKOFF = "EXEC_RATE_LIMIT_BACKOFF"  # too many rate-limit refusals: back off, degrade
    EXEC_RATE_LIMIT_RECOVERED = "EXEC_RATE_LIMIT_RECOVERED"  # quiet period over: normal pace again
    EXEC_ORDER_REPOSTED = "EXEC_ORDER_REPOSTED"  # a resting limit older than max_order_age: cancel, re-post
    # The crypto execution engine (crypto.execution):
    EXEC_LEVERAGE_SET = "EXEC_LEVERAGE_SET"  # leverage and margin mode set on the venue (data.leverage)
    EXEC_ORDER_LOST = "EXEC_ORDER_LOST"  # an unknown outcome never found by client id: it never landed
    EXEC_STATUS_WRITE_FAILED = "EXEC_STATUS_WRITE_FAILED"  # status.json not written (disk, folder): once
    EXEC_STATUS_WRITE_RECOVERED = "EXEC_STATUS_WRITE_RECOVERED"  # written again: once
    EXEC_VENUE_CLOCK_OUTLIER = "EXEC_VENUE_CLOCK_OUTLIER"  # a venue time far from ours: clamped, not followed
    EXEC_CONTROL_DOOR_ALERT = "EXEC_CONTROL_DOOR_ALERT"  # the control door cannot work (link, no secret): once
    EXEC_CONTROL_DOOR_CLEARED = "EXEC_CONTROL_DOOR_CLEARED"  # that condition ended: once
    # Crypto carry engine (crypto.carry).
    CARRY_STATE_CHANGE = "CARRY_STATE_CHANGE"  # one accepted transition of a pair's state machine
    CARRY_OPEN_REFUSED = "CARRY_OPEN_REFUSED"  # an open check failed (data.reason), audited on change
    CARRY_LEG_UNWOUND = "CARRY_LEG_UNWOUND"  # the second leg failed: the first taken back (data.naked_ms)
    CARRY_NAKED_EXPOSURE = "CARRY_NAKED_EXPOSURE"  # naked exposure over its limit for longer than the bound
    CARRY_FUNDING_SETTLED = "CARRY_FUNDING_SETTLED"  # funding booked at a settlement (data.amount, bill_id)
    CARRY_MARGIN_TOPUP = "CARRY_MARGIN_TOPUP"  # margin added to the isolated short (data.transfer_id)
    CARRY_REBALANCED = "CARRY_REBALANCED"  # the leg gap closed (data.gap_before, gap_after)
    CARRY_CLOSE = "CARRY_CLOSE"  # a pair closed (data.reason, net_pnl)
    CARRY_BREAKER_TRIPPED = "CARRY_BREAKER_TRIPPED"  # losing closes in a row or the daily loss: no opens
    CARRY_LIQUIDATED = "CARRY_LIQUIDATED"  # the venue liquidated the short (a failure of the margin guard)
    # Crypto position manager (crypto.pm).
    PM_STATE_INVALID = "PM_STATE_INVALID"  # a corrupt pos:* document or venue position, refused (store used)
    PM_ACTION_QUEUED = "PM_ACTION_QUEUED"  # an action still failing after its retries waits in pos:retry:z
    PM_ACTION_PARTIAL = "PM_ACTION_PARTIAL"  # new stop placed, old one not yet cancelled (queued)
    PM_ACTION_FAILED = "PM_ACTION_FAILED"  # a refusal no retry can fix (e.g. reduce-only rejected)
    PM_STATE_REBUILT = "PM_STATE_REBUILT"  # cold start: pos:* rebuilt from the snapshot store
    PM_CONFIG_STALE = "PM_CONFIG_STALE"  # config fetch failed: the old config stays in force
    PM_TRANSFER = "PM_TRANSFER"  # a treasury transfer changed state
    # Crypto incremental hedge (crypto.hedge).
    HEDGE_REPORT_REFUSED = "HEDGE_REPORT_REFUSED"  # a report/update with a non-finite, negative or oversized field
    HEDGE_DEFERRED = "HEDGE_DEFERRED"  # a fill's delta under the UM step/minQty/minNotional, or no mark
    HEDGE_SENT = "HEDGE_SENT"  # a hedge order handed to the signal channel or sent directly
    HEDGE_DIRECT_SEND = "HEDGE_DIRECT_SEND"  # the signal channel was down: the strategy sent it itself
    HEDGE_ACCEPTED = "HEDGE_ACCEPTED"  # the venue accepted it: ``hedged`` moves here
    HEDGE_ROLLED_BACK = "HEDGE_ROLLED_BACK"  # rejected, expired or cancelled: ``hedged`` moves back
    HEDGE_REPRICED = "HEDGE_REPRICED"  # a GTX that would have crossed, sent again at a new price
    HEDGE_MARKET_FALLBACK = "HEDGE_MARKET_FALLBACK"  # GTX re-prices exhausted: sent as market
    HEDGE_RESIDUAL = "HEDGE_RESIDUAL"  # the margin order is done; the unhedged rest under the minimums
    HEDGE_CLOSE_PLANNED = "HEDGE_CLOSE_PLANNED"  # close mode: the reverse open derived from the exposure
    HEDGE_CLOSE_REFUSED = "HEDGE_CLOSE_REFUSED"  # close mode: nothing closable (minimums, no pair)
    HEDGE_RESTORED = "HEDGE_RESTORED"  # a snapshot restored (``legacy`` true for the older format)


class Severity(str, Enum):
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True)
class AuditEvent:
    """One audit record: ``{ts, code, severity, symbol?, cause, data}`` on disk.

    ``data`` holds JSON-friendly values only (str, int, bool, None, lists, dicts); Decimals are written as
    strings by the producers so a replay reads back the exact value.
    """

    ts: datetime
    code: AuditCode
    severity: Severity
    cause: str
    symbol: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The dict written as one JSONL line (``symbol`` omitted when there is none)."""
        record: dict[str, Any] = {
            "ts": self.ts.isoformat(),
            "code": self.code.value,
            "severity": self.severity.value,
            "cause": self.cause,
            "data": dict(self.data),
        }
        if self.symbol is not None:
            record["symbol"] = self.symbol
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AuditEvent:
        """Parse one record; raises ``ValueError``/``KeyError`` on a malformed one (the reader skips it)."""
        ts = datetime.fromisoformat(str(record["ts"]))
        if ts.tzinfo is None:
            raise ValueError("audit timestamps must carry a timezone")
        data = record.get("data") or {}
        if not isinstance(data, Mapping):
            raise ValueError("audit data must be an object")
        symbol = record.get("symbol")
        return cls(
            ts=ts,
            code=AuditCode(record["code"]),
            severity=Severity(record.get("severity", "INFO")),
            cause=str(record.get("cause", "")),
            symbol=None if symbol is None else str(symbol),
            data=dict(data),
        )
