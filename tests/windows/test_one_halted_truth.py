"""One ``halted`` truth: the executor state's, built from the journal's ``halt`` records. The risk snapshot
(``RiskSnapshot.halted``, which the risk checks read) and the kill switch (``KillSwitchState.halted``) follow
it, live and across a restart, whichever of the two logs a crash left behind."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.control.commands import ControlAction, new_command, sign_command
from core.control.file_door import read_ack, write_command_file
from shared_schema.models import Reason
from tests.kit.harness import Harness

SECRET = "s3cret-for-tests"


@pytest.fixture
def h(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    harness = Harness(tmp_path)
    harness.turn()
    yield harness
    harness.executor.stop()


def halted_flags(h: Harness) -> tuple[bool, bool, bool, bool]:
    ex = h.executor
    return ex.state.halted, ex.risk.snapshot.halted, ex.risk.kill.halted, h.pool().halted


def command(h: Harness, action: ControlAction) -> None:
    cmd = new_command(action, "test", h.executor.wall_clock.now())
    write_command_file(h.shared, sign_command(cmd, SECRET.encode()))
    h.turn()
    assert read_ack(h.shared, cmd.command_id)["accepted"] is True


def test_stop_new_orders_then_resume_agree_everywhere_across_restarts(h):
    assert halted_flags(h) == (False, False, False, False)
    command(h, ControlAction.FORCE_HALT)  # STOP_NEW_ORDERS (+ cancel open ones)
    assert halted_flags(h) == (True, True, True, True)
    h.restart()
    h.turn()
    assert halted_flags(h) == (True, True, True, True)
    h.send(signal_id="while-halted", shares=1000)
    h.turn()
    assert h.result("while-halted").reason is Reason.HALTED
    command(h, ControlAction.RESUME)  # RESUME_ORDERS
    assert halted_flags(h) == (False, False, False, False)
    h.restart()
    h.turn()
    assert halted_flags(h) == (False, False, False, False)


def test_a_halt_record_written_directly_is_followed_by_the_risk_snapshot_and_the_kill_switch(h):
    h.executor._commit({"k": "halt", "on": True, "why": "FORCE_HALT", "t": h.clock.now().isoformat()})
    h.turn()
    assert halted_flags(h) == (True, True, True, True)
    h.executor._commit({"k": "halt", "on": False, "why": "RESUME", "t": h.clock.now().isoformat()})
    h.turn()
    assert halted_flags(h) == (False, False, False, False)


def test_after_a_crash_that_kept_only_the_audit_the_journal_decides(h):
    command(h, ControlAction.FORCE_HALT)
    command(h, ControlAction.RESUME)
    # As if the audit had kept a halt that the journal lost: the risk state file says halted.
    risk = h.executor.risk
    risk.snapshot = replace(risk.snapshot, halted=True)
    risk.save_state()
    h.restart()
    h.turn()
    assert halted_flags(h) == (False, False, False, False)
