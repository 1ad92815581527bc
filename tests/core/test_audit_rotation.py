"""Audit log rotation: numbered, dated segments; every reader of a period (the gate, the risk replay) still
reads every segment; a position read resumes across rotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core.audit
from core.audit import (
    AuditWriter,
    log_files,
    log_segments,
    read_events,
    read_log_events,
    read_log_events_after,
    replay_risk_file,
)
from core.events import AuditCode, AuditEvent, Severity
from core.gate_cli import main as gate_main
from core.risk.evaluate import evaluate
from tests.core.stubs import CFG, at, inputs, snapshot


def _ev(hours: float, n: int = 0, code: AuditCode = AuditCode.SIGNAL_ACCEPTED) -> AuditEvent:
    return AuditEvent(ts=at(hours), code=code, severity=Severity.INFO, cause="t", symbol="510300", data={"n": n})


def _write(path: Path, events: list[AuditEvent], max_bytes: int | None) -> None:
    with AuditWriter(path, max_bytes=max_bytes) as w:
        for e in events:
            w.append(e)


EVENTS = [_ev(h * 6, n) for n, h in enumerate(range(40))]


def test_the_active_file_rotates_into_numbered_dated_segments_and_none_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, EVENTS, max_bytes=600)

    segments = log_segments(path)
    assert len(segments) >= 3
    assert [seq for seq, _ in segments] == list(range(1, len(segments) + 1))
    first_day = EVENTS[0].ts.date().isoformat()
    assert segments[0][1].name == f"audit.000001.{first_day}.jsonl"
    assert path.stat().st_size < 600 + 200  # the active file stays near its bound
    assert all(p.stat().st_size < 600 + 200 for _, p in segments)
    assert list(read_log_events(path)) == EVENTS  # every segment, in order
    assert log_files(path)[-1] == path


def test_the_gate_reads_every_segment_of_its_period(tmp_path: Path) -> None:
    one, rotated = tmp_path / "one" / "audit.jsonl", tmp_path / "rot" / "audit.jsonl"
    _write(one, EVENTS, max_bytes=None)
    _write(rotated, EVENTS, max_bytes=600)
    assert len(log_segments(rotated)) >= 3
    period = ["--from", at(12).isoformat(), "--to", at(200).isoformat(), "--stage", "run"]
    reports = []
    for audit in (one, rotated, rotated.parent):  # the file, or the state folder holding it
        out = audit.parent / f"gate-{len(reports)}.json"
        gate_main(["--audit", str(audit), *period, "--out-json", str(out)])
        reports.append(json.loads(out.read_text()))
    assert reports[0]["kris"] == reports[1]["kris"] == reports[2]["kris"]
    signals = sum(1 for e in EVENTS if at(12) <= e.ts < at(200))
    assert reports[1]["kris"]["trading_days"] and signals > 20
    assert float(reports[1]["kris"]["effective_signals_per_day"]) * reports[1]["kris"]["trading_days"] == signals


def test_reading_after_a_position_resumes_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    w = AuditWriter(path, max_bytes=600)
    for e in EVENTS[:10]:
        w.append(e)
    mark = w.position()
    for e in EVENTS[10:]:
        w.append(e)
    w.close()
    assert w.seq > mark[0], "rotations happened after the mark"
    assert list(read_log_events_after(path, mark)) == EVENTS[10:]
    assert list(read_log_events_after(path, w.position())) == []
    with pytest.raises(ValueError):
        list(read_log_events_after(path, (w.seq, 10**9)))  # not in the log
    with pytest.raises(ValueError):
        list(read_log_events_after(path, (w.seq + 1, 0)))


def test_a_new_writer_continues_the_numbering(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, EVENTS[:20], max_bytes=600)
    before = log_segments(path)
    _write(path, EVENTS[20:], max_bytes=600)
    after = log_segments(path)
    assert after[: len(before)] == before and len(after) > len(before)
    assert list(read_log_events(path)) == EVENTS
    assert list(read_events(path)) == list(read_log_events(path))[-len(list(read_events(path))):]


def test_the_risk_replay_reads_every_segment(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    snap = snapshot()
    with AuditWriter(path, max_bytes=300) as w:
        for hours, eq in [(0, "91"), (1, "87"), (7, "87"), (8, "93.5")]:
            r = evaluate(snap, inputs(eq), at(hours), CFG)
            snap = r.snapshot
            w.extend(r.events)
            w.extend([_ev(hours, k) for k in range(5)])
    assert len(log_segments(path)) >= 2
    assert replay_risk_file(path, snapshot()) == snap


def test_a_rotation_that_cannot_rename_keeps_appending_and_rotates_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    w = AuditWriter(path, max_bytes=600)

    def refuse(src: object, dst: object) -> None:
        raise PermissionError("held open by a reader")

    monkeypatch.setattr(core.audit.os, "replace", refuse)
    for e in EVENTS[:20]:
        w.append(e)
    assert log_segments(path) == [] and list(read_events(path)) == EVENTS[:20]
    monkeypatch.undo()
    for e in EVENTS[20:]:
        w.append(e)
    w.close()
    assert log_segments(path) and list(read_log_events(path)) == EVENTS


def test_the_dashboard_and_the_dry_run_gate_read_every_segment(tmp_path: Path) -> None:
    from gridbridge.dryrun import run_gate
    from mac.dashboard.parsing import _audit

    path = tmp_path / "audit.jsonl"
    _write(path, EVENTS, max_bytes=600)
    assert len(log_segments(path)) >= 3
    assert len(_audit(path)) == len(EVENTS)  # not only the newest segment
    config = tmp_path / "config.json"
    config.write_text("{}")
    run_gate(tmp_path, tmp_path, config)
    gate = json.loads((tmp_path / "gate.json").read_text())
    kris = gate["kris"]
    # 40 accepted signals over 8 trading days: the newest segment alone holds only a few of them
    assert kris["effective_signals_per_day"] * kris["trading_days"] == len(EVENTS)
