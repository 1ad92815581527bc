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


# --- issue 10, item 9: data health changes the risk state at once ---------------------------------------


def risk_triggers(h: Harness) -> list[str]:
    return [e.data["trigger"] for e in read_events(h.state / "audit.jsonl") if e.code is AuditCode.RISK_STATE_CHANGE]


def test_stale_quotes_enter_reduce_only_at_once_cancel_resting_buys_and_refuse_new_ones(h):
    h.send(signal_id="rest", price="1.000", shares=1000, created_at=SESSION_TIME.isoformat())
    h.turn()
    assert h.result("rest").status is ResultStatus.SENT
    # 20 minutes of wall time pass with the very same quote file: nobody can see the market.
    h.clock.set(SESSION_TIME + timedelta(minutes=20))
    h.turn()
    assert h.pool().risk_state == "REDUCE_ONLY"
    assert "DATA_NOT_OK" in risk_triggers(h)
    assert h.result("rest").status is ResultStatus.CANCELLED and h.result("rest").reason is Reason.RISK_STATE
    h.send(signal_id="late", shares=1000, created_at=SESSION_TIME.isoformat())
    h.turn()
    late = h.result("late")
    assert (late.status, late.reason) == (ResultStatus.REJECTED, Reason.RISK_STATE)
    # Fresh quotes: the cause clears by itself, the state steps down, buys pass again.
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=21))
    h.turn()
    assert h.pool().risk_state == "NORMAL"
    assert risk_triggers(h)[-2:] == ["REDUCE_ONLY_CLEARED", "DRAWDOWN_RECOVERED"]
    h.send(signal_id="fresh", shares=1000)
    h.turn()
    assert h.result("fresh").status is ResultStatus.FILLED


def test_a_fresh_but_unchanged_read_is_not_needed_to_see_staleness(h):
    """No quote file change at all after the first read: the check still runs every turn."""
    h.clock.set(SESSION_TIME + timedelta(seconds=h.config.executor.quote_stale_after_s + 1))
    h.turn()
    assert h.executor.risk.snapshot.state is RiskState.REDUCE_ONLY
    assert not h.executor.risk.snapshot.data_ok


# --- issue 10, item 14: one bad quote time never moves the market clock --------------------------------


def write_quotes(h: Harness, updated_at, times: dict[str, object]) -> None:
    from shared_schema.atomic_io import atomic_write_model
    from shared_schema.models import QUOTE_FILE, QuoteFile
    from tests.kit.stubs import make_quote

    h.seq += 1
    quotes = {code: make_quote(code, h.prices[code], when) for code, when in times.items()}
    atomic_write_model(h.shared / QUOTE_FILE, QuoteFile(seq=h.seq, updated_at=updated_at, quotes=quotes))


def test_a_quote_dated_2099_is_refused_alerted_and_never_moves_the_market_clock(h):
    from datetime import datetime

    from shared_schema.types import CST

    now = SESSION_TIME + timedelta(minutes=1)
    h.clock.set(now)
    write_quotes(h, now, {"512890.SH": datetime(2099, 1, 5, 10, 0, tzinfo=CST), "159201.SZ": now})
    h.turn()
    assert h.executor.now() == now
    assert any("512890.SH" in a and "ahead of the wall clock" in a for a in h.results().alerts)
    # A later signal with a normal expiry still trades: nothing expired against a clock in 2099.
    h.publish_quotes(when=now + timedelta(minutes=1))
    h.send(signal_id="after", shares=1000, expires_at=(now + timedelta(minutes=2)).isoformat())
    h.turn()
    assert h.result("after").status is ResultStatus.FILLED


def test_a_quote_file_stamped_far_ahead_counts_as_bad_data(h):
    from datetime import datetime

    from shared_schema.types import CST

    write_quotes(h, datetime(2099, 1, 1, tzinfo=CST), {"512890.SH": SESSION_TIME, "159201.SZ": SESSION_TIME})
    h.turn()
    assert h.executor.risk.snapshot.state is RiskState.REDUCE_ONLY
    assert any("ahead of the wall clock" in a for a in h.results().alerts)


def test_quotes_a_little_ahead_of_the_wall_clock_are_accepted(h):
    ahead = SESSION_TIME + timedelta(seconds=h.config.executor.max_quote_ahead_s - 1)
    write_quotes(h, SESSION_TIME, {"512890.SH": ahead, "159201.SZ": SESSION_TIME})
    h.turn()
    assert h.executor.now() == ahead


