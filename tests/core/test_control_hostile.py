"""The file door under attack: poison pills, symlinks, oversize files and decade-long TTLs."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.control.commands import (
    ControlAction,
    ControlReason,
    InMemoryNonceStore,
    new_command,
    sign_command,
    verify_command,
)
from core.control.file_door import (
    ACK_DIR,
    CONTROL_DIR,
    MAX_COMMAND_FILE_BYTES,
    process_control_folder,
    read_ack,
    write_command_file,
)
from core.events import AuditCode
from tests.core.stubs import at

SECRET = b"s3cret-for-tests"
PILL = Path(__file__).parent / "pills" / "control_nested_brackets.json"

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")


def _door(root: Path, nonces: InMemoryNonceStore | None = None, **kw):
    applied: list = []
    result = process_control_folder(
        root, SECRET, nonces or InMemoryNonceStore(), at(), lambda c: applied.append(c) or None, **kw
    )
    return result, applied


def _drop(root: Path, name: str, data: bytes) -> Path:
    folder = root / CONTROL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------ item 1


def test_the_nested_bracket_pill_gets_a_malformed_ack_and_is_gone(tmp_path: Path) -> None:
    _drop(tmp_path, "junk.json", PILL.read_bytes())
    result, applied = _door(tmp_path)
    ack = read_ack(tmp_path, "junk")
    assert ack is not None and ack["accepted"] is False and ack["reason"] == "CONTROL_MALFORMED"
    assert "bytes" in str(ack.get("detail"))  # refused by size before any parsing
    assert not (tmp_path / CONTROL_DIR / "junk.json").exists()
    assert [e.code for e in result.events] == [AuditCode.CONTROL_REJECTED]
    assert any("junk" in a and "CONTROL_MALFORMED" in a for a in result.alerts)
    assert applied == []


def test_verify_refuses_deep_nesting_without_recursing() -> None:
    small_pill = PILL.read_bytes()[:60_000]  # under the size bound: the nesting bound must catch it
    result = verify_command(small_pill, SECRET, InMemoryNonceStore(), at())
    assert result.reason is ControlReason.CONTROL_MALFORMED
    assert "nest" in result.detail
    # a string full of brackets is not nesting
    text = json.dumps({"body": {"x": "[" * 5000}, "signature": None})
    assert verify_command(text, SECRET, InMemoryNonceStore(), at()).reason is ControlReason.CONTROL_MALFORMED


def test_a_deep_pill_under_the_size_bound_is_malformed_too(tmp_path: Path) -> None:
    _drop(tmp_path, "deep.json", PILL.read_bytes()[:60_000])
    _door(tmp_path)
    ack = read_ack(tmp_path, "deep")
    assert ack is not None and ack["reason"] == "CONTROL_MALFORMED" and "nest" in str(ack["detail"])


def test_an_oversize_command_file_is_refused_unread(tmp_path: Path) -> None:
    _drop(tmp_path, "big.json", b" " * (MAX_COMMAND_FILE_BYTES + 1) + b"{}")
    result, _ = _door(tmp_path)
    ack = read_ack(tmp_path, "big")
    assert ack is not None and ack["reason"] == "CONTROL_MALFORMED" and "bytes" in str(ack["detail"])
    assert not (tmp_path / CONTROL_DIR / "big.json").exists()


def test_a_pill_that_cannot_be_deleted_is_recorded_once_even_across_restarts(tmp_path: Path, monkeypatch) -> None:
    pill = _drop(tmp_path, "junk.json", PILL.read_bytes())
    real_unlink = os.unlink

    def refuse(path, *a, **kw):
        if Path(path).name == "junk.json":
            raise PermissionError("read-only share")
        return real_unlink(path, *a, **kw)

    monkeypatch.setattr(os, "unlink", refuse)
    first, _ = _door(tmp_path)
    assert pill.exists()
    assert len(first.events) == 1 and any("could not remove" in a for a in first.alerts)
    ack_before = (tmp_path / ACK_DIR / "junk.json").read_bytes()
    # the next pass and a "restart" (a fresh call with fresh state) meet the same file: nothing again
    for _ in range(2):
        again, _ = _door(tmp_path)
        assert again.events == () and not any("CONTROL_MALFORMED" in a for a in again.alerts)
    assert (tmp_path / ACK_DIR / "junk.json").read_bytes() == ack_before


def test_a_handler_that_raises_is_acked_and_the_next_file_still_runs(tmp_path: Path) -> None:
    first = sign_command(new_command(ControlAction.FORCE_HALT, "ops", at(), command_id="a1"), SECRET)
    second = sign_command(new_command(ControlAction.RESUME, "ops", at(), command_id="a2"), SECRET)
    write_command_file(tmp_path, first)
    write_command_file(tmp_path, second)
    seen: list[str] = []

    def apply(cmd):
        seen.append(cmd.command_id)
        if cmd.command_id == "a1":
            raise RuntimeError("boom")
        return None

    result = process_control_folder(tmp_path, SECRET, InMemoryNonceStore(), at(), apply)
    assert seen == ["a1", "a2"]
    assert read_ack(tmp_path, "a1")["accepted"] is False
    assert read_ack(tmp_path, "a2")["accepted"] is True
    assert result.processed == 2


# ------------------------------------------------------------------------------------------ item 5


@needs_symlinks
def test_a_symlinked_control_folder_is_never_read_or_emptied(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("precious.json", "other.json"):
        (elsewhere / name).write_text('{"keep": true}')
    root = tmp_path / "shared"
    root.mkdir()
    (root / CONTROL_DIR).symlink_to(elsewhere, target_is_directory=True)
    result, applied = _door(root)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["other.json", "precious.json"]
    assert result.processed == 0 and applied == []
    assert any("symlink" in a for a in result.alerts)


@needs_symlinks
def test_a_symlinked_command_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    cmd = sign_command(new_command(ControlAction.FORCE_HALT, "ops", at(), command_id="linked"), SECRET)
    target.write_text(cmd.model_dump_json())
    root = tmp_path / "shared"
    (root / CONTROL_DIR).mkdir(parents=True)
    (root / CONTROL_DIR / "linked.json").symlink_to(target)
    result, applied = _door(root)
    assert applied == []
    assert target.exists()
    ack = read_ack(root, "linked")
    assert ack is not None and ack["accepted"] is False and "symlink" in str(ack["detail"])
    assert not (root / CONTROL_DIR / "linked.json").is_symlink()


@needs_symlinks
def test_a_symlinked_ack_folder_cannot_overwrite_the_nonce_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    nonce_file = state / "control_nonces.json"
    nonce_file.write_text('{"abc12345": "2030-01-01T00:00:00+00:00"}')
    root = tmp_path / "shared"
    root.mkdir()
    (root / ACK_DIR).symlink_to(state, target_is_directory=True)
    _drop(root, "control_nonces.json", b"junk")
    result, _ = _door(root)
    assert nonce_file.read_text() == '{"abc12345": "2030-01-01T00:00:00+00:00"}'
    assert any("symlink" in a for a in result.alerts)
    assert sorted(p.name for p in state.iterdir()) == ["control_nonces.json"]


# ------------------------------------------------------------------------------------------ item 6


def test_a_ten_year_ttl_is_refused_and_burns_no_nonce() -> None:
    nonces = InMemoryNonceStore()
    cmd = new_command(ControlAction.FORCE_HALT, "ops", at(), ttl=timedelta(days=3650))
    result = verify_command(sign_command(cmd, SECRET).model_dump_json(), SECRET, nonces, at())
    assert result.reason is ControlReason.CONTROL_TTL_TOO_LONG
    assert nonces.items == {}


def test_the_ttl_cap_is_configurable_and_ten_minutes_passes_by_default() -> None:
    cmd = new_command(ControlAction.FORCE_HALT, "ops", at(), ttl=timedelta(minutes=10))
    raw = sign_command(cmd, SECRET).model_dump_json()
    assert verify_command(raw, SECRET, InMemoryNonceStore(), at()).ok
    short = verify_command(raw, SECRET, InMemoryNonceStore(), at(), max_ttl=timedelta(minutes=5))
    assert short.reason is ControlReason.CONTROL_TTL_TOO_LONG
