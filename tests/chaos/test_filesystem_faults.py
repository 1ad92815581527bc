"""A file system that misbehaves, clocks that disagree, and many writers at once."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta

import pytest

from shared_schema import atomic_io
from shared_schema.models import POOL_FILE, RESULT_FILE, Reason, ResultFile, ResultStatus
from shared_schema.watch import ChangeWatcher
from tests.kit import procs
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME


def test_polling_takes_over_when_the_share_delivers_no_events(tmp_path, monkeypatch):
    # A Parallels share: the observer starts but never hears anything.
    monkeypatch.setattr(ChangeWatcher, "_start_observer", lambda self: None)
    h = Harness(tmp_path)
    h.executor.watcher.close()
    h.executor.watcher = ChangeWatcher([h.shared / "order_signal.json"], "auto", 0.01)
    stop = threading.Event()
    loop = threading.Thread(target=h.executor.run, kwargs={"stop_flag": stop}, daemon=True)
    loop.start()
    try:
        h.send(signal_id="p1", shares=1000)
        assert procs.wait_for(lambda: h.result("p1").status is ResultStatus.FILLED, 60)  # a safety net only
        assert h.executor.watcher.polls_detected > 0 and h.executor.watcher.events_seen == 0
    finally:
        stop.set()
        loop.join(timeout=5)
        h.executor.stop()


def test_a_full_disk_keeps_the_last_good_file_and_raises_an_alert(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    h.send(signal_id="a", shares=1000)
    h.turn()
    before = (h.shared / POOL_FILE).read_bytes()
    real_fsync = atomic_io.os.fsync
    shared_prefix = str(h.shared.resolve())

    def shared_folder_full(fd):
        # Only the shared folder is full; the executor's own disk (journal, state) still works.
        if os.readlink(f"/proc/self/fd/{fd}").startswith(shared_prefix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    h.send(signal_id="b", shares=1000)
    monkeypatch.setattr(atomic_io.os, "fsync", shared_folder_full)
    h.turn()
    assert (h.shared / POOL_FILE).read_bytes() == before  # the old view stays, whole
    assert not [p for p in h.shared.iterdir() if p.name.startswith(".tmp-")]  # no temp left behind
    assert any("publish failed" in a for a in h.executor.alerts)
    monkeypatch.undo()
    h.turn()
    results = h.results()
    assert results.results["b"].status is ResultStatus.FILLED  # nothing was lost meanwhile
    assert any("No space left" in a for a in results.alerts)
    h.executor.stop()


def test_a_read_only_share_is_survived_the_same_way(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    real_mkstemp = atomic_io.tempfile.mkstemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(h.shared)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, **kwargs)

    h.send(signal_id="r", shares=1000)
    monkeypatch.setattr(atomic_io.tempfile, "mkstemp", read_only)
    h.turn()
    assert any("Read-only" in a for a in h.executor.alerts)
    monkeypatch.setattr(atomic_io.tempfile, "mkstemp", real_mkstemp)
    h.turn()
    assert h.result("r").status is ResultStatus.FILLED
    h.executor.stop()


@pytest.mark.parametrize("skew_s, accepted", [(-600, True), (0, True), (25, True), (45, False), (3600, False)])
def test_clock_skew_is_judged_on_the_signal_timestamp_with_a_tolerance(tmp_path, skew_s, accepted):
    h = Harness(tmp_path)
    created = SESSION_TIME + timedelta(seconds=skew_s)
    # An old signal names its own expiry (without one it would meet max_signal_age_s, another rule).
    expiry = {"expires_at": (SESSION_TIME + timedelta(seconds=60)).isoformat()} if skew_s < 0 else {}
    h.send(signal_id="k", shares=1000, created_at=created.isoformat(), **expiry)
    h.turn()
    result = h.result("k")
    if accepted:
        assert result.status is ResultStatus.FILLED
    else:
        assert (result.reason, result.detail) == (Reason.INVALID_SIGNAL, "FUTURE_TIMESTAMP")
    h.executor.stop()


def test_expiry_uses_the_same_tolerance(tmp_path):
    h = Harness(tmp_path)
    h.send(signal_id="late-ok", shares=1000, expires_at=(SESSION_TIME - timedelta(seconds=20)).isoformat())
    h.send(signal_id="late", shares=1000, expires_at=(SESSION_TIME - timedelta(seconds=40)).isoformat())
    h.turn()
    assert h.result("late-ok").status is ResultStatus.FILLED
    assert h.result("late").status is ResultStatus.EXPIRED
    h.executor.stop()


WRITER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime
    from pathlib import Path
    from shared_schema.models import Signal, ResultFile
    from shared_schema.signal_io import update_signal_file, entry_signal_id
    shared, prefix, n, when = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    def finals():
        try:
            r = ResultFile.model_validate_json((shared / "order_result.json").read_bytes())
        except Exception:
            return set()
        return {k for k, v in r.results.items() if v.status.is_final}
    for i in range(n):
        sig = Signal(signal_id=f"{prefix}-{i}", code="512890.SH", direction="BUY", price=1.1, shares=100,
                     layer_index=1, created_at=when)
        done = finals()
        update_signal_file(shared, datetime.fromisoformat(when), add=[sig], keep=lambda e: entry_signal_id(e) not in done)
        time.sleep(0.003)
    """
)


@pytest.mark.slow
def test_many_writers_at_once_lose_and_duplicate_nothing(tmp_path):
    config = paper_config(initial_cash="10000000")
    # The harness's wall clock stands still, so the order-rate bucket would never refill: lift it here.
    config = config.model_copy(update={"executor": config.executor.model_copy(
        update={"max_orders_per_s": 1e6, "order_burst": 1_000_000})})
    h = Harness(tmp_path, config)
    stop = threading.Event()
    loop = threading.Thread(target=h.executor.run, kwargs={"stop_flag": stop}, daemon=True)
    loop.start()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(h.shared), name, "40", SESSION_TIME.isoformat()],
                         env=procs.env(), cwd=procs.ROOT)
        for name in ("nodeA", "nodeB", "manual")
    ]
    try:
        for w in writers:
            assert w.wait(timeout=120) == 0
        expected = {f"{name}-{i}" for name in ("nodeA", "nodeB", "manual") for i in range(40)}

        def all_final() -> bool:
            r = ResultFile.model_validate_json((h.shared / RESULT_FILE).read_bytes())
            return expected <= {k for k, v in r.results.items() if v.status.is_final}

        # Ends on progress: only a minute with no new results published fails.
        assert procs.wait_for(all_final, 60, progress=lambda: (h.shared / RESULT_FILE).stat().st_mtime_ns)
    finally:
        stop.set()
        loop.join(timeout=10)
        h.executor.stop()
    placed = [p["client_order_id"] for p in h.placed()]
    assert sorted(placed) == sorted(expected)  # each once, none lost
    results = h.results().results
    assert all(results[s].status is ResultStatus.FILLED for s in expected)
    pool = json.loads((h.shared / POOL_FILE).read_text())
    fees = sum(a["fees"] for a in pool["allocations_512890"])  # used counts the buy fees too
    assert float(pool["used_512890"]) - fees == pytest.approx(120 * 110.0)