# --- issue 10, items 10-11: reducing states reduce ------------------------------------------------------


def send_command(h: Harness, action, **kw) -> None:
    command = new_command(action, "test", h.executor.wall_clock.now(), **kw)
    write_command_file(h.shared, sign_command(command, SECRET.encode()))


def placed_sells(h: Harness) -> list[dict]:
    """Every SELL the paper venue received, once per client_order_id (its log keeps the latest state)."""
    seen: dict[str, dict] = {}
    for row in h.placed():
        order = row.get("order") or {}
        if order.get("side") == "SELL":
            seen.setdefault(order["client_order_id"], order)
    return list(seen.values())


def reduction_events(h: Harness) -> list:
    return [e for e in read_events(h.state / "audit.jsonl") if e.code.value == "RISK_FORCED_REDUCTION"]


def open_lots(h: Harness) -> dict[str, int]:
    return {a.client_order_id: a.holding_shares for a in h.executor.state.vault.allocations.values()
            if a.holding_shares > 0}


def test_force_reduce_cancels_resting_buys_and_sells_every_grid_lot_but_never_the_base(h):
    h.send(signal_id="L1", shares=10_000)
    h.send(signal_id="L2", code="159201.SZ", price="1.300", shares=20_000)
    h.turn()
    assert h.result("L1").status is ResultStatus.FILLED and h.result("L2").status is ResultStatus.FILLED
    h.send(signal_id="rest", price="1.000", shares=1000)
    h.turn()
    assert h.result("rest").status is ResultStatus.SENT
    send_command(h, ControlAction.FORCE_REDUCE)
    h.turn()
    rest = h.result("rest")
    assert (rest.status, rest.reason) == (ResultStatus.CANCELLED, Reason.RISK_STATE)  # the same turn
    sells = placed_sells(h)
    assert sorted((s["code"], s["shares"]) for s in sells) == [("159201.SZ", 20_000), ("512890.SH", 10_000)]
    assert {s["price_milli"] for s in sells} == {1099, 1299}  # the best bids: marketable
    published = [r for sid, r in h.results().results.items() if sid.startswith("RDX")]
    assert sorted(tuple(r.release_client_order_ids) for r in published) == [("L1",), ("L2",)]  # nodes follow
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1))
    h.turn(2)
    assert open_lots(h) == {}
    volumes = {p.code: p.volume for p in h.broker.query_positions()}
    assert volumes == {"512890.SH": 100_000, "159201.SZ": 100_000}  # the base is untouched
    actions = [e.data["action"] for e in reduction_events(h)]
    assert actions[0] == "CANCEL_BUYS" and "SELL" in actions
    sold = [e for e in reduction_events(h) if e.data["action"] == "SELL"]
    assert sold[0].data["mode"] == "FORCE_REDUCE" and len(sold[0].data["sells"]) == 2
    assert h.pool().reduction is not None and h.pool().reduction.mode == "FORCE_REDUCE"
    # Nothing more to sell: further quotes send nothing.
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=2))
    h.turn(2)
    assert len(placed_sells(h)) == 2


def test_cooldown_sells_the_oldest_lots_down_to_half_of_the_exposure_it_began_with(h):
    for i in range(4):  # 4 x 39,000 = 156,000 of 159201 lots, oldest first
        h.publish_quotes(when=SESSION_TIME + timedelta(minutes=i))
        h.send(signal_id=f"C{i}", code="159201.SZ", price="1.300", shares=30_000, layer_index=i + 1)
        h.turn()
        assert h.result(f"C{i}").status is ResultStatus.FILLED
    h.send(signal_id="rest", price="1.000", shares=1000)
    h.turn()
    # 159201 falls to 0.99: 37,200 lost = 12.4 % of the grid capital: COOLDOWN.
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=10), **{"159201_SZ": 0.99})
    h.turn()
    assert h.pool().risk_state == "COOLDOWN"
    assert h.result("rest").status is ResultStatus.CANCELLED
    sells = placed_sells(h)
    assert [s["client_order_id"] for s in sells] and len(sells) == 2
    released = [h.executor.state.orders[s["client_order_id"]].release_ids for s in sells]
    assert released == [("C0",), ("C1",)]  # the oldest two: 78,000 left = 50 % of 156,000
    for minute in range(11, 16):
        h.publish_quotes(when=SESSION_TIME + timedelta(minutes=minute))
        h.turn()
    assert set(open_lots(h)) == {"C2", "C3"} and len(placed_sells(h)) == 2
    assert h.pool().risk_state == "COOLDOWN"


