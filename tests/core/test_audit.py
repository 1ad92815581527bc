from __future__ import annotations

from pathlib import Path

from core.audit import AuditWriter, ReadStats, read_events, replay_risk_file
from core.control.commands import ControlAction, new_command
from core.control.killswitch import KillSwitchState, handle_command
from core.events import AuditCode, AuditEvent, Severity
from core.risk.evaluate import evaluate
from tests.core.stubs import CFG, at, inputs, snapshot


def _ev(hours: float, code: AuditCode = AuditCode.SIGNAL_ACCEPTED) -> AuditEvent:
    return AuditEvent(
        ts=at(hours), code=code, severity=Severity.INFO, cause="t", symbol="510300", data={"n": 1}
    )


def test_round_trip_and_period_filter(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditWriter(path) as w:
        w.extend([_ev(0), _ev(1), _ev(2)])
    events = list(read_events(path, at(1), at(2)))
    assert events == [_ev(1)]


def test_reader_tolerates_torn_tail_and_skips_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditWriter(path) as w:
        w.append(_ev(0))
    with open(path, "ab") as f:
        f.write(b"not json\n")
        f.write(b'{"ts": "2026-03-02T09:30:00+00:00", "code": "ORDER_FI')
    stats = ReadStats()
    assert list(read_events(path, stats=stats)) == [_ev(0)]
    assert stats.torn_tail and stats.malformed == 1
    # A new writer starts on a fresh line, so the next record survives the torn one.
    with AuditWriter(path) as w:
        w.append(_ev(1))
    assert list(read_events(path)) == [_ev(0), _ev(1)]


def test_audit_file_replays_into_the_same_risk_state(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    snap = snapshot()
    ks = KillSwitchState()
    with AuditWriter(path) as w:
        for hours, eq in [(0, "91"), (1, "87"), (7, "87"), (8, "93.5")]:
            r = evaluate(snap, inputs(eq), at(hours), CFG)
            snap = r.snapshot
            w.extend(r.events)
        out = handle_command(ks, snap, new_command(ControlAction.FORCE_HALT, "ops", at(9)), at(9), CFG)
        snap = out.risk
        w.extend(out.events)
    replayed = replay_risk_file(path, snapshot())
    assert replayed == snap and replayed.halted
