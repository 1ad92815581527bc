from __future__ import annotations

import json
import queue
from datetime import timedelta
from pathlib import Path

import pytest

from core.control.commands import (
    ControlAction,
    ControlReason,
    InMemoryNonceStore,
    SignedCommand,
    new_command,
    secret_from_env,
    sign_command,
    verify_command,
)
from core.control.file_door import pending_command_files, process_control_folder, read_ack, write_command_file
from core.control.killswitch import KillAction, KillSwitchState, handle_command
from core.events import AuditCode
from core.risk.checks import RiskReason, check_order
from core.risk.evaluate import evaluate
from core.risk.state import RiskState
from tests.core.stubs import CFG, at, intent, snapshot

SECRET = b"s3cret-for-tests"


def _signed(**kw) -> SignedCommand:
    cmd = new_command(kw.pop("action", ControlAction.FORCE_HALT), "ops", kw.pop("now", at()), **kw)
    return sign_command(cmd, SECRET)


def test_good_command_verifies_once() -> None:
    nonces = InMemoryNonceStore()
    raw = _signed().model_dump_json()
    assert verify_command(raw, SECRET, nonces, at()).ok
    assert verify_command(raw, SECRET, nonces, at()).reason is ControlReason.CONTROL_REPLAYED_NONCE


@pytest.mark.parametrize(
    ("mutate", "now", "expected"),
    [
        (lambda d: d.update(signature=None), at(), ControlReason.CONTROL_UNSIGNED),
        (lambda d: d.pop("signature"), at(), ControlReason.CONTROL_UNSIGNED),
        (lambda d: d.update(signature="0" * 64), at(), ControlReason.CONTROL_BAD_SIGNATURE),
        (lambda d: d["body"].update(action="RESET_FUSE"), at(), ControlReason.CONTROL_BAD_SIGNATURE),
        (lambda d: None, at(hours=1), ControlReason.CONTROL_EXPIRED),
        (lambda d: None, at(seconds=-31), ControlReason.CONTROL_FROM_FUTURE),
        (lambda d: d.update(extra=1), at(), ControlReason.CONTROL_MALFORMED),
    ],
    ids=[
        "unsigned-null",
        "unsigned-missing",
        "bad-signature",
        "tampered-body",
        "expired",
        "future",
        "malformed",
    ],
)
def test_signed_command_refusals(mutate, now, expected) -> None:
    data = json.loads(_signed().model_dump_json())
    mutate(data)
    nonces = InMemoryNonceStore()
    result = verify_command(json.dumps(data), SECRET, nonces, now)
    assert result.reason is expected
    assert nonces.items == {}  # a refused command never burns its nonce


def test_no_secret_refuses_everything() -> None:
    assert verify_command(_signed().model_dump_json(), None, InMemoryNonceStore(), at()).reason is (
        ControlReason.CONTROL_NO_SECRET
    )
    assert secret_from_env({}) is None and secret_from_env({"GRIDBRIDGE_CONTROL_SECRET": "x"}) == b"x"


def test_force_halt_stops_orders_and_cancels_then_resume() -> None:
    cmd = new_command(ControlAction.FORCE_HALT, "ops", at())
    out = handle_command(KillSwitchState(), snapshot(), cmd, at(), CFG)
    assert out.state.halted and KillAction.CANCEL_OPEN_ORDERS in out.actions
    assert check_order(out.risk, intent(opens=False), CFG) is RiskReason.RISK_HALTED
    assert out.events[-1].code is AuditCode.KILL_SWITCH_FORCE_HALT
    dup = handle_command(out.state, out.risk, cmd, at(), CFG)
    assert dup.refused == "CONTROL_DUPLICATE"
    resumed = handle_command(out.state, out.risk, new_command(ControlAction.RESUME, "ops", at()), at(), CFG)
    assert not resumed.state.halted and check_order(resumed.risk, intent(), CFG) is None


def test_force_reduce_then_resume_steps_down() -> None:
    out = handle_command(
        KillSwitchState(), snapshot(), new_command(ControlAction.FORCE_REDUCE, "ops", at()), at(), CFG
    )
    assert out.risk.state is RiskState.REDUCE_ONLY and out.risk.forced_reduction
    res = handle_command(out.state, out.risk, new_command(ControlAction.RESUME, "ops", at()), at(), CFG)
    assert res.risk.state is RiskState.DEGRADED


def test_reset_fuse_refused_inside_cooldown_and_unlock_symbol() -> None:
    fused = evaluate(
        snapshot(), __import__("tests.core.stubs", fromlist=["inputs"]).inputs("79"), at(), CFG
    ).snapshot
    early = handle_command(
        KillSwitchState(), fused, new_command(ControlAction.RESET_FUSE, "ops", at(1)), at(1), CFG
    )
    assert early.refused == "RISK_FUSE_COOLDOWN_ACTIVE" and early.events[0].code is AuditCode.CONTROL_REJECTED
    late = handle_command(
        KillSwitchState(), fused, new_command(ControlAction.RESET_FUSE, "ops", at(25)), at(25), CFG
    )
    assert late.accepted and late.risk.state is RiskState.DEGRADED
    locked = snapshot(dust_locked=frozenset({"SOLUSDT"}), frozen_symbols=frozenset({"SOLUSDT"}))
    cmd = new_command(ControlAction.FORCE_UNLOCK_SYMBOL, "ops", at(), symbol="SOLUSDT")
    out = handle_command(KillSwitchState(), locked, cmd, at(), CFG)
    assert not out.risk.dust_locked and not out.risk.frozen_symbols


def test_file_door_applies_acks_and_deletes(tmp_path: Path) -> None:
    good = _signed()
    write_command_file(tmp_path, good)
    forged = _signed(action=ControlAction.RESET_FUSE)
    bad = SignedCommand(body=forged.body, signature="f" * 64)
    write_command_file(tmp_path, bad)
    (tmp_path / "control" / ".tmp-half.json").write_text("{")
    applied = []
    result = process_control_folder(
        tmp_path, SECRET, InMemoryNonceStore(), at(), lambda c: applied.append(c) or None
    )
    assert [c.command_id for c in applied] == [good.body.command_id]
    assert read_ack(tmp_path, good.body.command_id)["accepted"] is True
    assert read_ack(tmp_path, forged.body.command_id)["reason"] == "CONTROL_BAD_SIGNATURE"
    assert {e.code for e in result.events} == {AuditCode.CONTROL_ACCEPTED, AuditCode.CONTROL_REJECTED}
    assert pending_command_files(tmp_path) == []


def test_sigusr1_queues_force_halt() -> None:
    import os
    import signal

    from core.control.signal_door import install_sigusr1_halt

    if not hasattr(signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1 here")
    q: queue.SimpleQueue = queue.SimpleQueue()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        assert install_sigusr1_halt(q, lambda: at())
        os.kill(os.getpid(), signal.SIGUSR1)
        item = q.get(timeout=2)
        assert item.command.action is ControlAction.FORCE_HALT and item.source == "signal"
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_command_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        new_command(ControlAction.FORCE_HALT, "ops", at(), ttl=timedelta(0))
