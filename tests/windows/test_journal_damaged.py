"""A damaged journal stops the executor at start, whole and loud: nothing is cut, nothing is published, the lock
and the lease are let go so the repaired folder starts again, and the command exits 5 with the reason."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.journal import JournalCorrupt
from tests.kit.harness import Harness
from windows.executor import JOURNAL_FILE


def _journal_with_a_signal(tmp_path):
    h = Harness(tmp_path)
    h.send(signal_id="d1", shares=1000)
    h.turn()
    h.executor.stop()
    return h, h.state / JOURNAL_FILE


def _damage_the_middle(path) -> bytes:
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    lines.insert(1, b'{"k": "sig", garbled\n')
    path.write_bytes(b"".join(lines))
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbled", "unknown-kind", "missing-key"])
def test_a_damaged_journal_refuses_the_start_and_keeps_every_byte(tmp_path, damage):
    h, path = _journal_with_a_signal(tmp_path)
    if damage == "garbled":
        before = _damage_the_middle(path)
    else:
        line = b'{"k":"from-a-newer-version","x":1}\n' if damage == "unknown-kind" else b'{"k":"sig"}\n'
        lines = path.read_bytes().splitlines(keepends=True)
        lines.insert(1, line)
        path.write_bytes(b"".join(lines))
        before = path.read_bytes()
    executor = h.make_executor()
    with pytest.raises(JournalCorrupt):
        executor.start()
    assert path.read_bytes() == before  # nothing truncated
    # The lock and the lease were let go: once the operator repairs the file, the folder starts again.
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))
    h.executor = h.make_executor()
    h.executor.start()
    assert h.result("d1").status.value in ("SENT", "FILLED", "PARTIAL")
    h.executor.stop()


def test_the_command_exits_5_and_says_why(tmp_path):
    h, path = _journal_with_a_signal(tmp_path)
    _damage_the_middle(path)
    proc = subprocess.run(
        [sys.executable, "-m", "gridbridge.cli", "executor", "--shared-dir", str(h.shared), "--broker", "paper",
         "--state-dir", str(h.state), "--max-seconds", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 5, proc.stderr
    assert "damaged journal" in proc.stderr and "Traceback" not in proc.stderr
