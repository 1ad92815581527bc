from __future__ import annotations

from datetime import timedelta

import pytest

from core.events import AuditCode
from core.risk.evaluate import evaluate
from core.risk.replay import replay
from core.risk.state import RiskState, RiskTrigger
from core.rollback import RollbackImpossible, VersionRecord, plan_rollback
from tests.core.stubs import CFG, at, inputs, snapshot

V1, V2, V3 = (VersionRecord(f"cfg{i}", f"strat{i}", f"g{i}") for i in (1, 2, 3))


def test_rollback_goes_to_previous_and_degrades_for_the_window() -> None:
    plan = plan_rollback([V1, V2, V3], snapshot(), at(), CFG, "reject spike after deploy", drill=True)
    assert plan.to_version == V2 and plan.history == (V1, V2)
    assert plan.snapshot.state is RiskState.DEGRADED
    rec = plan.events[-1]
    assert rec.code is AuditCode.ROLLBACK and rec.cause == "reject spike after deploy" and rec.data["drill"]
    # Healthy drawdown does not end the observation early ...
    snap = evaluate(plan.snapshot, inputs(), at(12), CFG).snapshot
    assert snap.state is RiskState.DEGRADED
    # ... but the end of the window does.
    snap = evaluate(snap, inputs(), at(24), CFG).snapshot
    assert snap.state is RiskState.NORMAL
    assert replay(plan.events, snapshot()) == plan.snapshot


def test_rollback_can_force_cooldown() -> None:
    plan = plan_rollback(
        [V1, V2], snapshot(), at(), CFG, "drill", timedelta(hours=2), RiskTrigger.FORCED_COOLDOWN
    )
    assert plan.snapshot.state is RiskState.COOLDOWN and plan.snapshot.cooldown_until == at(2)


def test_no_previous_version() -> None:
    with pytest.raises(RollbackImpossible):
        plan_rollback([V1], snapshot(), at(), CFG, "x")
