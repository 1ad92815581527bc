"""The executor's decision for one incoming signal, as a pure function of state and market context.

Order (fixed): idempotency -> validation -> halt/risk -> cash precheck -> vault approval -> order intent.
Each check returns ``None`` or a ``Rejection`` with a stable reason code; the first failure becomes the
signal's REJECTED result and no order. The output is a list of journal records (``windows.journal_records``)
for the shell to append and apply; nothing here touches a file, the broker or the clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from settings.config import GridbridgeConfig
from shared_schema.models import SIGNAL_ID_PATTERN, Direction, Quote, Reason, ResultStatus, Signal
from shared_schema.types import fen_to_yuan, to_fen
from windows.executor_state import (
    ENTRY_FAULT as ENTRY_FAULT,  # the fault barrier's detail, defined with the state
)
from windows.executor_state import ExecutorState
from windows.journal_records import (
    AllocRecord,
    InputRecord,
    IntentRecord,
    JournalRecord,
    ResultRecord,
    SignalRecord,
)
from windows.market_rules import (
    OUTSIDE_SESSION,
    is_on_tick,
    is_whole_lots,
    new_order_window_problem,
    price_limits,
)
from windows.vault import FeeModel, VaultDecision


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    detail: str
    message: str


@dataclass(frozen=True)
class MarketContext:
    """What the executor knows about the market and the account when it judges a signal."""

    now: datetime
    quotes: dict[str, Quote]
    sellable: dict[str, int] | None  # can_use_volume per code from the broker; None = broker did not answer
    available_cash: Decimal | None
    quotes_ok: bool = True
    blocked: Callable[[Signal], Rejection | None] | None = field(default=None, compare=False)


def payload_hash(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def parse_signal_entry(raw: Any) -> tuple[Signal | None, str | None, str, Rejection | None]:
    """(signal, signal_id, payload hash, rejection) for one entry of ``order_signal.json``."""
    if isinstance(raw, dict):
        try:
            signal = Signal.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ())) or "signal"
            sid = raw.get("signal_id")
            usable = sid if isinstance(sid, str) and SIGNAL_ID_PATTERN.match(sid) else None
            detail = f"BAD_{loc.upper().replace('.', '_')}"[:48]
            return None, usable, payload_hash(raw), Rejection(Reason.INVALID_SIGNAL, detail, f"{loc}: {err.get('msg', '')}"[:300])
        return signal, signal.signal_id, payload_hash(signal.model_dump(mode="json")), None
    return None, None, payload_hash(raw), Rejection(Reason.INVALID_SIGNAL, "NOT_AN_OBJECT", "signal entry is not a JSON object")


def decide(
    state: ExecutorState,
    raw: Any,
    ctx: MarketContext,
    config: GridbridgeConfig,
    seen_inputs: set[str],
) -> list[JournalRecord]:
    """Journal records for one raw signal entry; empty when it was already handled."""
    t = ctx.now
    signal, signal_id, digest, invalid = parse_signal_entry(raw)

    # 1. idempotency
    if signal_id is None:
        key = f"input:{digest}"
        if key in seen_inputs:
            return []
        assert invalid is not None
        return [InputRecord(key=key, payload_hash=digest, reason=invalid.reason, detail=invalid.detail,
                            message=invalid.message, at=t)]
    entry = state.signals.get(signal_id)
    if entry is not None:
        if entry.payload_hash == digest or digest in entry.conflict_hashes:
            return []
        return [InputRecord(key=f"conflict:{signal_id}:{digest}", signal_id=signal_id, payload_hash=digest,
                            reason=Reason.DUPLICATE_ID_CONFLICT, detail="SIGNAL_ID_REUSED",
                            message=f"signal_id {signal_id} was already received with a different payload", at=t)]

    sig_payload = signal.model_dump(mode="json") if signal is not None else _safe_payload(raw)
    records: list[JournalRecord] = [SignalRecord(signal_id=signal_id, payload_hash=digest, payload=sig_payload, at=t)]

    def reject(rej: Rejection, status: ResultStatus = ResultStatus.REJECTED) -> list[JournalRecord]:
        records.append(ResultRecord(signal_id=signal_id, status=status, reason=rej.reason, detail=rej.detail,
                                    message=rej.message, at=t))
        return records

    if invalid is not None or signal is None:
        return reject(invalid or Rejection(Reason.INVALID_SIGNAL, "UNPARSABLE", "signal could not be parsed"))
    if signal.client_order_id in state.order_owner or signal.client_order_id in state.orders:
        return reject(Rejection(Reason.DUPLICATE_ID_CONFLICT, "CLIENT_ORDER_ID_REUSED",
                                f"client_order_id {signal.client_order_id} already belongs to another signal"))

    # 2. validation
    rejection = validate_signal(signal, ctx, config, state)
    if rejection is not None:
        status = ResultStatus.EXPIRED if rejection.reason is Reason.ORDER_EXPIRED else ResultStatus.REJECTED
        return reject(rejection, status)

    # 3. halt and risk
    if state.halted:
        return reject(Rejection(Reason.HALTED, "FORCE_HALT", f"executor halted: {state.halt_reason or 'no reason given'}"))
    if ctx.blocked is not None:
        rejection = ctx.blocked(signal)
        if rejection is not None:
            return reject(rejection)

    amount_fen = to_fen(signal.amount)
    if signal.direction is Direction.BUY:
        # 4. cash precheck against what the broker says is available
        need = signal.amount + fee_estimate(signal.amount, config)
        if ctx.available_cash is None:
            return reject(Rejection(Reason.INSUFFICIENT_CASH, "CASH_UNKNOWN", "broker did not report available cash"))
        if need > ctx.available_cash:
            return reject(Rejection(Reason.INSUFFICIENT_CASH, "BROKER_CASH",
                                    f"needs {need:.2f}, broker has {ctx.available_cash:.2f} available"))
        # 5. vault approval
        # The grant covers the commission too: committed cash is what leaves the account, fees included.
        fee_fen = fee_model(config).estimate_fen(amount_fen)
        decision = state.vault.check_allocation(signal.code, amount_fen, signal.layer_index, fee_fen)
        records.append(AllocRecord(symbol=signal.code, amount_fen=amount_fen, layer_index=signal.layer_index,
                                   client_order_id=signal.client_order_id, requested_shares=signal.shares,
                                   fee_fen=fee_fen, decision=decision, at=t))
        if decision is not VaultDecision.APPROVED:
            return reject(_vault_rejection(decision, state, signal, amount_fen))

    # 6. order intent (write-ahead; the shell sends after this is on disk)
    records.append(IntentRecord(signal_id=signal_id, client_order_id=signal.client_order_id, symbol=signal.code,
                                side=signal.direction.value, shares=signal.shares, price=signal.price,
                                release_ids=tuple(signal.release_client_order_ids), at=t))
    return records


def validate_signal(signal: Signal, ctx: MarketContext, config: GridbridgeConfig, state: ExecutorState) -> Rejection | None:
    """Schema-level checks passed; now the market rules, in a fixed order."""
    market = config.market
    if signal.code not in config.codes:
        return Rejection(Reason.INVALID_SIGNAL, "UNKNOWN_CODE", f"{signal.code} is not one of {list(config.codes)}")
    if signal.direction is Direction.BUY and not is_whole_lots(signal.shares, market):
        # A SELL may carry an odd remainder; its lot rule is checked against the lots it names (below).
        return Rejection(Reason.INVALID_SIGNAL, "LOT_SIZE", f"shares {signal.shares} is not a multiple of {market.lot_size}")
    if not is_on_tick(signal.price, market):
        return Rejection(Reason.INVALID_SIGNAL, "OFF_TICK", f"price {signal.price} is not on the {market.tick} tick")
    notional = signal.price * signal.shares  # exact: both factors are bounded by the schema
    if signal.amount < notional:
        return Rejection(Reason.INVALID_SIGNAL, "AMOUNT_BELOW_NOTIONAL",
                         f"amount {signal.amount} is below price x shares {notional}")
    if signal.amount > notional + fee_estimate(notional, config):
        # The vault freezes ``amount``: a 100-share order must not hold 150,000 of the pool.
        return Rejection(Reason.INVALID_SIGNAL, "AMOUNT_ABOVE_NOTIONAL",
                         f"amount {signal.amount} is above price x shares {notional} plus the fee margin "
                         f"{fee_estimate(notional, config)}")
    if signal.layer_index >= 64:
        return Rejection(Reason.INVALID_SIGNAL, "LAYER_INDEX", "layer_index out of range")
    tolerance = timedelta(seconds=config.executor.clock_skew_tolerance_s)
    if signal.created_at > ctx.now + tolerance:
        return Rejection(Reason.INVALID_SIGNAL, "FUTURE_TIMESTAMP",
                         f"created_at {signal.created_at.isoformat()} is ahead of the market clock {ctx.now.isoformat()}")
    if signal.expires_at is not None and signal.expires_at + tolerance < ctx.now:
        return Rejection(Reason.ORDER_EXPIRED, "SIGNAL_EXPIRED", f"expired at {signal.expires_at.isoformat()}")
    max_age = timedelta(seconds=config.executor.max_signal_age_s)
    if signal.expires_at is None and ctx.now - signal.created_at > max_age:
        # Without its own expiry a signal lives max_signal_age_s of market time: one written long ago
        # (a forgotten file, a restored backup) is never placed at today's prices.
        return Rejection(Reason.ORDER_EXPIRED, "SIGNAL_TOO_OLD",
                         f"created_at {signal.created_at.isoformat()} is more than {max_age.total_seconds():.0f} s "
                         f"before the market clock {ctx.now.isoformat()} and the signal has no expires_at")
    quote = ctx.quotes.get(signal.code)
    if quote is None:
        return Rejection(Reason.NO_QUOTE, "NO_QUOTE", f"no quote for {signal.code}")
    low, high = price_limits(Decimal(str(quote.prev_close)), market)
    if not (low <= signal.price <= high):
        return Rejection(Reason.PRICE_LIMIT, "OUTSIDE_DAILY_LIMIT", f"price {signal.price} outside [{low}, {high}]")
    window_problem = new_order_window_problem(ctx.now, signal.code, market)
    if window_problem == OUTSIDE_SESSION:
        return Rejection(Reason.OUTSIDE_SESSION, "OUTSIDE_SESSION",
                         f"{ctx.now.isoformat()} is outside {signal.code}'s continuous trading sessions")
    if window_problem is not None:
        return Rejection(Reason.NO_CANCEL_PERIOD, window_problem,
                         f"{ctx.now.isoformat()} is in {signal.code}'s {window_problem.lower().replace('_', ' ')}, "
                         "where the exchange refuses cancels: an order placed now could not be taken back")
    if signal.direction is Direction.SELL:
        if ctx.sellable is None:
            return Rejection(Reason.NOT_SELLABLE_T1, "POSITIONS_UNKNOWN", "broker did not report positions")
        sellable = ctx.sellable.get(signal.code, 0)
        if signal.shares > sellable:
            return Rejection(Reason.NOT_SELLABLE_T1, "ABOVE_CAN_USE_VOLUME",
                             f"sell {signal.shares} > sellable {sellable} (T+1)")
        lot_problem = state.vault.sell_problem(signal.code, signal.release_client_order_ids, signal.shares,
                                               market.lot_size)
        if lot_problem is not None:
            return Rejection(Reason.INVALID_SIGNAL, lot_problem[0], lot_problem[1])
        busy = [lot for lot in signal.release_client_order_ids if lot in state.lots_in_sell]
        if busy:
            return Rejection(Reason.INVALID_SIGNAL, "RELEASE_BUSY", f"lots {busy} are already being sold")
    return None


def _vault_rejection(decision: VaultDecision, state: ExecutorState, signal: Signal, amount_fen: int) -> Rejection:
    used = state.vault.committed()
    pool = state.vault.limits.physical_pool
    reason = {
        VaultDecision.NOMINAL_CAP: Reason.NOMINAL_CAP,
        VaultDecision.POOL_EXHAUSTED: Reason.POOL_EXHAUSTED,
        VaultDecision.POOL_RESERVE_15: Reason.POOL_RESERVE_15,
        VaultDecision.INVALID_REQUEST: Reason.INVALID_SIGNAL,
    }[decision]
    return Rejection(reason, decision.value,
                     f"{signal.code} layer {signal.layer_index} needs {amount_fen / 100:.2f}; "
                     f"pool committed {used / 100:.2f} of {pool / 100:.2f}")


def fee_model(config: GridbridgeConfig) -> FeeModel:
    """The configured commission model (``executor.commission_estimate_rate`` / ``_min``), the one every
    estimate uses: the vault's fee reserve, the cash precheck, the batch reservation and a fill the broker
    reports with commission 0."""
    ex = config.executor
    return FeeModel(Decimal(ex.commission_estimate_rate), to_fen(Decimal(ex.commission_estimate_min)))


def fee_estimate(amount: Decimal, config: GridbridgeConfig) -> Decimal:
    """The commission (yuan, to the fen) the configured model charges on ``amount``."""
    return fen_to_yuan(fee_model(config).estimate_fen(to_fen(amount)))


def _safe_payload(raw: Any) -> Any:
    # Keep what was received in the record, bounded, whatever its shape.
    text = json.dumps(raw, default=str, ensure_ascii=True)
    return raw if len(text) <= 4000 else {"truncated": text[:4000]}
