"""Restart after audit rotation: the risk shell reads ``risk_state.json`` and only the audit after it, and the
risk state (COOLDOWN with its latched exposure, peak equity, frozen symbols) comes back identical; a kill
between an audit write and the state file, or mid-rotation, still rebuilds the same state."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import core.audit
from core.audit import log_segments, replay_risk_file
from core.risk import RiskState
from shared_schema.models import ResultStatus
from tests.kit.harness import Harness
from tests.kit.stubs import SESSION_TIME
from windows.risk_shell import AUDIT_FILE, RISK_STATE_FILE, ExecutorRisk, RiskSettings


def cooled_down(tmp_path: Path, segment_bytes: int = 4096, state_every: int = 2048) -> Harness:
    """An executor in COOLDOWN (exposure latched), 512890 frozen, with an audit log rotated many times."""
    h = Harness(tmp_path)
    h.executor.risk.audit.max_bytes = segment_bytes
    h.executor.risk.settings.risk_state_every_bytes = state_every
    h.turn()
    h.send(signal_id="big", code="159201.SZ", price="1.300", shares=120_000, layer_index=2)
    h.turn()
    assert h.result("big").status is ResultStatus.FILLED
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1), **{"159201_SZ": 0.95})  # 14 % drawdown
    h.turn()
    risk = h.executor.risk
    for _ in range(30):
        risk.record_outcome("512890.SH", h.executor.now(), True, None)
        if "512890.SH" in risk.snapshot.frozen_symbols:
            break
    for minute in range(2, 40):  # an equity snapshot a minute: the log rotates
        h.publish_quotes(when=SESSION_TIME + timedelta(minutes=minute))
        h.turn()
    snap = risk.snapshot
    assert snap.state is RiskState.COOLDOWN and snap.cooldown_exposure and snap.cooldown_exposure > 0
    assert snap.peak_equity > 0 and "512890.SH" in snap.frozen_symbols
    assert len(log_segments(h.state / AUDIT_FILE)) >= 3, "the audit log rotated"
    return h


def fresh_risk(h: Harness) -> ExecutorRisk:
    return ExecutorRisk(h.shared, h.state, RiskSettings())


def test_restart_after_rotation_brings_the_risk_state_back_identical_from_the_tail_only(tmp_path, monkeypatch):
    h = cooled_down(tmp_path)
    h.executor.stop()
    before = h.executor.risk.snapshot
    assert (h.state / RISK_STATE_FILE).exists()

    opened: list[str] = []
    real = core.audit._read_from

    def spy(file, offset, *rest):
        opened.append(file.name)
        return real(file, offset, *rest)

    monkeypatch.setattr(core.audit, "_read_from", spy)
    again = fresh_risk(h)
    again.load()

    assert again.loaded_from == "snapshot+tail"
    assert again.snapshot == before
    assert again.snapshot.state is RiskState.COOLDOWN
    assert again.snapshot.cooldown_exposure == before.cooldown_exposure
    assert again.snapshot.frozen_symbols == frozenset({"512890.SH"})
    assert not set(opened) & {p.name for _, p in log_segments(h.state / AUDIT_FILE)}, \
        "no rotated segment is read again on start"
    # The whole log, every segment of it, describes the same state.
    monkeypatch.setattr(core.audit, "_read_from", real)
    assert replay_risk_file(h.state / AUDIT_FILE) == before
    again.audit.close()


def test_the_whole_executor_restarts_in_cooldown_after_rotation(tmp_path):
    h = cooled_down(tmp_path)
    before = h.executor.risk.snapshot
    h.restart()
    after = h.executor.risk.snapshot
    assert h.executor.risk.loaded_from == "snapshot+tail"
    assert after.state is RiskState.COOLDOWN
    assert (after.cooldown_exposure, after.frozen_symbols, after.since, after.cooldown_until) == \
        (before.cooldown_exposure, before.frozen_symbols, before.since, before.cooldown_until)
    assert after.peak_equity == before.peak_equity
    h.send(signal_id="buy", shares=100, created_at=h.executor.now().isoformat())
    h.turn()
    assert h.result("buy").status is ResultStatus.REJECTED
    h.executor.stop()


@pytest.mark.parametrize("stale_after", ["first_save", "never_saved"])
def test_a_kill_before_the_state_file_catches_up_loses_no_audit(tmp_path, monkeypatch, stale_after):
    """kill -9 between an audit write (or a rotation) and the state file: the file is older than the log;
    the events after its position, across every rotation since, are replayed on top of it."""
    h = Harness(tmp_path)
    if stale_after == "never_saved":
        (h.state / RISK_STATE_FILE).unlink()
    monkeypatch.setattr(ExecutorRisk, "save_state", lambda self: None)  # the state file never catches up
    h.executor.risk.audit.max_bytes = 4096
    h.turn()
    h.send(signal_id="big", code="159201.SZ", price="1.300", shares=120_000, layer_index=2)
    h.turn()
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1), **{"159201_SZ": 0.95})
    h.turn()
    for minute in range(2, 30):
        h.publish_quotes(when=SESSION_TIME + timedelta(minutes=minute))
        h.turn()
    live = h.executor.risk.snapshot
    h.executor.risk.flush()  # what was durable at the kill (no close, no final snapshot event)
    assert len(log_segments(h.state / AUDIT_FILE)) >= 2
    monkeypatch.undo()

    again = fresh_risk(h)
    again.load()

    assert again.loaded_from == ("snapshot+tail" if stale_after == "first_save" else "full replay")
    assert again.snapshot == replay_risk_file(h.state / AUDIT_FILE)
    assert again.snapshot.state is live.state is RiskState.COOLDOWN
    assert again.snapshot.cooldown_exposure == live.cooldown_exposure
    assert again.snapshot.peak_equity == live.peak_equity > Decimal(0)
    again.audit.close()
