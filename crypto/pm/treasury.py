"""Treasury: keep enough free margin in the futures account by moving it from spot, once per ``transfer_id``.

need = max(0, min_free_fut - free_fut); a transfer of ``need`` happens only when
free_spot >= need + spot_buffer (spot keeps its own buffer; a partial top-up that drains spot is refused).

A transfer's life is a table: PENDING -> APPROVED -> EXECUTED | FAILED, and PENDING -> FAILED when an
operator rejects it. In ``auto`` mode the manager approves its own request at once; in ``approval`` mode
it waits for ``POST /auto-transfer/trigger`` with ``approve``. A ``transfer_id`` is the idempotency key at
every step: the store holds one record per id and the venue is asked once per id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum

ZERO = Decimal(0)


class TransferState(str, Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    EXECUTED = "EXECUTED"
    FAILED = "FAILED"


class TransferTrigger(str, Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    VENUE_OK = "VENUE_OK"
    VENUE_FAILED = "VENUE_FAILED"


TRANSITIONS: dict[tuple[TransferState, TransferTrigger], TransferState] = {
    (TransferState.PENDING, TransferTrigger.APPROVE): TransferState.APPROVED,
    (TransferState.PENDING, TransferTrigger.REJECT): TransferState.FAILED,
    (TransferState.APPROVED, TransferTrigger.VENUE_OK): TransferState.EXECUTED,
    # A refused transfer is final for its id; a new need gets a new id on a later tick.
    (TransferState.APPROVED, TransferTrigger.VENUE_FAILED): TransferState.FAILED,
}


class IllegalTransfer(ValueError):
    def __init__(self, state: TransferState, trigger: TransferTrigger) -> None:
        super().__init__(f"TRANSFER_ILLEGAL_TRANSITION: {state.value} + {trigger.value}")
        self.code = "TRANSFER_ILLEGAL_TRANSITION"


@dataclass(frozen=True)
class TransferRecord:
    transfer_id: str
    asset: str
    amount: Decimal
    from_account: str
    to_account: str
    state: TransferState
    ts_ms: int
    reason: str = ""
    venue_transfer_id: str = ""


def need(min_free_fut: Decimal, free_fut: Decimal) -> Decimal:
    """How much the futures account is short of its free-margin floor."""
    return max(ZERO, min_free_fut - free_fut)


def decide_transfer(free_fut: Decimal, free_spot: Decimal, min_free_fut: Decimal,
                    spot_buffer: Decimal) -> Decimal | str:
    """The amount to move, or why not (``TREASURY_NO_NEED``, ``TREASURY_SPOT_SHORT``, and
    ``TREASURY_BALANCE_INVALID`` for a balance that is not a finite non-negative number: no transfer is ever
    sized from NaN or a negative free balance)."""
    if not all(v.is_finite() and v >= 0 for v in (free_fut, free_spot)):
        return "TREASURY_BALANCE_INVALID"
    n = need(min_free_fut, free_fut)
    if n <= 0:
        return "TREASURY_NO_NEED"
    if free_spot < n + spot_buffer:
        return "TREASURY_SPOT_SHORT"
    return n


def transition(rec: TransferRecord, trigger: TransferTrigger, ts_ms: int, reason: str = "",
               venue_transfer_id: str = "") -> TransferRecord:
    """Apply one trigger; an illegal one raises ``IllegalTransfer`` and changes nothing."""
    nxt = TRANSITIONS.get((rec.state, trigger))
    if nxt is None:
        raise IllegalTransfer(rec.state, trigger)
    return replace(rec, state=nxt, ts_ms=ts_ms, reason=reason or rec.reason,
                   venue_transfer_id=venue_transfer_id or rec.venue_transfer_id)


def transfer_id_for(from_account: str, to_account: str, now_ms: int, period_ms: int) -> str:
    """One id per treasury period and route: two ticks in the same period ask for the same transfer."""
    return f"tr-{from_account}-{to_account}-{now_ms // period_ms}"
