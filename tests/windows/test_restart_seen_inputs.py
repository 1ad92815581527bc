"""The executor's memory of junk it has recorded (``seen_inputs``: entries without a usable signal_id) is
bounded: at a compaction it keeps the keys of junk still in the signal file and a bounded recent set. Junk
that sits in the file is never recorded twice, across compactions and restarts."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import windows.sweeper as executor_module
from core.journal import Journal
from tests.kit.harness import Harness, paper_config
from windows.executor import JOURNAL_FILE
from windows.pipeline import payload_hash

RECENT = 20


def config(every: int = 10):
    cfg = paper_config()
    return cfg.model_copy(update={"executor": cfg.executor.model_copy(
        update={"journal_compact_records": every, "result_retention": 10})})


@pytest.fixture
def recorded(monkeypatch) -> Counter:
    """How many times each input key was journaled, over the whole run (compactions included)."""
    counts: Counter = Counter()
    real = Journal.append

    def append(journal: Journal, record: dict[str, Any], sync: bool = True) -> None:
        if journal.path.name == JOURNAL_FILE and record.get("k") == "input":
            counts[record["key"]] += 1
        real(journal, record, sync)

    monkeypatch.setattr(Journal, "append", append)
    monkeypatch.setattr(executor_module, "SEEN_INPUTS_RECENT", RECENT)
    return counts


def junk(n: int) -> dict:
    return {"signal_id": None, "junk": n}


def test_seen_inputs_stay_bounded_while_junk_keeps_coming(tmp_path, recorded):
    h = Harness(tmp_path, config(every=10))
    sitting = {"signal_id": 7, "stays": "in the file"}  # junk that never leaves the file
    sizes = []
    for i in range(300):
        h.write_entries([sitting, junk(i)])
        h.turn()
        sizes.append(len(h.executor.seen_inputs))
    assert len(recorded) == 301, "every distinct junk entry was recorded"
    # The recent set, the junk still in the file and at most one compaction interval: not 301.
    assert max(sizes[50:]) <= RECENT + 2 + 10
    assert recorded[f"input:{payload_hash(sitting)}"] == 1
    assert f"input:{payload_hash(sitting)}" in h.executor.seen_inputs
    snapshot = [json.loads(x) for x in (h.state / JOURNAL_FILE).read_text().splitlines() if '"k":"snapshot"' in x]
    assert snapshot and len(snapshot[-1]["inputs"]) <= RECENT + 2
    h.executor.stop()


def test_junk_sitting_in_the_file_is_never_recorded_twice_across_compactions_and_restarts(tmp_path, recorded):
    h = Harness(tmp_path, config(every=10))
    sitting = [junk("old-1"), "not even an object", {"signal_id": "bad id with spaces!", "x": 1}]
    for i in range(120):
        h.write_entries([*sitting, junk(i)])
        h.turn()
        if i % 40 == 39:
            h.restart()
    h.restart()
    h.turn()
    keys = [f"input:{payload_hash(e)}" for e in sitting]
    assert [recorded[k] for k in keys] == [1, 1, 1]
    assert set(keys) <= h.executor.seen_inputs
    assert len(h.executor.seen_inputs) <= RECENT + len(keys) + 10
    h.executor.stop()


def test_junk_that_left_the_file_and_is_forgotten_is_recorded_again_once(tmp_path, recorded):
    h = Harness(tmp_path, config(every=10))
    gone = junk("gone")
    h.write_entries([gone])
    h.turn()
    for i in range(RECENT + 30):
        h.write_entries([junk(i)])
        h.turn()
    assert f"input:{payload_hash(gone)}" not in h.executor.seen_inputs
    h.write_entries([gone])
    h.turn()
    h.turn()
    assert recorded[f"input:{payload_hash(gone)}"] == 2
    h.executor.stop()
