"""The executor's state, changed only by applying journal records (event sourcing, no IO).

The live loop appends a record to the fsynced journal and then applies it; a restart applies the same
records in the same order and arrives at the same state: the same vault, the same orders, the same results.
The record kinds are the frozen dataclasses of ``windows.journal_records``; ``apply`` dispatches them by a
kind -> handler map and returns the audit effects the change causes (``windows.audit_map``).

``halted`` here is the one halted truth (set by ``halt`` records); the risk snapshot's and the kill
switch's flags follow it (``windows.risk_shell.ExecutorRisk.follow_halt``).

Over 500 lines because the state, its views and every handler that changes it read best side by side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

from core.oms.order_fsm import (
    OrderRecord,
    OrderState,
    apply_update,
    assume_sent,
    confirm_sent,
)
from shared_schema.models import Direction, InputRejection, Reason, Result, ResultStatus
from shared_schema.types import MAX_SHARES, MAX_YEAR, MIN_YEAR, fen_to_yuan
from windows import snapshot as snapshot_codec
from windows.audit_map import AuditEffect, StateChange, audit_events
from windows.journal_records import (
    AllocRecord,
    CancelRequestRecord,
    ForgetRecord,
    HaltRecord,
    InputRecord,
    IntentRecord,
    JournalRecord,
    LostRecord,
    ResultRecord,
    SentRecord,
    SignalRecord,
    SnapshotRecord,
    UpdateRecord,
    as_record,
)
from windows.vault import GlobalVault

ENTRY_FAULT = "ENTRY_FAULT"
"""Detail of an INVALID_SIGNAL rejection for an entry whose judgement or records raised (the fault barrier)."""


class ReplayDiverged(RuntimeError):
    """Replaying an ``alloc`` record gave another vault verdict than the one journaled: the journal or the
    code changed under a live account. Deliberately fatal: start-up stops (never skipped like a faulty record)."""


@dataclass
class SignalEntry:
    signal_id: str
    payload_hash: str
    result: Result
    conflict_hashes: set[str] = field(default_factory=set)
    expires_at: datetime | None = None  # the signal's own expiry, when it named a well-formed one


@dataclass
class LiveOrder:
    record: OrderRecord
    signal_id: str
    release_ids: tuple[str, ...]
    created_at: datetime
    outcome_unknown: bool = False
    unknown_since: datetime | None = None
    cancel_requested: bool = False
    cancel_reason: str = ""


class ExecutorState:
    def __init__(self, vault: GlobalVault, result_retention: int = 2000) -> None:
        self.vault = vault
        self.signals: dict[str, SignalEntry] = {}
        self.order_owner: dict[str, str] = {}  # client_order_id -> the signal_id that claimed it
        self.orders: dict[str, LiveOrder] = {}
        self.lots_in_sell: dict[str, str] = {}  # lot's client_order_id -> the sell's releasing it
        self.input_rejections: deque[InputRejection] = deque(maxlen=200)
        self.halted = False
        self.halt_reason = ""
        self.result_retention = result_retention
        self.changed = True
        self.records_applied = 0

    # ------------------------------------------------------------------------------------------ views

    def open_orders(self) -> list[LiveOrder]:
        return [o for o in self.orders.values() if not o.record.state.is_terminal]

    def results_view(self, present: Collection[str] = ()) -> dict[str, Result]:
        """What ``order_result.json`` lists, oldest first: every result not yet final, every result whose
        signal is still in ``order_signal.json`` (``present``: its writer is waiting for it), and the newest
        ``result_retention`` final results of real signals. Junk (a final INVALID_SIGNAL or
        DUPLICATE_ID_CONFLICT rejection) is never counted against that retention: once its entry has left
        the file it is listed with the input rejections (``junk_view``) under their own cap."""
        keep: set[str] = set()
        finals = 0
        for entry in reversed(self.signals.values()):
            result = entry.result
            if not result.status.is_final or entry.signal_id in present:
                keep.add(entry.signal_id)
            elif not is_junk(result) and finals < self.result_retention:
                keep.add(entry.signal_id)
                finals += 1
        return {sid: e.result for sid, e in self.signals.items() if sid in keep}

    def junk_view(self, present: Collection[str] = ()) -> list[InputRejection]:
        """The input rejections to publish, oldest first, at most their cap: unkeyable inputs and conflicts
        (``input_rejections``) and the junk results that have left the signal file."""
        cap = self.input_rejections.maxlen or 200
        junk: list[InputRejection] = []
        for entry in reversed(self.signals.values()):
            if len(junk) >= cap:
                break
            result = entry.result
            if result.status.is_final and is_junk(result) and entry.signal_id not in present:
                junk.append(InputRejection(key=f"signal:{entry.signal_id}", signal_id=entry.signal_id,
                                           reason=result.reason or Reason.INVALID_SIGNAL, detail=result.detail,
                                           message=result.message, at=result.updated_at))
        merged = sorted([*self.input_rejections, *junk], key=lambda r: r.at or _EPOCH)
        return merged[-cap:]

    # ------------------------------------------------------------------------------ compaction

    def snapshot(self) -> Any:
        """Every attribute of this state, encoded exactly (``windows.snapshot``): what a ``snapshot``
        journal record carries. Generic on purpose: a field added tomorrow is in the snapshot too."""
        return snapshot_codec.encode(dict(vars(self)))

    def forgettable(self, present: Collection[str], now: datetime, max_signal_age_s: float,
                    skew_s: float) -> dict[str, list[str]]:
        """What a ``forget`` record may drop now, so memory and the journal's snapshot stay bounded by the
        open state plus retention. A signal is forgotten only when all of these hold: its result is final;
        it is not in ``order_signal.json`` (``present``) and not among the results or input rejections
        published (``results_view``/``junk_view``); it can no longer be accepted if offered again (its
        ``expires_at``, or ``created_at`` + ``max_signal_age_s``, plus the skew tolerance, is before ``now``,
        market time); each of its orders is terminal; and none of them sells a lot still held (reduction
        attempts are numbered per lot). A forgotten order's vault records go with it once its lot is
        closed; while the lot is open its allocation and its client_order_id stay."""
        keep = set(self.results_view(present)) | {r.signal_id for r in self.junk_view(present)}
        keep |= {o.signal_id for o in self.orders.values() if not o.record.state.is_terminal}
        by_signal: dict[str, list[LiveOrder]] = {}
        for live in self.orders.values():
            by_signal.setdefault(live.signal_id, []).append(live)
        ids: list[str] = []
        orders: list[str] = []
        owners: list[str] = []
        for sid, entry in self.signals.items():
            if sid in keep or not entry.result.status.is_final:
                continue
            created = entry.result.signal_created_at
            horizon = entry.expires_at or (created + timedelta(seconds=max_signal_age_s) if created else None)
            if horizon is not None and horizon + timedelta(seconds=skew_s) >= now:
                continue
            mine = by_signal.get(sid, [])
            if any(not o.record.state.is_terminal or o.record.client_order_id in self.lots_in_sell for o in mine):
                continue
            if any(self._is_open_lot(lot) for o in mine for lot in o.release_ids):
                continue  # a sell (or a reduction attempt) of a lot still held: its history still counts
            ids.append(sid)
            for live in mine:
                client_order_id = live.record.client_order_id
                orders.append(client_order_id)
                alloc = self.vault.allocations.get(client_order_id)
                if alloc is None or not alloc.is_open:
                    owners.append(client_order_id)
            own = entry.result.client_order_id
            if own and own not in self.orders and own not in self.vault.allocations:
                owners.append(own)
        return {"ids": ids, "orders": orders, "owners": sorted(set(owners))}

    def _is_open_lot(self, client_order_id: str) -> bool:
        alloc = self.vault.allocations.get(client_order_id)
        return alloc is not None and alloc.is_open

    def _apply_forget(self, rec: ForgetRecord) -> StateChange:
        for sid in rec.ids or ():
            self.signals.pop(sid, None)
        for client_order_id in rec.orders or ():
            live = self.orders.get(client_order_id)
            if live is not None and live.record.state.is_terminal:
                del self.orders[client_order_id]
        vault = self.vault
        for client_order_id in rec.owners or ():
            self.order_owner.pop(client_order_id, None)
            alloc = vault.allocations.get(client_order_id)
            if alloc is not None and not alloc.is_open and not alloc.used and not alloc.frozen:
                del vault.allocations[client_order_id]
            for book in ("decisions", "sells"):
                table = getattr(vault, book, None)
                if isinstance(table, dict):
                    table.pop(client_order_id, None)
        return _NO_CHANGE

    def _apply_snapshot(self, rec: SnapshotRecord) -> StateChange:
        """Become the state a compacted journal's first record holds (``snapshot``)."""
        attrs = snapshot_codec.decode(rec.state)
        fresh = ExecutorState(attrs["vault"], attrs.get("result_retention", self.result_retention))
        self.__dict__.clear()
        self.__dict__.update(vars(fresh))  # attributes added since the snapshot keep their defaults
        self.__dict__.update({RENAMED_ATTRIBUTES.get(k, k): v for k, v in attrs.items() if k not in RETIRED_ATTRIBUTES})
        for live in self.orders.values():
            if not isinstance(live.record.price, Decimal):  # snapshots written while the price was a string
                live.record = replace(live.record, price=Decimal(live.record.price))
        self.records_applied -= 1  # ``apply`` counts this record; the snapshot already counts what it holds
        return _NO_CHANGE

    # ------------------------------------------------------------------------------------------ apply

    def apply(self, record: JournalRecord | Mapping[str, Any]) -> tuple[AuditEffect, ...]:
        """Apply one journal record (a line as read from disk is decoded first) and return the audit effects
        it causes (``windows.audit_map``): the executor writes them for a record it commits, a replay drops them."""
        rec = as_record(record)
        change = self._HANDLERS[rec.kind](self, rec)
        self.changed = True
        self.records_applied += 1
        return audit_events(rec, change)

    def _apply_signal(self, rec: SignalRecord) -> StateChange:
        sig = rec.payload if isinstance(rec.payload, dict) else {}
        self.signals[rec.signal_id] = SignalEntry(
            signal_id=rec.signal_id, payload_hash=rec.payload_hash,
            result=_initial_result(rec.signal_id, sig, rec.at), expires_at=_expiry(sig),
        )
        client_order_id = sig.get("client_order_id")
        if isinstance(client_order_id, str) and client_order_id and client_order_id not in self.order_owner:
            self.order_owner[client_order_id] = rec.signal_id
        return _NO_CHANGE

    def _apply_result(self, rec: ResultRecord) -> StateChange:
        entry = self.signals[rec.signal_id]
        fields: dict[str, Any] = {"status": rec.status}
        fields.update({name: value for name, value in (("reason", rec.reason), ("detail", rec.detail),
                                                       ("message", rec.message)) if value is not None})
        entry.result = entry.result.model_copy(update={**fields, "updated_at": rec.at})
        if rec.detail == ENTRY_FAULT and entry.result.status is ResultStatus.REJECTED:
            self._release_unsent(entry)
        return StateChange(result_code=entry.result.code)

    def _release_unsent(self, entry: SignalEntry) -> None:
        """A signal closed by the fault barrier holds no money without an order: an allocation its failed
        entry left open (granted, never sent) goes back to the pool. Live and at replay alike, whether the
        failing record applied there or not, so a restart arrives at the live vault."""
        client_order_id = entry.result.client_order_id
        alloc = self.vault.allocations.get(client_order_id) if client_order_id else None
        if alloc is None or client_order_id in self.orders or self.order_owner.get(client_order_id) != entry.signal_id:
            return
        if alloc.is_open and alloc.filled_shares == 0:
            self.vault.on_cancel(alloc.symbol, client_order_id)

    def _apply_input(self, rec: InputRecord) -> StateChange:
        self.input_rejections.append(
            InputRejection(
                key=rec.key, signal_id=rec.signal_id or "", reason=rec.reason, detail=rec.detail or "",
                message=rec.message or "", at=rec.at,
            )
        )
        if rec.signal_id in self.signals and rec.payload_hash:
            self.signals[rec.signal_id].conflict_hashes.add(rec.payload_hash)
        return _NO_CHANGE

    def _apply_alloc(self, rec: AllocRecord) -> StateChange:
        if rec.fee_fen is None:
            # Written before the vault counted fees and decided "first layer" itself: the verdict was given
            # (and an approved order sent) under the old rules, so it stands; the vault notes any difference.
            self.vault.record_allocation(rec.symbol, rec.amount_fen, rec.layer_index, rec.client_order_id,
                                         rec.requested_shares, rec.decision, "journal record older than the fee rules")
            return _NO_CHANGE
        decision = self.vault.request_allocation(rec.symbol, rec.amount_fen, rec.layer_index, rec.client_order_id,
                                                 rec.requested_shares, rec.fee_fen)
        if decision is not rec.decision:
            # Replay must reproduce the live verdict; a difference means the journal or the code changed.
            raise ReplayDiverged(f"vault replay diverged for {rec.client_order_id}: {decision.value} != "
                                 f"{rec.decision.value}")
        return _NO_CHANGE

    def _apply_intent(self, rec: IntentRecord) -> StateChange:
        order = OrderRecord(client_order_id=rec.client_order_id, symbol=rec.symbol, side=rec.side, shares=rec.shares,
                            price=rec.price)
        release = rec.release_ids or ()
        self.orders[rec.client_order_id] = LiveOrder(order, rec.signal_id, release, rec.at)
        for lot in release:
            self.lots_in_sell[lot] = rec.client_order_id
        self._set_result(rec.signal_id, rec.at, status=ResultStatus.ACCEPTED)
        return StateChange(after=order)

    def _apply_sent(self, rec: SentRecord) -> StateChange:
        live = self.orders[rec.client_order_id]
        before = live.record
        if rec.status == "UNKNOWN":
            live.outcome_unknown = True
            live.unknown_since = rec.at
            return StateChange(before, live.record)
        live.record = confirm_sent(live.record, rec.broker_order_id or "")
        refused = None
        if rec.status == "REJECTED":
            refused = self._fold(live, OrderState.REJECTED, rec.at, message=rec.message or "")
        else:
            self._set_result(live.signal_id, rec.at, status=ResultStatus.SENT, broker_order_id=live.record.broker_order_id)
        return StateChange(before, live.record, refused=_refusals(refused))

    def _apply_update(self, rec: UpdateRecord) -> StateChange:
        live = self.orders.get(rec.client_order_id)
        if live is None:
            return _NO_CHANGE
        before = live.record
        # An order whose send was never confirmed that the venue reports on did reach it.
        live.record = assume_sent(live.record)
        live.outcome_unknown = False
        refused = self._fold(live, rec.state, rec.at, rec.filled_shares or 0, rec.filled_value_fen or 0,
                             rec.fees_fen or 0, rec.broker_order_id or "", rec.message or "")
        return StateChange(before, live.record, refused=_refusals(refused))

    def _apply_cancel_req(self, rec: CancelRequestRecord) -> StateChange:
        live = self.orders[rec.client_order_id]
        live.cancel_requested = True
        live.cancel_reason = rec.why or ""
        return _NO_CHANGE

    def _apply_lost(self, rec: LostRecord) -> StateChange:
        live = self.orders[rec.client_order_id]
        before = live.record
        live.outcome_unknown = False
        # Never at the venue: the state machine has no NEW -> REJECTED, so the order passes SENT on the way.
        live.record = assume_sent(live.record)
        refused = self._fold(live, OrderState.REJECTED, rec.at,
                             message="never reached the venue (lookups found nothing)")
        return StateChange(before, live.record, refused=_refusals(refused))

    def _apply_halt(self, rec: HaltRecord) -> StateChange:
        self.halted = rec.on
        self.halt_reason = rec.why or ""
        return _NO_CHANGE

    _HANDLERS: ClassVar[dict[str, Callable[[ExecutorState, Any], StateChange]]] = {
        SignalRecord.kind: _apply_signal,
        ResultRecord.kind: _apply_result,
        InputRecord.kind: _apply_input,
        AllocRecord.kind: _apply_alloc,
        IntentRecord.kind: _apply_intent,
        SentRecord.kind: _apply_sent,
        UpdateRecord.kind: _apply_update,
        CancelRequestRecord.kind: _apply_cancel_req,
        LostRecord.kind: _apply_lost,
        HaltRecord.kind: _apply_halt,
        ForgetRecord.kind: _apply_forget,
        SnapshotRecord.kind: _apply_snapshot,
    }
    """Journal record kind -> the handler that applies it (each returns the change the audit map reads)."""

    # --------------------------------------------------------------------------------------- folding

    def _fold(
        self,
        live: LiveOrder,
        target: OrderState,
        at: datetime,
        filled: int = 0,
        value: int = 0,
        fees: int = 0,
        broker_order_id: str = "",
        message: str = "",
    ) -> str | None:
        """Fold one report into the order through the state machine; the refusal, when it refused one."""
        outcome = apply_update(live.record, target, filled, value, fees, broker_order_id, message)
        refused = None if outcome.refused is None else f"{live.record.client_order_id}: {outcome.refused}"
        before = live.record
        live.record = order = outcome.order
        if not outcome.changed and outcome.refused is None:
            return refused
        self._drive_vault(live, before)
        self._set_result(
            live.signal_id, at,
            status=_result_status(order.state),
            reason=self._reason_for(live),
            message=order.message if order.state in (OrderState.REJECTED, OrderState.CANCELLED) else "",
            broker_order_id=order.broker_order_id,
            filled_shares=order.filled_shares,
            avg_price=float(order.avg_price),
            filled_value=fen_to_yuan(order.filled_value_fen),
            fees=fen_to_yuan(self._charged_fees(order)[0]),
        )
        if order.state.is_terminal:
            for lot in live.release_ids:
                if self.lots_in_sell.get(lot) == order.client_order_id:
                    del self.lots_in_sell[lot]
        return refused

    def _drive_vault(self, live: LiveOrder, before: OrderRecord) -> None:
        """Fold the order's cumulative fill and fees into the vault (idempotent: the vault ignores repeats).

        A fill the broker reports with commission 0 is charged the configured fee model's estimate, marked
        estimated; the broker's figure replaces it when a later report carries one.
        """
        order = live.record
        code = order.symbol
        fees, estimated = self._charged_fees(order)
        if order.side == Direction.BUY.value:
            if order.client_order_id not in self.vault.allocations:
                return
            if order.filled_shares > 0:
                self.vault.on_fill(code, order.client_order_id, order.filled_shares, order.filled_value_fen, fees,
                                   estimated)
            if order.state.is_terminal:
                self.vault.on_cancel(code, order.client_order_id)
        elif live.release_ids and order.filled_shares > 0:
            self.vault.apply_sell_fill(
                code, order.client_order_id, live.release_ids, order.shares, order.filled_shares,
                order.filled_value_fen, fees, estimated,
            )

    def _charged_fees(self, order: OrderRecord) -> tuple[int, bool]:
        """The order's fees in fen as the vault charges them, and whether they are the fee model's estimate."""
        if order.fees_fen == 0 and order.filled_value_fen > 0:
            return self.vault.fee_model.estimate_fen(order.filled_value_fen), True
        return order.fees_fen, False

    def _reason_for(self, live: LiveOrder) -> Reason | None:
        state = live.record.state
        if state is OrderState.REJECTED:
            return Reason.BROKER_REJECT
        if state is OrderState.CANCELLED:
            if live.cancel_reason == "HALTED":
                return Reason.HALTED
            if live.cancel_reason == "RISK":
                return Reason.RISK_STATE
            return Reason.ORDER_EXPIRED
        return None

    def _set_result(self, signal_id: str, at: datetime, **fields: Any) -> None:
        entry = self.signals.get(signal_id)
        if entry is None:
            return
        entry.result = entry.result.model_copy(update={**fields, "updated_at": at})


