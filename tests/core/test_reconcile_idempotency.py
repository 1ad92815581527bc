from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.oms.idempotency import IdSequence, next_client_order_id
from core.oms.reconcile import ReconcileSeverity, ReconcileTolerances, reconcile, reconcile_events
from tests.core.stubs import at

D = Decimal
NONE, MINOR, SEVERE = ReconcileSeverity.NONE, ReconcileSeverity.MINOR, ReconcileSeverity.SEVERE


@pytest.mark.parametrize(
    ("local", "broker", "lc", "bc", "expected"),
    [
        ({"A": D(100)}, {"A": D(100)}, D(1000), D("1000.5"), NONE),
        ({"A": D(100)}, {"A": D(96)}, None, None, MINOR),
        ({"A": D(100)}, {"A": D(94)}, None, None, SEVERE),
        ({"A": D(100)}, {}, None, None, SEVERE),
        ({}, {"B": D(1)}, None, None, SEVERE),
        ({"A": D(1)}, {"A": D(-1)}, None, None, SEVERE),
        ({}, {}, D(1000), D(1050), MINOR),
        ({}, {}, D(1000), D(1200), SEVERE),
    ],
)
def test_reconcile_severity(local, broker, lc, bc, expected) -> None:
    assert reconcile(local, broker, lc, bc).severity is expected


def test_tolerances_are_configurable_and_events_use_the_audit_code() -> None:
    tol = ReconcileTolerances(qty_abs=D(10))
    assert reconcile({"A": D(100)}, {"A": D(91)}, None, None, tol).severity is NONE
    result = reconcile({"A": D(100)}, {"A": D(50)}, None, None)
    (event,) = reconcile_events(result, at())
    assert (
        event.code.value == "OMS_RECONCILE_MISMATCH" and event.symbol == "A" and event.data["diff"] == "-50"
    )


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=200))
def test_client_order_ids_never_repeat_and_fit(times: list[int]) -> None:
    seq = IdSequence("gbWin01")
    seen = set()
    for ms in times:  # arbitrary order: the clock may jump backwards
        seq, coid = next_client_order_id(seq, ms)
        assert coid not in seen and len(coid) <= 24 and coid.isascii() and coid.isalnum()
        seen.add(coid)


def test_client_order_id_is_deterministic() -> None:
    a = next_client_order_id(IdSequence("gb", counter=5), 1_700_000_000_000)
    b = next_client_order_id(IdSequence("gb", counter=5), 1_700_000_000_000)
    assert a == b


def test_bad_prefix_refused() -> None:
    with pytest.raises(ValueError):
        IdSequence("has space")
