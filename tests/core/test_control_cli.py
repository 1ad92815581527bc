"""``gridbridge control`` fails loudly: it waits for the executor's acknowledgement and exits non-zero when
the command was refused or never acknowledged."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from core.control.commands import InMemoryNonceStore
from core.control.file_door import pending_command_files, process_control_folder
from gridbridge.cli import main

SECRET = "s3cret-for-tests"


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)


def _executor_door(root: Path, secret: bytes | None) -> threading.Thread:
    """Stands in for the executor's file door: handles the first command that appears, then ends."""

    def loop() -> None:
        while True:
            if pending_command_files(root):
                process_control_folder(root, secret, InMemoryNonceStore(), datetime.now(timezone.utc),
                                       lambda c: None)
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_an_accepted_command_prints_its_ack_and_exits_zero(tmp_path: Path, capsys) -> None:
    door = _executor_door(tmp_path, SECRET.encode())
    rc = main(["control", "halt", "--shared-dir", str(tmp_path), "--wait", "60"])
    door.join(10)
    out = capsys.readouterr().out
    assert rc == 0
    ack = json.loads(out.strip().splitlines()[-1])
    assert ack["accepted"] is True and ack["reason"] is None


def test_a_refused_command_exits_non_zero_with_the_reason(tmp_path: Path, capsys) -> None:
    door = _executor_door(tmp_path, None)  # the executor runs without the secret: CONTROL_NO_SECRET
    rc = main(["control", "halt", "--shared-dir", str(tmp_path), "--wait", "60"])
    door.join(10)
    captured = capsys.readouterr()
    assert rc == 1
    assert "CONTROL_NO_SECRET" in captured.out and "REFUSED" in captured.err


def test_no_acknowledgement_exits_non_zero(tmp_path: Path, capsys) -> None:
    rc = main(["control", "halt", "--shared-dir", str(tmp_path), "--wait", "0.3"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "not acknowledged" in err and "no executor" in err


def test_a_ttl_over_the_cap_is_refused_before_it_is_written(tmp_path: Path, capsys) -> None:
    rc = main(["control", "halt", "--shared-dir", str(tmp_path), "--ttl", "36000", "--wait", "0"])
    assert rc == 2 and not (tmp_path / "control").exists()
