"""Journal records as typed values: every line today's executor writes decodes and encodes back to the same
line, journals written before the records were typed (``journal_v1/``, by ``make_fixture.py`` at commit
58d8228) replay to the same state, and ``ExecutorState.apply`` dispatches by kind and returns its audit."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core.events import AuditCode
from core.journal import read_records
from tests.kit.harness import paper_config
from tests.kit.stubs import SESSION_TIME
from windows.audit_map import OrderOutcome, RiskMarked
from windows.executor import build_vault
from windows.executor_state import ExecutorState
from windows.journal_records import RECORD_KINDS, IntentRecord, UpdateRecord, decode

DATA = Path(__file__).parent / "journal_v1"
T = SESSION_TIME.isoformat()


def _line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), default=str)  # as core.journal writes it


def _records(name: str) -> list[dict]:
    return [record for record, _size in read_records(DATA / f"{name}.journal.jsonl")]


def _summary(state: ExecutorState) -> dict:
    """What make_fixture.py recorded of the state the old code built (results without the new money fields)."""
    results = {k: {f: v for f, v in r.model_dump(mode="json").items() if f not in ("filled_value", "fees")}
               for k, r in state.results_view().items()}
    return json.loads(json.dumps({
        "results": results,
        "junk": [r.model_dump(mode="json") for r in state.junk_view()],
        "orders": {k: [o.record.state.value, o.record.filled_shares, o.record.filled_value_fen, o.record.fees_fen,
                       o.record.broker_order_id, str(o.record.price), o.outcome_unknown, o.cancel_requested,
                       o.cancel_reason] for k, o in state.orders.items()},
        "used": state.vault.get_used_map(), "frozen": state.vault.get_frozen_map(),
        "alpha": state.vault.acc_alpha, "halted": state.halted, "halt_reason": state.halt_reason,
        "lots_in_sell": state.lots_in_sell, "records_applied": state.records_applied,
    }, sort_keys=True, default=str))


@pytest.mark.parametrize("name", ["full", "compacted"])
def test_every_line_of_an_old_journal_decodes_and_encodes_back_to_the_same_line(name):
    records = _records(name)
    assert records
    for record in records:
        assert _line(decode(record).encode()) == _line(record)


@pytest.mark.parametrize("name", ["full", "compacted"])
def test_an_old_journal_replays_to_the_state_the_old_code_built(name):
    config = paper_config()
    state = ExecutorState(build_vault(config), 50 if name == "compacted" else config.executor.result_retention)
    for record in _records(name):
        state.apply(record)
    expected = json.loads((DATA / f"{name}.expected.json").read_text())
    assert _summary(state) == expected
    assert all(isinstance(o.record.price, Decimal) for o in state.orders.values())  # a str in the old snapshot
    # renamed and retired attributes of the old snapshot: coid_owner is order_owner, illegal_transitions gone
    assert state.order_owner and not hasattr(state, "coid_owner") and not hasattr(state, "illegal_transitions")
    assert state.vault.check_invariants() == []


def test_the_full_fixture_holds_every_kind_a_session_writes_but_forget_and_snapshot():
    kinds = {r["k"] for r in _records("full")} | {r["k"] for r in _records("compacted")}
    assert kinds == set(RECORD_KINDS) - {"forget"}


def test_a_line_may_name_the_client_order_id_in_full():
    short = {"k": "update", "coid": "b1", "state": "FILLED", "filled": 100, "value": 11000, "fees": 5, "t": T}
    long = {**{k: v for k, v in short.items() if k != "coid"}, "client_order_id": "b1"}
    assert decode(long) == decode(short)
    assert decode(long).encode() == short  # written back in the journal's own short form


def test_an_unknown_kind_or_a_missing_key_is_refused():
    with pytest.raises(ValueError):
        decode({"k": "teleport", "t": T})
    with pytest.raises(KeyError):
        decode({"k": "lost", "t": T})


def test_every_kind_has_a_handler_and_a_record_applies_through_it(monkeypatch):
    assert set(ExecutorState._HANDLERS) == set(RECORD_KINDS)
    seen = []
    monkeypatch.setitem(ExecutorState._HANDLERS, "lost", lambda state, rec: seen.append(rec) or
                        ExecutorState._HANDLERS["halt"](state, decode({"k": "halt", "on": True})))
    state = ExecutorState(build_vault(paper_config()))
    state.apply({"k": "lost", "coid": "x", "t": T})
    assert seen == [decode({"k": "lost", "coid": "x", "t": T})] and state.halted


def _buy(state: ExecutorState) -> list:
    effects = []
    for record in (
        {"k": "signal", "id": "b", "h": "x", "sig": {"client_order_id": "b", "code": "512890.SH",
                                                    "direction": "BUY", "shares": 1000}, "t": T},
        {"k": "alloc", "sym": "512890.SH", "amt": 110_000, "layer": 1, "coid": "b", "shares": 1000, "fee": 11,
         "decision": "APPROVED", "t": T},
        IntentRecord(signal_id="b", client_order_id="b", symbol="512890.SH", side="BUY", shares=1000,
                     price=Decimal("1.100"), release_ids=(), at=SESSION_TIME),
        {"k": "sent", "coid": "b", "status": "SENT", "boid": "P1", "msg": "", "t": T},
    ):
        effects.append(state.apply(record))
    return effects


def test_applying_a_record_returns_the_audit_it_causes():
    state = ExecutorState(build_vault(paper_config()))
    signal, alloc, intent, sent = _buy(state)
    assert signal == () and alloc == ()
    assert [e.code for e in intent] == [AuditCode.SIGNAL_ACCEPTED]
    assert [e.code for e in sent] == [AuditCode.ORDER_SUBMITTED]
    assert dict(sent[0].data) == {"client_order_id": "b", "side": "BUY", "shares": 1000}
    filled = state.apply(UpdateRecord(client_order_id="b", state=state.orders["b"].record.state.FILLED,
                                      filled_shares=1000, filled_value_fen=110_100, fees_fen=11, at=SESSION_TIME))
    outcome, event = filled
    assert isinstance(outcome, OrderOutcome) and not outcome.rejected
    assert outcome.slippage_bps == Decimal("0.001") / Decimal("1.100") * 10000  # 1.101 against 1.100: 9.09 bp
    assert isinstance(event, RiskMarked) and event.event.code is AuditCode.ORDER_FILLED
    assert state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 1000, "value": 110_100,
                        "fees": 11, "t": T}) == ()  # a repeat changes nothing and audits nothing


def test_a_refused_transition_is_audited_with_the_report_that_asked_for_it():
    state = ExecutorState(build_vault(paper_config()))
    _buy(state)
    state.apply({"k": "update", "coid": "b", "state": "CANCELLED", "filled": 0, "value": 0, "fees": 0, "t": T})
    later = SESSION_TIME.replace(minute=5).isoformat()
    effects = state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 1000, "value": 110_000,
                           "fees": 11, "t": later})
    assert [(e.code, e.ts.isoformat()) for e in effects] == [(AuditCode.OMS_ILLEGAL_TRANSITION, later)]
    assert state.orders["b"].record.filled_shares == 1000  # the money that moved is kept