def test_cooldown_holds_after_six_hours_while_drawdown_stays_past_its_line(h):
    h.send(signal_id="big", code="159201.SZ", price="1.300", shares=120_000, layer_index=2)
    h.turn()
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1), **{"159201_SZ": 0.95})  # 14 % drawdown
    h.turn()
    assert h.pool().risk_state == "COOLDOWN"
    later = SESSION_TIME + timedelta(days=1, minutes=5)  # Tuesday 10:05: > 6 h later, same drawdown
    h.publish_quotes(when=later)
    h.turn()
    assert h.pool().risk_state == "COOLDOWN"
    h.send(signal_id="buy", shares=1000, created_at=later.isoformat())
    h.turn()
    assert h.result("buy").reason is Reason.RISK_STATE


def test_a_restart_never_sends_a_reduction_sell_twice(tmp_path, monkeypatch):
    from tests.kit.harness import paper_config

    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    h = Harness(tmp_path, paper_config(latency_quotes=3))  # an order waits 3 quotes before it can fill
    h.send(signal_id="L1", shares=10_000)
    for minute in range(1, 6):
        h.publish_quotes(when=SESSION_TIME + timedelta(minutes=minute))
        h.turn()
    assert h.result("L1").status is ResultStatus.FILLED
    send_command(h, ControlAction.FORCE_REDUCE)
    h.turn()
    first = [s["client_order_id"] for s in placed_sells(h)]
    assert len(first) == 1 and first[0].startswith("RDX")
    for _ in range(3):  # the sell is still resting at each restart
        h.restart()
        h.turn(2)
        assert [s["client_order_id"] for s in placed_sells(h)] == first
    h.executor.stop()


def test_a_reduction_sell_journaled_but_never_sent_is_not_resent_after_a_restart(tmp_path, monkeypatch):
    from windows.executor import Executor

    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    h = Harness(tmp_path)
    h.send(signal_id="L1", shares=10_000)
    h.turn()
    with monkeypatch.context() as patched:
        patched.setattr(Executor, "_send", lambda self, coid: None)  # the crash: intent on disk, no send
        send_command(h, ControlAction.FORCE_REDUCE)
        h.turn()
        journaled = [c for c in h.executor.state.orders if c.startswith("RDX")]
        assert len(journaled) == 1
        h.restart()
    h.turn(2)
    assert placed_sells(h) == []  # attempt 0 is never sent: the strategy decides afresh
    # Lookups find nothing, the order is declared lost; after the retry wait the lot is tried again under
    # the next attempt's id (quotes every 5 s until that happens, or a bound far past it).
    when = SESSION_TIME
    for _ in range(100):
        when += timedelta(seconds=5)
        h.publish_quotes(when=when)
        h.turn()
        if placed_sells(h):
            break
    assert h.executor.state.orders[journaled[0]].record.state.is_terminal
    sells = [s["client_order_id"] for s in placed_sells(h)]
    assert len(sells) == 1 and sells[0] != journaled[0] and sells[0].startswith("RDX")
    h.executor.stop()


def test_losing_the_terminal_cancels_resting_buys_in_the_same_turn_and_sells_nothing(h, monkeypatch):
    from windows.brokers.protocol import ConnectionEvent

    h.send(signal_id="L1", shares=10_000)
    h.turn()
    h.send(signal_id="rest", price="1.000", shares=1000)
    h.turn()
    assert h.result("rest").status is ResultStatus.SENT
    real = h.broker.drain_events
    events = [ConnectionEvent(False, "terminal gone")]
    monkeypatch.setattr(h.broker, "drain_events", lambda: [*(events.pop() for _ in range(len(events))), *real()])
    h.turn()
    assert h.pool().risk_state == "REDUCE_ONLY"
    assert h.executor.state.orders["rest"].cancel_requested  # asked in the turn the state was entered
    assert placed_sells(h) == []  # trade health is not a forced reduction: lots are kept


def test_a_reduction_is_shown_in_the_pool_file_and_cleared_after_resume(h):
    h.send(signal_id="L1", shares=10_000)
    h.turn()
    send_command(h, ControlAction.FORCE_REDUCE)
    h.turn()
    assert h.pool().reduction is not None and h.pool().reduction.selling
    send_command(h, ControlAction.RESUME)
    h.turn()
    assert h.pool().reduction is None
