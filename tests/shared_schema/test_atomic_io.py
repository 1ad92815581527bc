"""Atomic writes seen from another process, and readers that survive bad files."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from shared_schema.atomic_io import (
    ModelFileReader,
    ReadStatus,
    WriteFailed,
    atomic_write_bytes,
    atomic_write_model,
)
from shared_schema.models import PoolFile, QuoteFile
from shared_schema.types import CST
from tests.kit.stubs import make_quote_file

READER = textwrap.dedent(
    """
    import json, sys, time
    path, stop = sys.argv[1], sys.argv[2]
    import os
    reads = bad = 0
    while not os.path.exists(stop):
        try:
            data = open(path, 'rb').read()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            obj = json.loads(data)
            assert obj["seq"] >= 0 and len(obj["pad"]) == 20000
        except Exception:
            bad += 1
    print(json.dumps({"reads": reads, "bad": bad}))
    """
)


def test_reader_in_another_process_never_sees_a_partial_file(tmp_path):
    target = tmp_path / "shared_quote.json"
    stop = tmp_path / "stop"
    atomic_write_bytes(target, json.dumps({"seq": 0, "pad": "x" * 20000}).encode())
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(target), str(stop)], stdout=subprocess.PIPE, text=True
    )
    for seq in range(1, 400):
        atomic_write_bytes(target, json.dumps({"seq": seq, "pad": "y" * 20000}).encode())
    stop.touch()
    out = json.loads(reader.communicate(timeout=30)[0])
    assert out["reads"] > 0
    assert out["bad"] == 0


def test_no_temp_files_are_left_behind(tmp_path):
    for _ in range(20):
        atomic_write_bytes(tmp_path / "f.json", b"{}")
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b'{"ok": 1}')
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions; nothing to prove then
            return
        try:
            atomic_write_bytes(target, b'{"ok": 2}')
        except WriteFailed:
            pass
        else:
            raise AssertionError("write into a read-only folder should fail")
    finally:
        os.chmod(tmp_path, 0o700)
    assert target.read_bytes() == b'{"ok": 1}'


def test_reader_keeps_the_last_good_view_and_says_why(tmp_path):
    path = tmp_path / "shared_quote.json"
    reader = ModelFileReader(path, QuoteFile, retries=0)
    assert reader.read().status is ReadStatus.MISSING
    good = make_quote_file(seq=5)
    atomic_write_model(path, good)
    first = reader.read()
    assert first.status is ReadStatus.FRESH and first.model.seq == 5
    path.write_text('{"seq": 6, "updated_')
    partial = reader.read()
    assert partial.status is ReadStatus.INVALID and partial.model.seq == 5 and partial.error
    path.write_text(json.dumps({"seq": "x"}))
    assert reader.read().model.seq == 5
    path.unlink()
    missing = reader.read()
    assert missing.status is ReadStatus.MISSING and missing.model.seq == 5


@given(st.binary(max_size=300))
def test_reader_never_raises_on_garbage(data):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "shared_pool.json"
        path.write_bytes(data)
        outcome = ModelFileReader(path, PoolFile, retries=0).read()
        assert outcome.status in (ReadStatus.INVALID, ReadStatus.FRESH)


def test_models_round_trip_money_exactly():
    qf = make_quote_file(when=datetime(2026, 1, 5, 10, tzinfo=CST), cash="123456.78")
    back = QuoteFile.model_validate_json(qf.model_dump_json())
    assert str(back.account.cash) == "123456.78"
