"""Attacks on the write-ahead journal the crypto engine (and the ETF executor) replay at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.journal import Journal, JournalCorrupt


def _write(path: Path, *lines: bytes) -> None:
    path.write_bytes(b"".join(lines))


def test_a_torn_last_line_is_cut_and_appending_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _write(path, b'{"k":"a"}\n', b'{"k":"b"')
    j = Journal(path, fsync=False)
    assert [r["k"] for r in j.replay()] == ["a"]
    j.append({"k": "c"})
    j.close()
    assert [r["k"] for r in Journal(path, fsync=False).replay()] == ["a", "c"]


@pytest.mark.parametrize("bad", [b"{garbage\n", b"[1, 2]\n", b"7\n", b"[" * 200_000 + b"]" * 200_000 + b"\n"])
def test_a_garbled_record_in_the_middle_is_refused_and_nothing_is_cut(tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "j.jsonl"
    _write(path, b'{"k":"a"}\n', bad, b'{"k":"c"}\n')
    size = path.stat().st_size
    with pytest.raises(JournalCorrupt, match="records after it"):
        list(Journal(path, fsync=False).replay())  # before: the records after it were cut off the file
    assert path.stat().st_size == size


def test_a_garbled_last_line_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    _write(path, b'{"k":"a"}\n', b"[1]\n")
    assert [r["k"] for r in Journal(path, fsync=False).replay()] == ["a"]
    assert path.read_bytes() == b'{"k":"a"}\n'


@pytest.mark.parametrize("bad", [b"[" * 200_000 + b"]" * 200_000 + b"\n", b"[1, 2]\n", b'"text"\n', b"{}\n"])
def test_an_audit_log_line_of_any_shape_is_skipped_and_counted(tmp_path: Path, bad: bytes) -> None:
    from datetime import datetime, timezone

    from core.audit import AuditWriter, ReadStats, read_log_events
    from core.events import AuditCode, AuditEvent, Severity

    path = tmp_path / "audit.jsonl"
    w = AuditWriter(path, fsync=False)
    ev = AuditEvent(datetime(2026, 1, 5, tzinfo=timezone.utc), AuditCode.EQUITY_SNAPSHOT, Severity.INFO, "c", None, {})
    w.append(ev)
    w.close()
    with open(path, "ab") as f:
        f.write(bad)
    w = AuditWriter(path, fsync=False)
    w.append(ev)
    w.close()
    stats = ReadStats()
    assert len(list(read_log_events(path, stats=stats))) == 2 and stats.malformed == 1
