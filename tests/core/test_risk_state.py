from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from core.risk.evaluate import evaluate
from core.risk.replay import equity_snapshot_event, replay
from core.risk.state import TRANSITIONS, IllegalRiskTransition, RiskState, RiskTrigger, apply_trigger
from tests.core.stubs import CFG, at, inputs, snapshot

ALLOWED = sorted(TRANSITIONS.items(), key=lambda kv: (kv[0][0].value, kv[0][1].value))
FORBIDDEN = [(s, t) for s, t in itertools.product(RiskState, RiskTrigger) if (s, t) not in TRANSITIONS]


@pytest.mark.parametrize(("key", "target"), ALLOWED, ids=[f"{s.value}-{t.value}" for (s, t), _ in ALLOWED])
def test_every_table_entry_applies(key: tuple[RiskState, RiskTrigger], target: RiskState) -> None:
    assert apply_trigger(*key) is target


@pytest.mark.parametrize(
    ("state", "trigger"), FORBIDDEN[::3], ids=[f"{s.value}-{t.value}" for s, t in FORBIDDEN[::3]]
)
def test_forbidden_transition_refused(state: RiskState, trigger: RiskTrigger) -> None:
    with pytest.raises(IllegalRiskTransition):
        apply_trigger(state, trigger)


@pytest.mark.parametrize("trigger", [t for t in RiskTrigger if t is not RiskTrigger.MANUAL_RESET_FUSE])
def test_fuse_is_left_only_by_manual_reset(trigger: RiskTrigger) -> None:
    assert (RiskState.FUSE, trigger) not in TRANSITIONS or TRANSITIONS[
        (RiskState.FUSE, trigger)
    ] is RiskState.FUSE


@pytest.mark.parametrize(
    ("equity", "expected"),
    [
        ("92.01", RiskState.NORMAL),  # 7.99 %
        ("92", RiskState.DEGRADED),  # exactly 8 %
        ("88.01", RiskState.DEGRADED),
        ("88", RiskState.COOLDOWN),  # exactly 12 %
        ("80.01", RiskState.COOLDOWN),
        ("80", RiskState.FUSE),  # exactly 20 %
    ],
)
def test_drawdown_thresholds_at_the_boundaries(equity: str, expected: RiskState) -> None:
    result = evaluate(snapshot(), inputs(equity), at(), CFG)
    assert result.snapshot.state is expected


def test_every_transition_is_an_audited_event_with_cause() -> None:
    result = evaluate(snapshot(), inputs("88"), at(), CFG)
    (event,) = [e for e in result.events if e.code.value == "RISK_STATE_CHANGE"]
    assert event.data["from"] == "NORMAL" and event.data["to"] == "COOLDOWN"
    assert event.data["trigger"] == "DRAWDOWN_COOLDOWN" and "12" in event.cause
    assert event.data["snapshot"]["state"] == "COOLDOWN"


def test_cooldown_steps_down_only_after_its_time_and_below_its_line() -> None:
    snap = evaluate(snapshot(), inputs("87"), at(), CFG).snapshot
    assert snap.cooldown_until == at(hours=6)
    snap = evaluate(snap, inputs("89"), at(hours=5.9), CFG).snapshot  # 11 %: under the line, time not up
    assert snap.state is RiskState.COOLDOWN
    snap = evaluate(snap, inputs("87"), at(hours=6), CFG).snapshot  # time up, 13 %: still past the line
    assert snap.state is RiskState.COOLDOWN
    snap = evaluate(snap, inputs("89"), at(hours=7), CFG).snapshot  # both: steps down
    assert snap.state is RiskState.DEGRADED
    snap = evaluate(snap, inputs("87"), at(hours=8), CFG).snapshot  # past the line again: a new cooldown
    assert snap.state is RiskState.COOLDOWN and snap.cooldown_until == at(hours=14)


def test_six_hours_at_fifteen_percent_keeps_cooldown_and_refuses_buys() -> None:
    from core.risk.checks import RiskReason, check_order
    from tests.core.stubs import intent

    snap = evaluate(snapshot(), inputs("85"), at(), CFG).snapshot
    for hours in (6, 6.5, 12, 30):
        snap = evaluate(snap, inputs("85"), at(hours=hours), CFG).snapshot
        assert snap.state is RiskState.COOLDOWN
        assert check_order(snap, intent(), CFG) is RiskReason.RISK_COOLDOWN


