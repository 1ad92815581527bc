"""The owner of a shared folder is visible: ``gridbridge status``, the dashboard's data and the node's log."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

from gridbridge.cli import main
from shared_schema.clock import SystemClock
from shared_schema.lease import LEASE_FILE, lease_view
from windows.lease import Claimant, LeaseSettings, SharedLease


def _claim(shared: Path, clock=None, doors=("file",)) -> SharedLease:
    me = Claimant("c" * 32, "win-ops", 4242, "d" * 32, "D:/gb/state", str(shared))
    lease = SharedLease(shared, me, clock or SystemClock(), LeaseSettings(5, 60, 0), sleep=lambda s: None,
                        disabled_doors=doors)
    lease.acquire()
    return lease


def test_status_shows_the_owner_and_the_disabled_doors(tmp_path: Path, capsys) -> None:
    _claim(tmp_path)
    assert main(["status", "--shared-dir", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["executor"]["state"] == "LIVE"
    assert "win-ops pid 4242" in status["executor"]["text"]
    assert status["executor"]["disabled_doors"] == ["file"]
    assert main(["status", "--shared-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "win-ops pid 4242" in text and "control door OFF: file" in text


def test_status_says_when_no_executor_or_a_stale_one_holds_the_folder(tmp_path: Path, capsys) -> None:
    main(["status", "--shared-dir", str(tmp_path), "--json"])
    assert json.loads(capsys.readouterr().out)["executor"]["state"] == "NONE"
    _claim(tmp_path)
    later = SystemClock().now() + timedelta(seconds=120)
    assert lease_view(tmp_path, later).state == "STALE"
    (tmp_path / LEASE_FILE).write_text("junk")
    main(["status", "--shared-dir", str(tmp_path), "--json"])
    assert json.loads(capsys.readouterr().out)["executor"]["state"] == "UNREADABLE"


def test_the_node_logs_the_owner_when_it_changes(tmp_path: Path, caplog) -> None:
    from tests.mac.test_node import World

    world = World(tmp_path)
    node = world.node()
    caplog.set_level(logging.INFO, logger="gridbridge")
    world.advance()
    node.run_once()
    assert "no executor holds this folder" in caplog.text
    _claim(tmp_path, clock=world.clock)
    world.clock.advance(6)
    world.advance()
    node.run_once()
    assert "executor lease: executor win-ops pid 4242" in caplog.text
    assert node.executor_owner.startswith("LIVE")


def test_the_dashboard_shows_the_owner_and_each_disabled_door(monkeypatch, tmp_path: Path) -> None:
    from tests.mac.dashboard import fixtures as fx
    from tests.mac.dashboard.test_app import page

    fx.build_run(tmp_path)
    shared = tmp_path / "shared"
    at = page(monkeypatch, shared)
    assert any("no executor holds this folder" in w.value for w in at.warning)
    _claim(shared, doors=("file: GRIDBRIDGE_CONTROL_SECRET is not set", "http: control_http_port is not set"))
    at = page(monkeypatch, shared)
    assert any("win-ops pid 4242" in c.value for c in at.caption)
    doors = [w.value for w in at.warning if "Control door OFF" in w.value]
    assert len(doors) == 2 and "GRIDBRIDGE_CONTROL_SECRET" in doors[0]
