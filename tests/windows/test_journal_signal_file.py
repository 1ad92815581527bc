"""The signal file costs nothing while it sits unchanged, and a file over the size bound is never read."""

from __future__ import annotations

import json
from pathlib import Path

from shared_schema.models import SIGNAL_FILE, ResultStatus
from tests.kit.harness import Harness, paper_config


def _count_reads(monkeypatch, target: Path) -> list[int]:
    reads = [0]
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        if self == target:
            reads[0] += 1
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    return reads


def test_an_unchanged_signal_file_is_not_read_again(tmp_path, monkeypatch):
    h = Harness(tmp_path)
    h.send(signal_id="s1", shares=1000)
    h.turn()
    reads = _count_reads(monkeypatch, h.shared / SIGNAL_FILE)
    h.turn(50)
    assert reads[0] == 0
    h.send(signal_id="s2", shares=1000)  # a new file (new inode, size, mtime): read at once
    h.turn()
    assert reads[0] == 1 and h.result("s2").status is ResultStatus.FILLED
    h.clock.advance(6)  # a stat signature is trusted only for a few seconds (coarse mtimes on shares)
    h.turn()
    assert reads[0] == 2
    h.executor.stop()


def test_a_signal_file_over_the_bound_is_refused_with_one_alert_and_never_read(tmp_path, monkeypatch):
    cfg = paper_config()
    cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"max_signal_file_bytes": 4096})})
    h = Harness(tmp_path, cfg)
    path = h.shared / SIGNAL_FILE
    entries = [{"signal_id": "big", "padding": "x" * 8000}]
    path.write_text(json.dumps({"schema_version": 1, "seq": 1, "updated_at": h.clock.now().isoformat(),
                                "signals": entries}))
    reads = _count_reads(monkeypatch, path)
    for _ in range(5):
        h.clock.advance(10)
        h.turn()
    assert reads[0] == 0
    too_large = [a for a in h.results().alerts if "over the 4096-byte bound" in a]
    assert len(too_large) == 1
    h.write_entries([])
    h.publish_quotes()  # the market moved on meanwhile
    h.send(signal_id="ok", shares=1000)
    h.turn()
    assert h.result("ok").status is ResultStatus.FILLED
    assert "cleared" in [a for a in h.results().alerts if "over the 4096-byte bound" in a][0]
    h.executor.stop()
