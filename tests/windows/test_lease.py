"""One executor per shared folder: the lease's decisions, its file protocol and the executor's use of it."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from shared_schema.clock import ManualClock
from shared_schema.lease import LEASE_FILE, LeaseFile, describe_lease, read_lease
from tests.kit.harness import Harness
from tests.kit.stubs import SESSION_TIME
from windows.brokers.paper import PaperBroker
from windows.executor import Executor
from windows.lease import (
    Claimant,
    LeaseLost,
    LeaseRefused,
    LeaseSettings,
    Renewal,
    SharedLease,
    Verdict,
    judge_claim,
    judge_renewal,
)

T0 = SESSION_TIME
ME = Claimant("a" * 32, "win-1", 100, "s" * 32, "/state/a", "/shared")
needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")


def _lease(owner: str = "b" * 32, host: str = "win-2", age_s: float = 0, state_id: str = "t" * 32,
           state_dir: str = "/state/b") -> LeaseFile:
    return LeaseFile(owner_id=owner, host=host, pid=200, state_id=state_id, state_dir=state_dir, shared_dir="/x",
                     started_at=T0, heartbeat_at=T0 - timedelta(seconds=age_s), stale_after_s=60)


# ------------------------------------------------------------------------------------ pure decisions


@pytest.mark.parametrize(
    ("current", "take_over", "verdict"),
    [
        (None, False, Verdict.FREE),
        (_lease(age_s=10), False, Verdict.HELD),
        (_lease(age_s=10), True, Verdict.HELD),  # --take-over never takes a live lease
        (_lease(age_s=-30), True, Verdict.HELD),  # a heartbeat from a fast clock is live
        (_lease(age_s=61), False, Verdict.STALE),
        (_lease(age_s=61), True, Verdict.TAKE_OVER),
        (_lease(host="win-1", state_id="s" * 32, state_dir="/state/a", age_s=1), False, Verdict.RECLAIM),
        (_lease(host="win-2", state_id="s" * 32, state_dir="/state/a", age_s=1), False, Verdict.HELD),
        (_lease(host="win-1", state_id="s" * 32, state_dir="/copy/a", age_s=1), False, Verdict.HELD),
    ],
    ids=["free", "held", "held-even-with-take-over", "future-heartbeat", "stale", "take-over",
         "reclaim-own-state-folder", "same-state-id-other-host", "state-copy-other-path"],
)
def test_claim_decisions(current, take_over, verdict) -> None:
    decision = judge_claim(current, None, None, ME, T0, 60, take_over)
    assert decision.verdict is verdict
    assert decision.message


def test_unreadable_lease_needs_take_over_and_age() -> None:
    assert judge_claim(None, "junk", 5, ME, T0, 60, True).verdict is Verdict.UNREADABLE  # maybe being written
    assert judge_claim(None, "junk", 120, ME, T0, 60, False).verdict is Verdict.UNREADABLE
    assert judge_claim(None, "junk", 120, ME, T0, 60, True).verdict is Verdict.TAKE_OVER


def test_renewal_decisions() -> None:
    assert judge_renewal(_lease(owner=ME.owner_id), None, ME)[0] is Renewal.OURS
    assert judge_renewal(None, None, ME)[0] is Renewal.MISSING
    assert judge_renewal(_lease(), None, ME)[0] is Renewal.LOST
    assert judge_renewal(None, "junk", ME)[0] is Renewal.LOST


# ------------------------------------------------------------------------------------ file protocol


def _claimant(name: str, shared: Path) -> Claimant:
    return Claimant(name * 32, "host-" + name, 1, name * 32, "/state/" + name, str(shared))


def _shared_lease(shared: Path, name: str, clock: ManualClock, **kw) -> SharedLease:
    return SharedLease(shared, _claimant(name, shared), clock, LeaseSettings(5, 60, 0), sleep=lambda s: None, **kw)


@needs_symlinks
def test_a_second_claim_through_a_symlinked_path_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(shared, target_is_directory=True)
    clock = ManualClock(T0)
    first = _shared_lease(shared, "a", clock)
    assert first.acquire().verdict is Verdict.FREE
    with pytest.raises(LeaseRefused, match="another executor owns this shared folder"):
        _shared_lease(alias, "b", clock).acquire()
    assert read_lease(shared).owner_id == "a" * 32


def test_renewal_moves_the_heartbeat_and_recreates_a_deleted_file(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    lease = _shared_lease(tmp_path, "a", clock)
    lease.acquire()
    assert not lease.due()
    clock.advance(5)
    assert lease.due() and lease.renew()
    assert read_lease(tmp_path).heartbeat_at == T0 + timedelta(seconds=5)
    (tmp_path / LEASE_FILE).unlink()
    assert lease.renew() and read_lease(tmp_path).owner_id == "a" * 32
    assert lease.notes == ["lease file was missing; re-created it"]


def test_take_over_of_a_stale_lease_then_the_old_owner_finds_it_lost(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    old = _shared_lease(tmp_path, "a", clock)
    old.acquire()
    clock.advance(61)
    with pytest.raises(LeaseRefused, match="stale.*--take-over"):
        _shared_lease(tmp_path, "b", clock).acquire()
    new = _shared_lease(tmp_path, "b", clock)
    claimed = new.acquire(take_over=True)
    assert claimed.verdict is Verdict.TAKE_OVER and claimed.previous.owner_id == "a" * 32
    on_disk = read_lease(tmp_path)
    assert on_disk.owner_id == "b" * 32 and on_disk.previous_owner.how == "TAKE_OVER"
    assert not old.renew() and "host-b" in old.lost_reason
    old.release()  # a loser never removes the winner's lease
    assert read_lease(tmp_path).owner_id == "b" * 32
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEASE_FILE]


def test_a_renewal_that_lands_during_the_settle_wait_makes_the_newcomer_back_off(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    old = _shared_lease(tmp_path, "a", clock)
    old.acquire()
    clock.advance(61)
    # the old owner was only paused: its renewal (read before, replace now) lands while b settles
    racer = SharedLease(tmp_path, _claimant("b", tmp_path), clock, LeaseSettings(5, 60, 1),
                        sleep=lambda s: _overwrite(tmp_path, old))
    with pytest.raises(LeaseRefused, match="lost the lease right after claiming"):
        racer.acquire(take_over=True)


def _overwrite(folder: Path, owner: SharedLease) -> None:
    from shared_schema.atomic_io import atomic_write_bytes

    atomic_write_bytes(folder / LEASE_FILE, owner.lease.model_dump_json().encode())


def test_take_over_refuses_when_the_judged_lease_changed_before_the_move(tmp_path: Path, monkeypatch) -> None:
    clock = ManualClock(T0)
    old = _shared_lease(tmp_path, "a", clock)
    old.acquire()
    clock.advance(61)
    new = _shared_lease(tmp_path, "b", clock)
    real_rename = os.rename
    renewed = []

    def rename_after_renewal(src, dst):
        if not renewed and str(dst).endswith("b" * 32):
            renewed.append(True)
            assert old.renew()  # the old owner renews between b's judgement and b's move
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_after_renewal)
    with pytest.raises(LeaseRefused, match="another executor owns"):
        new.acquire(take_over=True)
    assert read_lease(tmp_path).owner_id == "a" * 32


def test_an_unreadable_or_linked_lease_is_never_replaced_without_take_over(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    (tmp_path / LEASE_FILE).write_text("[" * 50_000)
    with pytest.raises(LeaseRefused, match="not a valid lease"):
        _shared_lease(tmp_path, "a", clock).acquire()
    old = (T0 - timedelta(seconds=300)).timestamp()
    os.utime(tmp_path / LEASE_FILE, (old, old))
    assert _shared_lease(tmp_path, "a", clock).acquire(take_over=True).verdict is Verdict.TAKE_OVER
    assert describe_lease(read_lease(tmp_path), T0).state == "LIVE"


# ------------------------------------------------------------------------------------ the executor


def _second(h: Harness, state: Path) -> Executor:
    broker = PaperBroker(state / "paper", h.config.paper, account_view_path=h.shared / "paper_account.json")
    return Executor(h.shared, state, h.config, broker, wall_clock=h.clock, watch_mode="poll")


def _audit_codes(state: Path) -> list[str]:
    path = state / "audit.jsonl"
    return [json.loads(line)["code"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_second_executor_with_another_state_dir_refuses_to_start(tmp_path: Path) -> None:
    h = Harness(tmp_path / "a")
    try:
        other = _second(h, tmp_path / "b_state")
        with pytest.raises(Exception, match="another executor owns this shared folder") as err:
            other.start()
        assert err.type.__name__ == "LeaseRefused"
        assert not other._lock.is_locked  # its own state folder is free again
        owner = read_lease(h.shared)
        assert owner.state_dir == str(h.state.resolve())
    finally:
        h.executor.stop()
    assert not (h.shared / LEASE_FILE).exists()  # a clean stop releases the lease


def test_take_over_is_audited_and_the_old_executor_stops_trading(tmp_path: Path) -> None:
    h = Harness(tmp_path / "a")
    h.clock.advance(h.config.executor.lease_stale_after_s + 1)
    other = _second(h, tmp_path / "b_state")
    with pytest.raises(LeaseRefused, match="--take-over"):
        other.start()
    other.start(take_over=True)
    try:
        other.risk.flush()
        assert "EXECUTOR_LEASE_TAKEN_OVER" in _audit_codes(tmp_path / "b_state")
        assert any("taking over" in a for a in other.alerts)
        result_before = (h.shared / "order_result.json").read_bytes()
        h.clock.advance(h.config.executor.lease_renew_interval_s)
        with pytest.raises(LeaseLost):
            h.executor.run_once()
        h.executor.stop()  # publishes nothing and leaves the new owner's lease alone
        assert (h.shared / "order_result.json").read_bytes() == result_before
        assert read_lease(h.shared).owner_id == other.lease.me.owner_id
        assert "EXECUTOR_LEASE_LOST" in _audit_codes(h.state)
    finally:
        other.stop()


def test_a_restart_on_the_same_state_folder_reclaims_without_take_over(tmp_path: Path) -> None:
    h = Harness(tmp_path / "a")
    # a crash: the process is gone (its state-folder lock with it) but its lease stays behind
    h.executor._lock.release()
    h.executor.journal.close()
    again = h.make_executor()
    again.start()
    try:
        again.risk.flush()
        assert "EXECUTOR_LEASE_RECLAIMED" in _audit_codes(h.state)
        assert read_lease(h.shared).previous_owner.how == "RECLAIM"
    finally:
        again.stop()


def test_a_claim_leaves_no_temp_file_and_works_on_a_share_without_hard_links(tmp_path: Path, monkeypatch) -> None:
    clock = ManualClock(T0)
    (tmp_path / "x").mkdir()
    _shared_lease(tmp_path / "x", "a", clock).acquire()
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [LEASE_FILE]

    def no_links(src, dst):
        raise PermissionError("EPERM: no hard links on this share")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "y").mkdir()
    assert _shared_lease(tmp_path / "y", "a", clock).acquire().verdict is Verdict.FREE
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [LEASE_FILE]
    with pytest.raises(LeaseRefused, match="another executor owns"):
        _shared_lease(tmp_path / "y", "b", clock).acquire()
