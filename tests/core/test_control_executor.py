"""The control door inside the real executor loop: pills, links and disabled doors are alerted, never fatal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared_schema.lease import read_lease
from tests.kit.harness import Harness

PILL = Path(__file__).parent / "pills" / "control_nested_brackets.json"
SECRET = "s3cret-for-tests"


def _alerts(h: Harness) -> list[str]:
    return h.results().alerts


def _audit_codes(h: Harness) -> list[str]:
    h.executor.risk.flush()
    path = h.state / "audit.jsonl"
    return [json.loads(line)["code"] for line in path.read_text().splitlines()]


@pytest.fixture
def h(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", SECRET)
    harness = Harness(tmp_path)
    yield harness
    harness.executor.stop()


def test_the_control_pill_is_acked_alerted_and_the_loop_goes_on(h) -> None:
    (h.shared / "control").mkdir()
    (h.shared / "control" / "junk.json").write_bytes(PILL.read_bytes())
    h.turn()  # no RecursionError
    ack = json.loads((h.shared / "control_ack" / "junk.json").read_text())
    assert ack["reason"] == "CONTROL_MALFORMED"
    assert any("junk" in a and "CONTROL_MALFORMED" in a for a in _alerts(h))
    assert _audit_codes(h).count("CONTROL_REJECTED") == 1
    sid = h.send(signal_id="after-pill", price="1.100", shares=100)
    h.turn(2)
    assert sid in h.results().results  # still trading
    h.restart()
    h.turn()
    assert _audit_codes(h).count("CONTROL_REJECTED") == 1  # never met again


@pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks")
def test_a_linked_control_folder_is_alerted_once_and_left_alone(h, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.json").write_text("{}")
    (h.shared / "control").symlink_to(elsewhere, target_is_directory=True)
    h.turn(3)
    assert (elsewhere / "precious.json").exists()
    linked = [a for a in _alerts(h) if "symlink" in a and "control" in a]
    assert len(linked) == 1


def test_every_disabled_door_is_warned_at_start_and_published(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GRIDBRIDGE_CONTROL_SECRET", raising=False)
    monkeypatch.delenv("GRIDBRIDGE_CONTROL_TOKEN", raising=False)
    h = Harness(tmp_path)
    try:
        alerts = _alerts(h)
        assert any("control door off: file: GRIDBRIDGE_CONTROL_SECRET is not set" in a for a in alerts)
        assert any("control door off: http" in a for a in alerts)
        doors = read_lease(h.shared).disabled_doors
        assert [d.split(":")[0] for d in doors][:2] == ["file", "http"]
    finally:
        h.executor.stop()


def test_with_a_secret_the_file_door_is_not_reported_off(h) -> None:
    assert not any("control door off: file" in a for a in _alerts(h))
