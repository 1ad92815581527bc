"""The executor never follows a symlink for the signal file it reads as commands (issue 11 item 5)."""

from __future__ import annotations

import json
import os

import pytest

from shared_schema.models import SIGNAL_FILE, ResultStatus
from tests.kit.harness import Harness
from tests.kit.stubs import signal_payload

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def test_a_linked_signal_file_is_refused_once_and_never_read(tmp_path):
    h = Harness(tmp_path)
    outside = tmp_path / "elsewhere.json"
    entry = signal_payload(signal_id="via-link", shares=1000, created_at=h.clock.now().isoformat())
    outside.write_text(json.dumps({"schema_version": 1, "seq": 1, "updated_at": h.clock.now().isoformat(),
                                   "signals": [entry]}))
    (h.shared / SIGNAL_FILE).symlink_to(outside)
    for _ in range(4):
        h.clock.advance(10)
        h.turn()
    results = h.results()
    assert "via-link" not in results.results
    assert h.placed() == []
    linked = [a for a in results.alerts if "symlink" in a]
    assert len(linked) == 1
    refusals = [r for r in results.input_rejections if r.detail == "SIGNAL_FILE_LINK"]
    assert len(refusals) == 1
    h.restart()  # recorded once: a restart does not record it again
    h.turn(2)
    assert len([r for r in h.results().input_rejections if r.detail == "SIGNAL_FILE_LINK"]) == 1
    # the link replaced by a real file: serving goes on
    (h.shared / SIGNAL_FILE).unlink()
    h.publish_quotes()
    h.send(signal_id="real", shares=1000)
    h.turn()
    assert h.result("real").status is ResultStatus.FILLED
    h.executor.stop()
