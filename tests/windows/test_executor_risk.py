"""The risk kernel wired into the executor: refusals per state, drawdown, kill switch doors, audit, rollback."""

from __future__ import annotations

import json
import queue
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from core.audit import read_events
from core.control.commands import ControlAction, new_command, sign_command
from core.control.file_door import read_ack, write_command_file
from core.control.http_door import ControlHttpServer
from core.events import AuditCode
from core.risk import RiskState
from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness
from tests.kit.stubs import SESSION_TIME

SECRET = "s3cret-for-tests"


@pytest.fixture
def h(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    harness = Harness(tmp_path)
    harness.turn()
    yield harness
    harness.executor.stop()


def audit_codes(h: Harness) -> list[str]:
    return [e.code.value for e in read_events(h.state / "audit.jsonl")]


def force_state(h: Harness, state: RiskState) -> None:
    risk = h.executor.risk
    risk.snapshot = replace(risk.snapshot, state=state)


@pytest.mark.parametrize(
    "state, buy_refused, sell_refused",
    [
        (RiskState.NORMAL, None, None),
        (RiskState.DEGRADED, None, None),
        (RiskState.COOLDOWN, "RISK_COOLDOWN", None),
        (RiskState.REDUCE_ONLY, "RISK_REDUCE_ONLY", None),
        (RiskState.FUSE, "RISK_FUSE", None),
    ],
)
def test_each_risk_state_refuses_what_it_forbids(h, state, buy_refused, sell_refused):
    force_state(h, state)
    h.send(signal_id="b", shares=1000)
    h.send(signal_id="s", direction="SELL", price="1.099", shares=1000)
    h.turn()
    buy, sell = h.result("b"), h.result("s")
    if buy_refused:
        assert (buy.status, buy.reason, buy.detail) == (ResultStatus.REJECTED, Reason.RISK_STATE, buy_refused)
    else:
        assert buy.status is ResultStatus.FILLED
    assert sell.status is ResultStatus.FILLED
    assert h.pool().risk_state == state.value


def test_drawdown_moves_the_risk_state_on_the_same_tick_and_is_audited(h):
    h.send(signal_id="b1", price="1.100", shares=150_000, layer_index=2)  # 165,000 of grid lots
    h.turn()
    assert h.result("b1").status is ResultStatus.FILLED
    # -20% on the lots = 33,000 = 11% of the 300,000 grid capital: DEGRADED (>= 8%), not yet COOLDOWN.
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1), **{"512890_SH": 0.88})
    h.turn()
    pool = h.pool()
    assert pool.risk_state == "DEGRADED"
    assert 0.08 <= pool.drawdown < 0.12 and pool.risk_equity is not None
    events = [e for e in read_events(h.state / "audit.jsonl") if e.code is AuditCode.RISK_STATE_CHANGE]
    assert events and events[-1].ts == SESSION_TIME + timedelta(minutes=1)


def test_force_halt_by_signed_file_stops_orders_and_cancels_open_ones(h):
    h.send(signal_id="resting", price="1.000", shares=1000)
    h.turn()
    assert h.result("resting").status is ResultStatus.SENT
    command = new_command(ControlAction.FORCE_HALT, "test", h.executor.wall_clock.now())
    write_command_file(h.shared, sign_command(command, SECRET.encode()))
    h.turn(2)
    assert read_ack(h.shared, command.command_id)["accepted"] is True
    assert h.pool().halted is True
    assert h.result("resting").status is ResultStatus.CANCELLED
    assert h.result("resting").reason is Reason.HALTED
    h.send(signal_id="after", shares=1000)
    h.turn()
    assert h.result("after").reason is Reason.HALTED
    assert "KILL_SWITCH_FORCE_HALT" in audit_codes(h)
    resume = new_command(ControlAction.RESUME, "test", h.executor.wall_clock.now())
    write_command_file(h.shared, sign_command(resume, SECRET.encode()))
    h.turn()
    h.send(signal_id="resumed", shares=1000)
    h.turn()
    assert h.result("resumed").status is ResultStatus.FILLED


@pytest.mark.parametrize("case", ["unsigned", "wrong-secret", "expired", "future", "replayed"])
def test_bad_control_commands_are_refused_and_audited(h, case):
    now = h.executor.wall_clock.now()
    issued = {"expired": now - timedelta(hours=1), "future": now + timedelta(hours=1)}.get(case, now)
    command = new_command(ControlAction.FORCE_HALT, "test", issued)
    signed = sign_command(command, b"another-secret" if case == "wrong-secret" else SECRET.encode())
    if case == "unsigned":
        path = h.shared / "control" / f"{command.command_id}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"body": json.loads(command.model_dump_json())}))
    else:
        write_command_file(h.shared, signed)
    if case == "replayed":
        h.turn()
        assert h.pool().halted
        resume = new_command(ControlAction.RESUME, "test", now)
        write_command_file(h.shared, sign_command(resume, SECRET.encode()))
        h.turn()
        h.restart()  # the nonce store survives a restart
        write_command_file(h.shared, signed)
    h.turn()
    ack = read_ack(h.shared, command.command_id)
    assert ack is not None and ack["accepted"] is False and ack["reason"]
    assert h.pool().halted is False
    assert "CONTROL_REJECTED" in audit_codes(h)


