"""The executor's own audit of a lost order, read by the gate (issue 10, item 12)."""

from datetime import timedelta

from core.audit import read_events
from core.events import AuditCode
from core.gate import FailReason, GateConfig, VersionSet, evaluate_gate
from shared_schema.models import ResultStatus
from tests.kit.harness import Harness
from tests.kit.stubs import SESSION_TIME
from windows.brokers.protocol import TemporaryBrokerError


def test_an_order_lost_at_the_venue_counts_as_submitted_and_fails_the_error_rate(tmp_path):
    h = Harness(tmp_path)

    def timeout(request):
        raise TemporaryBrokerError("no answer within the deadline")

    h.broker.place_limit_order = timeout
    h.send(signal_id="u1", shares=1000)
    h.turn(2)
    for _ in range(10):  # spaced lookups, then lost
        if h.result("u1").status is ResultStatus.REJECTED:
            break
        h.clock.advance(h.config.executor.unknown_outcome_lookup_s / 3 + 0.1)
        h.turn()
    assert h.result("u1").status is ResultStatus.REJECTED
    h.executor.stop()
    events = list(read_events(h.state / "audit.jsonl"))
    assert AuditCode.ORDER_SUBMITTED not in {e.code for e in events}  # the executor never saw it accepted
    day = SESSION_TIME.replace(hour=0, minute=0, second=0, microsecond=0)
    report = evaluate_gate(events, day, day + timedelta(days=1), VersionSet("c", "s", "g"),
                           GateConfig(min_signals_per_day=0, min_fills_per_day=0))
    assert report.kris["orders_submitted"] == 1
    assert report.kris["exec_error_rate"] == 1
    assert FailReason.FAIL_EXEC_ERROR_RATE in report.fail_reasons
