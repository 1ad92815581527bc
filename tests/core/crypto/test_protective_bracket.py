"""The protective bracket: stop first and confirmed in time, take-profit second, OCO, failures into risk."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.events import AuditCode
from core.execution.protective import (
    BRACKET_REPEATS,
    BRACKET_TRANSITIONS,
    Bracket,
    BracketActionKind,
    BracketEvent,
    BracketState,
    BracketTrigger,
    MissingSlPolicy,
    ProtectiveConfig,
    ProtectiveKind,
    fold_attach_failure,
    open_bracket,
    step_bracket,
    tick_bracket,
)
from core.risk.checks import RiskReason, check_order
from core.risk.state import RiskState
from tests.core.stubs import CFG, at, intent, snapshot

D = Decimal
T = BracketTrigger
S = BracketState
PCFG = ProtectiveConfig(attach_timeout_ms=2000)


def long_bracket(tp: bool = True) -> Bracket:
    return open_bracket("BTC", D("0.5"), D(38_000), D(45_000) if tp else None, "sl1", "tp1" if tp else None, "g1")


def feed(b: Bracket, *triggers: T, start: float = 0) -> Bracket:
    for i, t in enumerate(triggers):
        step = step_bracket(b, BracketEvent(t), at(seconds=start + i))
        assert step.refused is None, (b.state, t)
        b = step.bracket
    return b


def test_stop_first_then_take_profit_after_its_ack() -> None:
    b = long_bracket()
    s1 = step_bracket(b, BracketEvent(T.START), at())
    assert s1.bracket.state is S.SL_PENDING
    assert [(a.kind, a.order.kind, a.client_order_id) for a in s1.actions] == [
        (BracketActionKind.PLACE, ProtectiveKind.SL, "sl1")
    ]
    sl = s1.actions[0].order
    assert sl.reduce_only and sl.close_side == "SELL" and sl.qty == D("0.5")
    s2 = step_bracket(s1.bracket, BracketEvent(T.SL_ACK), at(seconds=1))
    assert s2.bracket.state is S.TP_PENDING and s2.bracket.is_protected
    assert [(a.kind, a.order.kind) for a in s2.actions] == [(BracketActionKind.PLACE, ProtectiveKind.TP)]
    assert [e.code for e in s2.events] == [AuditCode.EXEC_PROTECTIVE_ATTACHED]
    s3 = step_bracket(s2.bracket, BracketEvent(T.TP_ACK), at(seconds=2))
    assert s3.bracket.state is S.ARMED


def test_stop_only_bracket_arms_on_the_stop_ack() -> None:
    b = feed(long_bracket(tp=False), T.START, T.SL_ACK)
    assert b.state is S.ARMED


@pytest.mark.parametrize(("filled", "cancelled"), [(T.SL_FILLED, ProtectiveKind.TP), (T.TP_FILLED, ProtectiveKind.SL)])
def test_oco_one_fills_the_other_is_cancelled(filled: T, cancelled: ProtectiveKind) -> None:
    b = feed(long_bracket(), T.START, T.SL_ACK, T.TP_ACK)
    step = step_bracket(b, BracketEvent(filled), at(seconds=9))
    assert step.bracket.state is S.CLOSED
    assert [(a.kind, a.order.kind) for a in step.actions] == [(BracketActionKind.CANCEL, cancelled)]
    assert [e.code for e in step.events] == [AuditCode.EXEC_OCO_CANCEL]


def test_stop_unconfirmed_in_time_refuses_exposure_and_is_looked_up() -> None:
    b = feed(long_bracket(), T.START)
    assert tick_bracket(b, at(seconds=1.999), PCFG).bracket == b
    step = tick_bracket(b, at(seconds=2), PCFG)
    assert step.bracket.state is S.UNPROTECTED and step.attach_failed is ProtectiveKind.SL
    assert [(a.kind, a.client_order_id) for a in step.actions] == [(BracketActionKind.LOOKUP, "sl1")]
    assert [e.code for e in step.events] == [AuditCode.EXEC_PROTECTIVE_TIMEOUT]
    res = fold_attach_failure(step, snapshot(), at(seconds=2), CFG, PCFG)
    assert res.snapshot.state is RiskState.REDUCE_ONLY
    assert AuditCode.EXEC_PROTECTIVE_ORDER_MISSING in [e.code for e in res.events]
    assert check_order(res.snapshot, intent("BTC", leverage="2"), CFG) is RiskReason.RISK_REDUCE_ONLY
    # The lookup finds it live after all: protected again, take-profit goes out; the latch stays.
    late = step_bracket(step.bracket, BracketEvent(T.SL_ACK), at(seconds=3))
    assert late.bracket.state is S.TP_PENDING and late.attach_failed is None
    assert [a.order.kind for a in late.actions] == [ProtectiveKind.TP]


def test_stop_failure_can_freeze_the_symbol_instead() -> None:
    step = step_bracket(feed(long_bracket(), T.START), BracketEvent(T.SL_FAILED), at(seconds=1))
    pcfg = ProtectiveConfig(missing_sl_policy=MissingSlPolicy.FREEZE_SYMBOL)
    res = fold_attach_failure(step, snapshot(), at(seconds=1), CFG, pcfg)
    assert "BTC" in res.snapshot.frozen_symbols and res.snapshot.state is RiskState.NORMAL


def test_retry_with_a_new_client_id_only() -> None:
    b = feed(long_bracket(), T.START, T.SL_FAILED)
    assert step_bracket(b, BracketEvent(T.RETRY_SL, client_order_id="sl1"), at()).refused is not None
    r = step_bracket(b, BracketEvent(T.RETRY_SL, client_order_id="sl2"), at(seconds=5))
    assert r.bracket.state is S.SL_PENDING and r.bracket.sl_client_id == "sl2"
    assert [(a.kind, a.client_order_id) for a in r.actions] == [(BracketActionKind.PLACE, "sl2")]
    assert tick_bracket(r.bracket, at(seconds=6), PCFG).bracket.state is S.SL_PENDING  # new clock


def test_tp_failure_is_only_audited_and_a_tp_timeout_is_cancelled() -> None:
    b = feed(long_bracket(), T.START, T.SL_ACK)
    failed = step_bracket(b, BracketEvent(T.TP_FAILED), at(seconds=5))
    assert failed.bracket.state is S.SL_ONLY and failed.bracket.is_protected
    res = fold_attach_failure(failed, snapshot(), at(seconds=5), CFG, PCFG)
    assert res.snapshot == snapshot() and [e.code for e in res.events] == [AuditCode.EXEC_TP_ATTACH_FAILED]
    timed = tick_bracket(b, at(seconds=1) + timedelta(milliseconds=2000), PCFG)
    assert timed.bracket.state is S.SL_ONLY
    assert [(a.kind, a.client_order_id) for a in timed.actions] == [(BracketActionKind.CANCEL, "tp1")]


def test_partial_fill_resizes_the_other_side_and_close_cancels_what_was_sent() -> None:
    b = feed(long_bracket(), T.START, T.SL_ACK, T.TP_ACK)
    part = step_bracket(b, BracketEvent(T.PARTIAL_FILL, kind=ProtectiveKind.TP, remaining_qty=D("0.2")), at(seconds=9))
    assert part.bracket.state is S.ARMED and part.bracket.sl.qty == D("0.2")
    assert [(a.kind, a.order.kind, a.order.qty) for a in part.actions] == [
        (BracketActionKind.RESIZE, ProtectiveKind.SL, D("0.2"))
    ]
    assert step_bracket(b, BracketEvent(T.PARTIAL_FILL), at()).refused is not None
    closed = step_bracket(part.bracket, BracketEvent(T.POSITION_CLOSED), at(seconds=10))
    assert closed.bracket.state is S.CLOSED
    assert sorted(a.order.kind.value for a in closed.actions) == ["SL", "TP"]
    only_sl = step_bracket(feed(long_bracket(), T.START), BracketEvent(T.POSITION_CLOSED), at(seconds=2))
    assert [a.order.kind for a in only_sl.actions] == [ProtectiveKind.SL]  # the TP was never sent


def test_stop_filled_before_its_ack_cancels_nothing_unsent() -> None:
    step = step_bracket(feed(long_bracket(), T.START), BracketEvent(T.SL_FILLED), at(seconds=1))
    assert step.bracket.state is S.CLOSED and step.actions == ()


def test_bad_brackets_and_config_refused() -> None:
    with pytest.raises(ValueError):
        open_bracket("BTC", D(0), D(1), None, "a", None, "g")
    with pytest.raises(ValueError):
        open_bracket("BTC", D(1), D(1), D(2), "a", None, "g")
    with pytest.raises(ValueError):
        open_bracket("BTC", D(-1), D(90), D(110), "a", "b", "g")  # short: the stop must be above
    with pytest.raises(ValidationError):
        ProtectiveConfig(attach_timeout_ms=0)


ALLOWED = sorted(BRACKET_TRANSITIONS, key=lambda k: (k[0].value, k[1].value))
FORBIDDEN = [
    k for k in itertools.product(BracketState, BracketTrigger) if k not in BRACKET_TRANSITIONS and k not in BRACKET_REPEATS
]


def _in_state(state: S) -> Bracket:
    path = {
        S.IDLE: (),
        S.SL_PENDING: (T.START,),
        S.TP_PENDING: (T.START, T.SL_ACK),
        S.ARMED: (T.START, T.SL_ACK, T.TP_ACK),
        S.SL_ONLY: (T.START, T.SL_ACK, T.TP_FAILED),
        S.UNPROTECTED: (T.START, T.SL_FAILED),
        S.CLOSED: (T.START, T.SL_ACK, T.TP_ACK, T.SL_FILLED),
    }[state]
    return feed(long_bracket(), *path)


def _event(t: T) -> BracketEvent:
    if t is T.PARTIAL_FILL:
        return BracketEvent(t, kind=ProtectiveKind.SL, remaining_qty=D("0.1"))
    if t is T.RETRY_SL:
        return BracketEvent(t, client_order_id="sl9")
    return BracketEvent(t)


@pytest.mark.parametrize(("state", "trigger"), ALLOWED, ids=lambda x: x.value)
def test_every_allowed_transition(state: S, trigger: T) -> None:
    step = step_bracket(_in_state(state), _event(trigger), at(seconds=50))
    if trigger is T.SL_ACK and state in (S.SL_PENDING, S.UNPROTECTED):
        assert step.bracket.state is S.TP_PENDING
    else:
        assert step.bracket.state is BRACKET_TRANSITIONS[(state, trigger)]
    assert step.refused is None


@pytest.mark.parametrize(("state", "trigger"), FORBIDDEN[::3], ids=lambda x: x.value)
def test_forbidden_transitions_refused_unchanged(state: S, trigger: T) -> None:
    b = _in_state(state)
    step = step_bracket(b, _event(trigger), at(seconds=50))
    assert step.refused is not None and step.bracket == b and step.actions == ()


@pytest.mark.parametrize(("state", "trigger"), sorted(BRACKET_REPEATS), ids=lambda x: x.value)
def test_repeated_reports_change_nothing_and_are_not_refused(state: S, trigger: T) -> None:
    assert (state, trigger) not in BRACKET_TRANSITIONS
    b = _in_state(state)
    step = step_bracket(b, _event(trigger), at(seconds=50))
    assert step.refused is None and step.bracket == b and step.actions == () and step.events == ()


def test_both_sides_filled_is_refused_for_the_audit() -> None:
    b = feed(long_bracket(), T.START, T.SL_ACK, T.TP_ACK, T.TP_FILLED)
    assert step_bracket(b, BracketEvent(T.SL_FILLED), at(seconds=9)).refused is not None


@settings(max_examples=300)
@given(st.lists(st.sampled_from([t for t in T if t is not T.TP_SKIPPED]), max_size=25), st.integers(0, 5000))
def test_no_take_profit_before_a_confirmed_stop_and_nothing_after_close(triggers: list[T], gap_ms: int) -> None:
    b = long_bracket()
    now = at()
    stop_confirmed = False
    for t in triggers:
        now += timedelta(milliseconds=gap_ms)
        ticked = tick_bracket(b, now, PCFG)
        b = ticked.bracket
        step = step_bracket(b, _event(t), now)
        if step.refused is not None:
            assert step.bracket == b
            continue
        for a in ticked.actions + step.actions:
            if a.kind is BracketActionKind.PLACE:
                assert b.state is not S.CLOSED
                if a.order.kind is ProtectiveKind.TP:
                    assert stop_confirmed or t is T.SL_ACK
                assert a.order.reduce_only
        if step.attach_failed is ProtectiveKind.SL:
            assert b.state is S.SL_PENDING
        if t is T.SL_ACK:
            stop_confirmed = True
        if t is T.RETRY_SL:
            stop_confirmed = False
        b = step.bracket
