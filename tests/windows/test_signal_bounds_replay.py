"""Restart meets the same per-entry fault barrier as the live loop (issue 11, item 1).

A record that failed to apply after it was journaled would raise again on every restart and stop the
executor for good: a poison pill in the journal. Replay skips such a record of a signal entry (counted and
alerted); the fault record the live loop wrote after it closes the signal, and a signal the journal left
open (a crash between the two) is closed once after the replay. A deliberate ``vault replay diverged`` still
stops start-up.
"""

import json

import pytest

from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness
from windows.executor_state import ReplayDiverged
from windows.vault import GlobalVault


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.executor.stop()


def faults_of(h: Harness, sid: str) -> list[dict]:
    return [r for r in h.journal() if r["k"] == "result" and r.get("id") == sid and r.get("detail") == "ENTRY_FAULT"]


@pytest.fixture
def alloc_of_boom_raises(monkeypatch):
    """A vault bug that raises for one client_order_id, live and on every replay."""
    real = GlobalVault.request_allocation

    def request_allocation(self, symbol, amount, layer, coid, *args, **kwargs):
        if coid == "boom":
            raise ZeroDivisionError("simulated vault bug")
        return real(self, symbol, amount, layer, coid, *args, **kwargs)

    monkeypatch.setattr(GlobalVault, "request_allocation", request_allocation)


def test_a_journaled_record_that_raises_on_apply_is_skipped_at_restart(h, alloc_of_boom_raises):
    h.send(signal_id="boom", shares=100)
    h.send(signal_id="next", shares=100)
    h.turn()
    assert h.result("boom").detail == "ENTRY_FAULT" and h.result("next").status is ResultStatus.FILLED
    committed = h.executor.state.vault.committed()
    assert [r["k"] for r in h.journal() if r.get("coid") == "boom"] == ["alloc"]  # the pill is in the journal

    h.restart()  # replays the alloc record, which raises again
    h.turn()
    boom = h.result("boom")
    assert (boom.status, boom.reason, boom.detail) == (ResultStatus.REJECTED, Reason.INVALID_SIGNAL, "ENTRY_FAULT")
    assert len(faults_of(h, "boom")) == 1  # closed once: the live fault record, nothing added at restart
    assert h.executor.replay_skipped == 1
    assert any("replay" in a and "boom" in a and "ZeroDivisionError" in a for a in h.results().alerts)
    vault = h.executor.state.vault
    assert vault.check_invariants() == [] and vault.committed() == committed
    assert "boom" not in vault.allocations
    assert [o["client_order_id"] for o in h.placed()] == ["next"]
    h.send(signal_id="after", shares=100)
    h.turn()
    assert h.result("after").status is ResultStatus.FILLED


def test_a_signal_the_journal_left_open_is_closed_once_after_the_replay(h, alloc_of_boom_raises):
    """A crash between the failing record and its fault record: the restart closes the signal itself, once."""
    h.send(signal_id="boom", shares=100)
    h.turn()
    h.executor.stop()
    path = h.state / "executor_journal.jsonl"
    lines = [line for line in path.read_text().splitlines()
             if not (json.loads(line).get("id") == "boom" and json.loads(line)["k"] == "result")]
    path.write_text("\n".join(lines) + "\n")  # the fault record never reached the disk
    h.executor = h.make_executor()
    h.executor.start()
    h.turn()
    assert h.result("boom").detail == "ENTRY_FAULT" and h.result("boom").status is ResultStatus.REJECTED
    assert len(faults_of(h, "boom")) == 1
    h.restart()
    h.turn()
    assert len(faults_of(h, "boom")) == 1 and h.executor.replay_skipped == 1
    assert h.executor.state.vault.check_invariants() == []


def test_a_vault_replay_divergence_still_stops_start_up(h):
    h.send(signal_id="s1", shares=100)
    h.turn()
    h.executor.stop()
    path = h.state / "executor_journal.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        if record["k"] == "alloc":
            record["decision"] = "POOL_EXHAUSTED"  # the journal says one thing, the vault now says another
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    h.executor = h.make_executor()
    with pytest.raises(ReplayDiverged, match="diverged"):
        h.executor.start()
    h.executor.stop()
    h.executor = h.make_executor()  # the fixture's stop() needs an executor that never started


def test_a_record_that_failed_once_live_and_applies_at_replay_holds_no_money(h, monkeypatch):
    """The other way round: the alloc record raised live (a passing fault) but applies at replay. The
    signal's ENTRY_FAULT result releases an allocation that never got an order, live and at replay alike,
    so the restarted vault equals the live one."""
    real_apply = h.executor.state.apply

    def apply_that_breaks_on_boom_alloc(record):
        if record["k"] == "alloc" and record["coid"] == "boom":
            real_apply(record)  # the vault granted it, then something after it raised
            raise ZeroDivisionError("simulated")
        real_apply(record)

    monkeypatch.setattr(h.executor.state, "apply", apply_that_breaks_on_boom_alloc)
    h.send(signal_id="boom", shares=100)
    h.send(signal_id="next", shares=100)
    h.turn()
    assert h.result("boom").detail == "ENTRY_FAULT"
    vault = h.executor.state.vault
    committed, pool = vault.committed(), h.pool()
    assert not vault.allocations["boom"].is_open and vault.check_invariants() == []
    h.restart()  # no fault now: the alloc record applies
    h.turn()
    vault = h.executor.state.vault
    assert vault.committed() == committed and vault.check_invariants() == []
    assert not vault.allocations["boom"].is_open
    assert h.pool().frozen_512890 == pool.frozen_512890 and h.executor.replay_skipped == 0