def test_data_not_ok_enters_reduce_only_at_once_audited_and_clears_by_itself() -> None:
    result = evaluate(snapshot(), inputs(data_ok=False), at(), CFG)
    assert result.snapshot.state is RiskState.REDUCE_ONLY
    (event,) = [e for e in result.events if e.code.value == "RISK_STATE_CHANGE"]
    assert event.data["trigger"] == "DATA_NOT_OK" and event.data["to"] == "REDUCE_ONLY"
    assert "DATA_NOT_OK" in result.snapshot.reduce_only_causes
    back = evaluate(result.snapshot, inputs(), at(seconds=30), CFG)
    triggers = [e.data["trigger"] for e in back.events if "trigger" in e.data]
    assert triggers == ["REDUCE_ONLY_CLEARED", "DRAWDOWN_RECOVERED"]
    assert back.snapshot.state is RiskState.NORMAL


def test_data_not_ok_during_cooldown_keeps_the_cooldown_running() -> None:
    snap = evaluate(snapshot(), inputs("87"), at(), CFG).snapshot
    snap = evaluate(snap, inputs("87", data_ok=False), at(1), CFG).snapshot
    assert snap.state is RiskState.REDUCE_ONLY
    snap = evaluate(snap, inputs("87"), at(2), CFG).snapshot
    assert snap.state is RiskState.COOLDOWN and snap.cooldown_until == at(6)


def test_cooldown_latches_the_exposure_it_began_with() -> None:
    from core.risk.snapshot import cooldown_exposure_target

    snap = evaluate(snapshot(), inputs("95", exposure=Decimal(60)), at(), CFG).snapshot
    assert snap.cooldown_exposure is None and cooldown_exposure_target(snap, CFG) is None
    snap = evaluate(snap, inputs("87", exposure=Decimal(50)), at(1), CFG).snapshot
    assert snap.state is RiskState.COOLDOWN and snap.cooldown_exposure == Decimal(50)
    snap = evaluate(snap, inputs("87", exposure=Decimal(30)), at(2), CFG).snapshot  # sells do not move it
    assert snap.cooldown_exposure == Decimal(50)
    assert cooldown_exposure_target(snap, CFG) == Decimal(25)  # default: down to 50 %
    snap = evaluate(snap, inputs("89", exposure=Decimal(25)), at(7), CFG).snapshot
    assert snap.state is RiskState.DEGRADED and snap.cooldown_exposure is None


def test_a_cooldown_forced_without_exposure_latches_it_on_the_next_evaluation() -> None:
    from core.risk.manual import force_observation
    from core.risk.state import RiskTrigger as T

    forced = force_observation(snapshot(), T.FORCED_COOLDOWN, at(2), at(), CFG, "drill").snapshot
    assert forced.state is RiskState.COOLDOWN and forced.cooldown_exposure is None
    snap = evaluate(forced, inputs(exposure=Decimal(40)), at(0.5), CFG).snapshot
    assert snap.cooldown_exposure == Decimal(40)


def test_degraded_recovers_only_below_hysteresis() -> None:
    snap = evaluate(snapshot(), inputs("91"), at(), CFG).snapshot
    assert snap.state is RiskState.DEGRADED
    snap = evaluate(snap, inputs("92.5"), at(1), CFG).snapshot  # 7.5 %: inside the hysteresis band
    assert snap.state is RiskState.DEGRADED
    snap = evaluate(snap, inputs("93.5"), at(2), CFG).snapshot  # 6.5 %
    assert snap.state is RiskState.NORMAL


def test_fuse_needs_manual_reset_after_24h_then_recovers_in_stages() -> None:
    from core.risk.manual import reset_fuse

    snap = evaluate(snapshot(), inputs("79"), at(), CFG).snapshot
    assert snap.state is RiskState.FUSE and snap.risk_budget(CFG) == 0
    snap = evaluate(snap, inputs("100"), at(48), CFG).snapshot
    assert snap.state is RiskState.FUSE  # never auto-expires
    assert reset_fuse(snap, at(23), CFG, "ops").refused == "RISK_FUSE_COOLDOWN_ACTIVE"
    reset = reset_fuse(snap, at(48), CFG, "ops")
    assert reset.refused is None and reset.snapshot.state is RiskState.DEGRADED
    snap = evaluate(reset.snapshot, inputs("79", peak="100"), at(48), CFG).snapshot
    assert snap.peak_equity == Decimal(79) and snap.risk_budget(CFG) == Decimal("0.25")
    snap = evaluate(snap, inputs("79"), at(72), CFG).snapshot
    assert snap.risk_budget(CFG) == Decimal("0.5") and snap.state is RiskState.DEGRADED
    snap = evaluate(snap, inputs("79"), at(96), CFG).snapshot
    assert snap.state is RiskState.NORMAL and snap.risk_budget(CFG) == 1