def test_http_door_needs_the_token_and_halts_with_it(h):
    server = ControlHttpServer(h.executor.risk.commands, "tok-123", h.executor.wall_clock.now, port=0)
    host, port = server.start()
    try:
        assert host == "127.0.0.1"
        body = json.dumps({"action": "FORCE_HALT", "issuer": "ops"}).encode()
        for token in (None, "wrong"):
            request = urllib.request.Request(f"http://{host}:{port}/v1/commands", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(request, timeout=5)
            assert err.value.code in (401, 403)
        h.turn()
        assert h.pool().halted is False
        request = urllib.request.Request(f"http://{host}:{port}/v1/commands", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": "Bearer tok-123"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status in (200, 202)
        h.turn()
        assert h.pool().halted is True
    finally:
        server.stop()


def test_illegal_broker_transition_is_refused_and_audited(h):
    from core.oms.order_fsm import OrderState
    from windows.brokers.protocol import OrderUpdate

    h.send(signal_id="b1", shares=1000)
    h.turn()
    assert h.result("b1").status is ResultStatus.FILLED
    h.executor._fold_update(OrderUpdate("b1", OrderState.CANCELLED, filled_shares=1000, filled_value_fen=110000))
    h.turn()
    assert h.result("b1").status is ResultStatus.FILLED
    assert "OMS_ILLEGAL_TRANSITION" in audit_codes(h)


def test_rollback_drill_switches_the_bundle_and_forces_degraded(tmp_path, h):
    from gridbridge.deploy import deploy, read_history, rollback

    deploy_dir = tmp_path / "deploy"
    for version, factor in (("v1", 0.32), ("v2", 0.40)):
        cfg = tmp_path / f"{version}.json"
        cfg.write_text(json.dumps({"grid": {"512890.SH": {"atr_grid_factor": factor}}}))
        deploy(deploy_dir, cfg, version)
    h.executor.stop()
    plan = rollback(deploy_dir, h.state, "drill: v2 misbehaved", SESSION_TIME, timedelta(hours=2), drill=True)
    assert plan.to_version.config_version == "v1"
    assert json.loads((deploy_dir / "active" / "config.json").read_text())["grid"]["512890.SH"]["atr_grid_factor"] == 0.32
    assert [v.config_version for v in read_history(deploy_dir)] == ["v1"]
    assert "ROLLBACK" in audit_codes(h)
    h.executor = h.make_executor()
    h.executor.start()
    h.turn()
    assert h.pool().risk_state == "DEGRADED"


def test_rollback_refuses_while_the_executor_runs(tmp_path, h):
    from gridbridge.deploy import rollback

    with pytest.raises(RuntimeError, match="stop it"):
        rollback(tmp_path / "deploy", h.state, "x", SESSION_TIME)


def test_queue_door_accepts_commands_from_sigusr1(h):
    import os
    import signal as os_signal

    from core.control.signal_door import install_sigusr1_halt

    if not hasattr(os_signal, "SIGUSR1"):
        pytest.skip("no SIGUSR1 on this OS")
    commands: queue.SimpleQueue = h.executor.risk.commands
    previous = os_signal.getsignal(os_signal.SIGUSR1)
    try:
        assert install_sigusr1_halt(commands, h.executor.wall_clock.now)
        os.kill(os.getpid(), os_signal.SIGUSR1)
        h.turn()
        assert h.pool().halted is True
    finally:
        os_signal.signal(os_signal.SIGUSR1, previous)


def test_audit_path_is_in_the_state_dir(h):
    assert Path(h.state / "audit.jsonl").exists()


def test_an_abnormal_reject_rate_freezes_the_symbol_until_unlocked(tmp_path, monkeypatch):
    from tests.kit.harness import paper_config

    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    h = Harness(tmp_path, paper_config(reject_ratio=1.0))
    for i in range(6):
        h.send(signal_id=f"j{i}", shares=100)
    h.turn(2)
    assert "RISK_SYMBOL_FROZEN" in audit_codes(h)
    h.send(signal_id="after", shares=100, code="512890.SH")
    h.send(signal_id="other", shares=100, code="159201.SZ", price="1.300")
    h.turn()
    assert h.result("after").detail == "RISK_SYMBOL_FROZEN"
    assert h.result("other").reason is Reason.BROKER_REJECT  # the other symbol is not frozen
    unlock = new_command(ControlAction.FORCE_UNLOCK_SYMBOL, "ops", h.executor.wall_clock.now(), symbol="512890.SH")
    write_command_file(h.shared, sign_command(unlock, SECRET.encode()))
    h.turn()
    assert "512890.SH" not in h.executor.risk.snapshot.frozen_symbols
    h.executor.stop()


def test_entering_a_reducing_state_cancels_resting_buys(h):
    h.send(signal_id="rest", price="1.000", shares=1000)  # 512890 below the ask: rests
    h.send(signal_id="lot", code="159201.SZ", price="1.300", shares=150_000, layer_index=2)
    h.turn()
    assert h.result("rest").status is ResultStatus.SENT
    assert h.result("lot").status is ResultStatus.FILLED
    # 159201 falls 27%: 52,500 lost = 17.5% of the grid capital, past the 12% COOLDOWN line.
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1), **{"159201_SZ": 0.95})
    h.turn(2)
    assert h.pool().risk_state == "COOLDOWN"
    result = h.result("rest")
    assert result.status is ResultStatus.CANCELLED and result.reason is Reason.RISK_STATE
