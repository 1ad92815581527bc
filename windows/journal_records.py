"""The executor's journal records: one frozen dataclass per kind, and their JSON lines on disk.

``encode`` writes exactly the line today's journal holds (the same short keys in the same order: ``k`` the
kind, ``coid`` a client_order_id, ``t`` the market time), and ``decode`` reads every line the executor has
written, old ones included: an optional key that is absent is ``None`` here and stays absent when the
record is written again. ``client_order_id`` is also accepted where a line says ``coid``, so a writer may
switch to the long name later without breaking a replay. Unknown keys are ignored: a replay must not stop
on a field this version does not use.

``ExecutorState.apply`` dispatches on the record's class (``windows.executor_state``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

from core.journal import SNAPSHOT_KIND
from core.oms.order_fsm import OrderState
from shared_schema.models import Reason, ResultStatus
from windows.vault import VaultDecision

ALIASES = {"coid": "client_order_id"}
"""Short keys on disk and the long name a line may carry instead."""


def _same(value: Any) -> Any:
    return value


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(value)


def _on_disk(key: str, read: Callable[[Any], Any] = _same, optional: bool = False) -> Any:
    """A field stored under ``key``, parsed by ``read``; ``optional`` ones are ``None`` when absent."""
    meta = {"key": key, "read": read}
    return field(default=None, metadata=meta) if optional else field(metadata=meta)


def _write(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, kw_only=True)
class JournalRecord:
    """A journal line as a value. Subclasses list their fields in the order they are written."""

    kind: ClassVar[str]

    def encode(self) -> dict[str, Any]:
        """The record as the dict the journal writes (one JSON line)."""
        line: dict[str, Any] = {"k": self.kind}
        for name, key, _read, _required in _specs(type(self)):
            value = getattr(self, name)
            if value is not None:
                line[key] = _write(value)
        return line

    def __getitem__(self, key: str) -> Any:
        """The value of ``key`` in the record's journal line (``record["k"]`` is its kind): for readers that
        scan lines generically, whether they hold a record or a line read from disk."""
        return self.encode()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.encode().get(key, default)

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> JournalRecord:
        values: dict[str, Any] = {}
        for name, key, read, required in _specs(cls):
            if key not in line and ALIASES.get(key) in line:
                key = ALIASES[key]
            if key in line:
                values[name] = read(line[key])
            elif required:
                raise KeyError(f"{cls.kind} record without {key!r}")
        return cls(**values)


_SPECS: dict[type, tuple[tuple[str, str, Callable[[Any], Any], bool], ...]] = {}


def _specs(cls: type) -> tuple[tuple[str, str, Callable[[Any], Any], bool], ...]:
    """``(field, key on disk, reader, required)`` per field of a record class, in order (computed once: a
    replay decodes every line)."""
    specs = _SPECS.get(cls)
    if specs is None:
        specs = _SPECS[cls] = tuple((f.name, f.metadata["key"], f.metadata["read"], f.default is not None)
                                    for f in dataclasses.fields(cls))
    return specs


@dataclass(frozen=True, kw_only=True)
class SignalRecord(JournalRecord):
    """A signal_id seen for the first time, with its payload hash, before anything else is done."""

    kind: ClassVar[str] = "signal"
    signal_id: str = _on_disk("id")
    payload_hash: str = _on_disk("h")
    payload: Any = _on_disk("sig")  # the parsed signal as JSON, or the raw entry (bounded) when it did not parse
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class ResultRecord(JournalRecord):
    """The signal's outcome as published in ``order_result.json``; absent fields leave the result's own."""

    kind: ClassVar[str] = "result"
    signal_id: str = _on_disk("id")
    status: ResultStatus = _on_disk("status", ResultStatus)
    reason: Reason | None = _on_disk("reason", lambda v: Reason(v) if v else v, optional=True)
    detail: str | None = _on_disk("detail", optional=True)
    message: str | None = _on_disk("message", optional=True)
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class InputRecord(JournalRecord):
    """An input that cannot be keyed to a fresh signal (unparsable entry, duplicate id conflict)."""

    kind: ClassVar[str] = "input"
    key: str = _on_disk("key")
    signal_id: str | None = _on_disk("id", optional=True)
    payload_hash: str | None = _on_disk("h", optional=True)
    reason: Reason = _on_disk("reason", Reason)
    detail: str | None = _on_disk("detail", optional=True)
    message: str | None = _on_disk("message", optional=True)
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class AllocRecord(JournalRecord):
    """A vault request for a BUY and the verdict it got (integer fen)."""

    kind: ClassVar[str] = "alloc"
    symbol: str = _on_disk("sym")
    amount_fen: int = _on_disk("amt")
    layer_index: int = _on_disk("layer")
    client_order_id: str = _on_disk("coid")
    requested_shares: int | None = _on_disk("shares", optional=True)
    fee_fen: int | None = _on_disk("fee", optional=True)  # None: written before the vault counted fees
    decision: VaultDecision = _on_disk("decision", VaultDecision)
    at: datetime | None = _on_disk("t", _time, optional=True)


@dataclass(frozen=True, kw_only=True)
class IntentRecord(JournalRecord):
    """An order about to be sent (write-ahead: on disk before the broker call)."""

    kind: ClassVar[str] = "intent"
    signal_id: str = _on_disk("id")
    client_order_id: str = _on_disk("coid")
    symbol: str = _on_disk("code")
    side: str = _on_disk("side")
    shares: int = _on_disk("shares")
    price: Decimal = _on_disk("price", lambda v: Decimal(str(v)))  # a string on disk: the exact limit price
    release_ids: tuple[str, ...] = _on_disk("release", _strings, optional=True)
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class SentRecord(JournalRecord):
    """What the broker call returned: ``SENT``, ``REJECTED``, or ``UNKNOWN`` (no answer)."""

    kind: ClassVar[str] = "sent"
    client_order_id: str = _on_disk("coid")
    status: str = _on_disk("status")
    broker_order_id: str | None = _on_disk("boid", optional=True)
    message: str | None = _on_disk("msg", optional=True)
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class UpdateRecord(JournalRecord):
    """One broker report (cumulative fills, integer fen) folded into the order; drives the vault."""

    kind: ClassVar[str] = "update"
    client_order_id: str = _on_disk("coid")
    state: OrderState = _on_disk("state", OrderState)
    filled_shares: int | None = _on_disk("filled", optional=True)
    filled_value_fen: int | None = _on_disk("value", optional=True)
    fees_fen: int | None = _on_disk("fees", optional=True)
    broker_order_id: str | None = _on_disk("boid", optional=True)
    message: str | None = _on_disk("msg", optional=True)
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class CancelRequestRecord(JournalRecord):
    """The executor asked the broker to cancel (max order age, halt, risk, day end)."""

    kind: ClassVar[str] = "cancel_req"
    client_order_id: str = _on_disk("coid")
    why: str | None = _on_disk("why", optional=True)
    at: datetime | None = _on_disk("t", _time, optional=True)


@dataclass(frozen=True, kw_only=True)
class LostRecord(JournalRecord):
    """An order of unknown outcome that lookups never found: it never reached the venue."""

    kind: ClassVar[str] = "lost"
    client_order_id: str = _on_disk("coid")
    at: datetime = _on_disk("t", _time)


@dataclass(frozen=True, kw_only=True)
class HaltRecord(JournalRecord):
    """Halt switched on (``FORCE_HALT``) or off (``RESUME``)."""

    kind: ClassVar[str] = "halt"
    on: bool = _on_disk("on", bool)
    why: str | None = _on_disk("why", optional=True)
    at: datetime | None = _on_disk("t", _time, optional=True)


@dataclass(frozen=True, kw_only=True)
class ForgetRecord(JournalRecord):
    """What compaction drops: final signals, terminal orders, and the ids of closed vault records."""

    kind: ClassVar[str] = "forget"
    ids: tuple[str, ...] = _on_disk("ids", _strings, optional=True)
    orders: tuple[str, ...] = _on_disk("orders", _strings, optional=True)
    owners: tuple[str, ...] = _on_disk("owners", _strings, optional=True)
    at: datetime | None = _on_disk("t", _time, optional=True)


@dataclass(frozen=True, kw_only=True)
class SnapshotRecord(JournalRecord):
    """A compacted journal's first record: the whole state (``windows.snapshot``) and the inputs seen."""

    kind: ClassVar[str] = SNAPSHOT_KIND
    version: int | None = _on_disk("v", optional=True)
    at: datetime | None = _on_disk("t", _time, optional=True)
    records: int | None = _on_disk("records", optional=True)  # records applied to build the state
    state: Any = _on_disk("state")  # encoded by ``windows.snapshot``; decoded when applied
    inputs: tuple[str, ...] = _on_disk("inputs", _strings, optional=True)
    # Every client_order_id the state still knows, for readers that only scan records.
    client_order_ids: tuple[str, ...] = _on_disk("coids", _strings, optional=True)


RECORD_KINDS: dict[str, type[JournalRecord]] = {
    cls.kind: cls
    for cls in (SignalRecord, ResultRecord, InputRecord, AllocRecord, IntentRecord, SentRecord, UpdateRecord,
                CancelRequestRecord, LostRecord, HaltRecord, ForgetRecord, SnapshotRecord)
}


def decode(line: Mapping[str, Any]) -> JournalRecord:
    """The record a journal line holds; ``ValueError`` for an unknown kind, ``KeyError`` for a missing key."""
    cls = RECORD_KINDS.get(line.get("k"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown journal record kind {line.get('k')!r}")
    return cls.from_line(line)


def as_record(record: JournalRecord | Mapping[str, Any]) -> JournalRecord:
    return record if isinstance(record, JournalRecord) else decode(record)