def test_trade_not_ok_makes_reduce_only_and_clears_back_through_degraded() -> None:
    snap = evaluate(snapshot(), inputs(trade_ok=False), at(), CFG).snapshot
    assert snap.state is RiskState.REDUCE_ONLY
    result = evaluate(snap, inputs(trade_ok=True), at(1), CFG)
    triggers = [e.data["trigger"] for e in result.events if "trigger" in e.data]
    assert triggers == ["REDUCE_ONLY_CLEARED", "DRAWDOWN_RECOVERED"]
    assert result.snapshot.state is RiskState.NORMAL


def test_reduce_only_keeps_unexpired_cooldown_end() -> None:
    snap = evaluate(snapshot(), inputs("87"), at(), CFG).snapshot
    snap = evaluate(snap, inputs("87", trade_ok=False), at(1), CFG).snapshot
    assert snap.state is RiskState.REDUCE_ONLY
    snap = evaluate(snap, inputs("87"), at(2), CFG).snapshot
    assert snap.state is RiskState.COOLDOWN and snap.cooldown_until == at(6)


def test_reconcile_minor_degrades_severe_symbol_freezes_severe_cash_reduce_only() -> None:
    from core.oms.reconcile import reconcile

    minor = reconcile({"A": Decimal(100)}, {"A": Decimal(99)}, None, None)
    snap = evaluate(snapshot(), inputs(reconcile=minor), at(), CFG).snapshot
    assert snap.state is RiskState.DEGRADED
    severe_sym = reconcile({"A": Decimal(100)}, {"A": Decimal(10)}, None, None)
    snap2 = evaluate(snapshot(), inputs(reconcile=severe_sym), at(), CFG).snapshot
    assert snap2.state is RiskState.NORMAL and snap2.frozen_symbols == {"A"}
    severe_cash = reconcile({}, {}, Decimal(1000), Decimal(0))
    snap3 = evaluate(snapshot(), inputs(reconcile=severe_cash), at(), CFG).snapshot
    assert snap3.state is RiskState.REDUCE_ONLY
    # A severe cash mismatch stays latched until a manual Resume, even with trade_ok.
    snap3 = evaluate(snap3, inputs(), at(1), CFG).snapshot
    assert snap3.state is RiskState.REDUCE_ONLY


def test_liq_distance_low_forces_reduction_until_target() -> None:
    from tests.core.stubs import position

    near = [position(mark="100", liq="93")]  # 7 %
    snap = evaluate(snapshot(), inputs(positions=near), at(), CFG).snapshot
    assert snap.liq_blocked and snap.forced_reduction
    mid = [position(mark="100", liq="91")]  # 9 %: above force line, below target
    snap = evaluate(snap, inputs(positions=mid), at(1), CFG).snapshot
    assert snap.liq_blocked
    ok = [position(mark="100", liq="90")]
    snap = evaluate(snap, inputs(positions=ok), at(2), CFG).snapshot
    assert not snap.liq_blocked


def test_replay_of_events_rebuilds_the_same_snapshot() -> None:
    from core.risk.manual import reset_fuse

    snap, events = snapshot(), []
    for hours, eq, ok in [
        (0, "95", True),
        (1, "91", True),
        (2, "87", False),
        (3, "87", True),
        (9, "87", True),
        (10, "79", True),
    ]:
        r = evaluate(snap, inputs(eq, trade_ok=ok), at(hours), CFG)
        snap, events = r.snapshot, events + list(r.events)
    m = reset_fuse(snap, at(40), CFG, "ops")
    snap, events = m.snapshot, events + list(m.events)
    assert replay(events, snapshot()) == snap


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=70, max_value=110), st.booleans(), st.integers(min_value=0, max_value=8)
        ),
        min_size=1,
        max_size=30,
    )
)
def test_random_ticks_replay_exactly_and_fuse_is_sticky(ticks: list[tuple[int, bool, int]]) -> None:
    snap, events, hours = snapshot(), [], 0.0
    fused = False
    for equity, trade_ok, step in ticks:
        hours += step
        r = evaluate(snap, inputs(equity, trade_ok=trade_ok), at(hours), CFG)
        snap, events = r.snapshot, [*events, *r.events, equity_snapshot_event(r.snapshot, at(hours))]
        fused = fused or snap.state is RiskState.FUSE
        assert not fused or snap.state is RiskState.FUSE  # only a manual reset leaves FUSE
        if not trade_ok and snap.state is not RiskState.FUSE:
            assert snap.state is RiskState.REDUCE_ONLY
    assert replay(events, snapshot()) == snap
