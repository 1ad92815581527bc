"""One executor per shared folder, proved with real ``gridbridge executor`` processes.

Every wait ends on progress (a lease file naming a pid, a process exiting, a message changing); the
timeouts are only a safety net.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shared_schema.lease import LEASE_FILE
from tests.kit import procs
from windows.lease import EXIT_LEASE_HELD

pytestmark = pytest.mark.slow

CONFIG = {"executor": {"poll_interval_s": 0.02, "lease_renew_interval_s": 0.5, "lease_stale_after_s": 6.0,
                       "lease_settle_s": 0.2}}


def _lease(shared: Path) -> dict:
    return json.loads((shared / LEASE_FILE).read_bytes())


def _executor(root: Path, shared: Path, state: Path, *extra: str, log: str = "x") -> subprocess.Popen:
    return procs.start("executor", "--shared-dir", str(shared), "--state-dir", str(state), "--config",
                       str(root / "config.json"), "--watch", "poll", *extra, log=root / f"{log}.log")


def _refused(root: Path, shared: Path, state: Path, *extra: str) -> tuple[int, str]:
    done = procs.run("executor", "--shared-dir", str(shared), "--state-dir", str(state), "--config",
                     str(root / "config.json"), "--watch", "poll", "--max-seconds", "30", *extra, timeout=120)
    return done.returncode, done.stderr


def _log(root: Path, name: str) -> str:
    path = root / f"{name}.log"
    return path.read_text()[-3000:] if path.exists() else f"no {name}.log"


def _audit_codes(state: Path) -> list[str]:
    path = state / "audit.jsonl"
    return [json.loads(line)["code"] for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlink and kill -9")
def test_only_one_executor_runs_per_shared_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    shared = tmp_path / "shared"
    shared.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(shared, target_is_directory=True)

    owner = _executor(tmp_path, shared, tmp_path / "state_a", log="a")
    try:
        assert procs.wait_for(lambda: _lease(shared)["pid"] == owner.pid, 60), _log(tmp_path, "a")

        # the same folder through a symlinked path, with another state folder: refused, own exit code
        rc, err = _refused(tmp_path, alias, tmp_path / "state_b")
        assert rc == EXIT_LEASE_HELD, err
        assert "another executor owns this shared folder" in err and f"pid {owner.pid}" in err
        # and through the plain path with a third state folder
        rc, err = _refused(tmp_path, shared, tmp_path / "state_c")
        assert rc == EXIT_LEASE_HELD and "another executor owns" in err
        assert owner.poll() is None and _lease(shared)["pid"] == owner.pid, _log(tmp_path, "a")

        # kill -9 the owner: its lease stays; a newcomer refuses while it is fresh, then asks for --take-over
        procs.kill9(owner)
        last_beat = datetime.fromisoformat(_lease(shared)["heartbeat_at"])
        bound = CONFIG["executor"]["lease_stale_after_s"]
        messages = []
        for _ in range(60):
            rc, err = _refused(tmp_path, alias, tmp_path / "state_b")
            age_when_done = (datetime.now(timezone.utc) - last_beat).total_seconds()
            assert rc == EXIT_LEASE_HELD, err
            messages.append("stale" if "is stale" in err else "held")
            if age_when_done < bound:  # judged while the heartbeat was fresh: must be "held"
                assert messages[-1] == "held", err
            if messages[-1] == "stale":
                break
        assert messages[-1] == "stale" and "--take-over" in err
        assert _lease(shared)["pid"] == owner.pid  # refusing never touched it

        taker = _executor(tmp_path, alias, tmp_path / "state_b", "--take-over", log="b")
        try:
            assert procs.wait_for(lambda: _lease(shared)["pid"] == taker.pid, 60), _log(tmp_path, "b")
            lease = _lease(shared)
            assert lease["previous_owner"]["pid"] == owner.pid and lease["previous_owner"]["how"] == "TAKE_OVER"
            assert procs.wait_for(lambda: "EXECUTOR_LEASE_TAKEN_OVER" in _audit_codes(tmp_path / "state_b"), 60)
            first_beat = lease["heartbeat_at"]
            assert procs.wait_for(lambda: _lease(shared)["heartbeat_at"] != first_beat, 60), "no renewal"
            # the old owner's state folder cannot come back while the taker lives
            rc, err = _refused(tmp_path, shared, tmp_path / "state_a")
            assert rc == EXIT_LEASE_HELD and "another executor owns" in err
        finally:
            procs.stop(taker)
        assert taker.returncode == 0, _log(tmp_path, "b")
        assert not (shared / LEASE_FILE).exists()  # a clean stop releases the lease
    finally:
        procs.stop(owner)


@pytest.mark.skipif(os.name == "nt", reason="kill -9")
def test_a_crashed_executor_restarts_on_its_own_state_folder_without_take_over(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    shared, state = tmp_path / "shared", tmp_path / "state"
    shared.mkdir()
    first = _executor(tmp_path, shared, state, log="first")
    try:
        assert procs.wait_for(lambda: _lease(shared)["pid"] == first.pid, 60)
        procs.kill9(first)
        again = _executor(tmp_path, shared, state, log="again")
        try:
            assert procs.wait_for(lambda: _lease(shared)["pid"] == again.pid, 60)
            assert _lease(shared)["previous_owner"]["how"] == "RECLAIM"
            assert procs.wait_for(lambda: "EXECUTOR_LEASE_RECLAIMED" in _audit_codes(state), 60)
        finally:
            procs.stop(again)
    finally:
        procs.stop(first)


def test_a_running_executor_that_loses_its_lease_stops_trading_and_exits_4(tmp_path: Path) -> None:
    from shared_schema.atomic_io import atomic_write_json

    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    shared, state = tmp_path / "shared", tmp_path / "state"
    shared.mkdir()
    owner = _executor(tmp_path, shared, state, log="owner")
    try:
        assert procs.wait_for(lambda: _lease(shared)["pid"] == owner.pid, 60)
        intruder = {**_lease(shared), "owner_id": "f" * 32, "host": "intruder", "pid": 1}
        atomic_write_json(shared / LEASE_FILE, intruder)  # another executor took the folder
        assert procs.wait_for(lambda: owner.poll() is not None, 60), "the executor kept running"
        assert owner.returncode == EXIT_LEASE_HELD
        log = (tmp_path / "owner.log").read_text()
        assert "stopped trading" in log and "lease LOST" in log
        assert _lease(shared)["owner_id"] == "f" * 32  # the winner's lease is left alone
        assert procs.wait_for(lambda: "EXECUTOR_LEASE_LOST" in _audit_codes(state), 10)
    finally:
        procs.stop(owner)