RENAMED_ATTRIBUTES = {"coid_owner": "order_owner"}
"""State attributes an older snapshot holds under an earlier name."""
RETIRED_ATTRIBUTES = frozenset({"illegal_transitions"})
"""State attributes an older snapshot may hold that this version no longer has (refused transitions are
now returned as audit effects by ``apply``)."""
_NO_CHANGE = StateChange()


def _refusals(refused: str | None) -> tuple[str, ...]:
    return () if refused is None else (refused,)


JUNK_REASONS = frozenset({Reason.INVALID_SIGNAL, Reason.DUPLICATE_ID_CONFLICT})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def is_junk(result: Result) -> bool:
    """A final rejection of an input that could never be an order (malformed, or a reused id)."""
    return result.status is ResultStatus.REJECTED and result.reason in JUNK_REASONS


def _expiry(sig: dict[str, Any]) -> datetime | None:
    """The signal's own expiry when it is well-formed: aware and within the schema's years (a refused
    signal's raw ``expires_at`` in year 9999 would overflow ``expires_at + skew`` later)."""
    value = sig.get("expires_at")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or not (MIN_YEAR <= parsed.year <= MAX_YEAR):
        return None
    return parsed


def _share_count(value: Any) -> int | None:
    """A share count echoed into a result: a JSON integer within the schema's bounds, else nothing (a
    refused ``1e99999`` must not become a 100,000-digit int that no journal line can hold)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SHARES:
        return value
    return None


def _initial_result(signal_id: str, sig: dict[str, Any], at: datetime) -> Result:
    """The ACCEPTED result of a newly seen signal, taking only the fields that are well-formed."""
    base = Result(signal_id=signal_id, status=ResultStatus.ACCEPTED, received_at=at, updated_at=at)
    optional = {
        "client_order_id": sig.get("client_order_id"),
        "code": sig.get("code"),
        "direction": sig.get("direction"),
        "requested_shares": _share_count(sig.get("shares")),
        "release_client_order_ids": sig.get("release_client_order_ids") or None,
        "signal_created_at": sig.get("created_at"),
    }
    for name, value in optional.items():
        if value is None:
            continue
        try:
            base = Result.model_validate({**base.model_dump(), name: value})
        except ValueError:
            continue
    return base


def _result_status(state: OrderState) -> ResultStatus:
    return {
        OrderState.NEW: ResultStatus.ACCEPTED,
        OrderState.SENT: ResultStatus.SENT,
        OrderState.ACK: ResultStatus.SENT,
        OrderState.PARTIAL: ResultStatus.PARTIAL,
        OrderState.FILLED: ResultStatus.FILLED,
        OrderState.CANCELLED: ResultStatus.CANCELLED,
        OrderState.REJECTED: ResultStatus.REJECTED,
    }[state]


__all__ = ["ENTRY_FAULT", "ExecutorState", "LiveOrder", "ReplayDiverged", "SignalEntry"]
