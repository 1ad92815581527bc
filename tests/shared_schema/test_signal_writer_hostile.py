"""Writers of order_signal.json on odd files: a clear refusal for the CLI, an alert and carry on for a node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridbridge.cli import main
from shared_schema.models import SIGNAL_FILE
from shared_schema.signal_io import LOCK_SUFFIX, SignalWriteRefused, update_signal_file
from tests.kit.stubs import SESSION_TIME

needs_symlinks = pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
ARGS = ["--code", "512890.SH", "--direction", "BUY", "--price", "1.100", "--shares", "100"]


def _signal_cli(shared: Path, capsys) -> tuple[int, str]:
    rc = main(["signal", "--shared-dir", str(shared), *ARGS])
    return rc, capsys.readouterr().err


def test_cli_refuses_a_directory_named_like_the_signal_file(tmp_path: Path, capsys) -> None:
    (tmp_path / SIGNAL_FILE).mkdir()
    rc, err = _signal_cli(tmp_path, capsys)
    assert rc == 2
    assert "not a regular file" in err and "Traceback" not in err


@needs_symlinks
def test_cli_refuses_a_symlink_loop_as_the_lock(tmp_path: Path, capsys) -> None:
    lock = tmp_path / (SIGNAL_FILE + LOCK_SUFFIX)
    lock.symlink_to(lock.name)  # ELOOP
    rc, err = _signal_cli(tmp_path, capsys)
    assert rc == 2 and "symlink" in err and "Traceback" not in err


@needs_symlinks
def test_a_lock_linked_elsewhere_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / (SIGNAL_FILE + LOCK_SUFFIX)).symlink_to(victim)
    with pytest.raises(SignalWriteRefused, match="symlink"):
        update_signal_file(shared, SESSION_TIME)
    assert victim.read_text() == "keep me"


@needs_symlinks
def test_a_linked_signal_file_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"signals": []}')
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / SIGNAL_FILE).symlink_to(elsewhere)
    with pytest.raises(SignalWriteRefused, match="symlink"):
        update_signal_file(shared, SESSION_TIME)


def test_the_node_alerts_and_carries_on_when_the_signal_file_is_a_directory(tmp_path: Path) -> None:
    from tests.mac.test_node import World, run_until_buy

    world = World(tmp_path)
    (tmp_path / SIGNAL_FILE).mkdir()
    node = world.node()
    buy = run_until_buy(world, node)  # no exception escapes the node's turn
    assert any(SIGNAL_FILE in p and "not a regular file" in p for p in node.data_problems)
    assert buy.signal_id in node.runtimes["512890.SH"].outbox  # kept, re-offered once the file is fixed
    (tmp_path / SIGNAL_FILE).rmdir()
    world.advance()
    node.run_once()
    assert buy.signal_id in {s["signal_id"] for s in world.signals_in_file()}
    assert not any(SIGNAL_FILE in p for p in node.data_problems)
