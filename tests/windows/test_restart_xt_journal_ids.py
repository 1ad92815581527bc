"""The xtquant adapter knows every client_order_id of the executor's journal after a real compaction: the
ids then sit in the snapshot record's ``coids`` list (and the encoded state), not in top-level ``coid``s."""

from __future__ import annotations

from core.journal import read_records
from tests.kit.harness import Harness, paper_config
from tests.kit.venues import make_xt_broker
from windows.executor import JOURNAL_FILE


def test_journal_ids_are_read_from_a_compacted_journal(tmp_path):
    cfg = paper_config()
    cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(
        update={"journal_compact_records": 10, "result_retention": 50})})
    h = Harness(tmp_path / "run", cfg)
    for i in range(12):
        h.send(signal_id=f"c{i}", shares=100)
        h.turn()
    h.executor.stop()
    journal = h.state / JOURNAL_FILE
    records = [r for r, _ in read_records(journal)]
    snapshots = [r for r in records if r["k"] == "snapshot"]
    assert snapshots, "the journal was compacted"
    known = set(snapshots[-1]["coids"])
    top_level = {r["coid"] for r in records if isinstance(r.get("coid"), str)}
    assert known - top_level, "some ids live only in the snapshot (the case under test)"

    broker = make_xt_broker(tmp_path / "xt", h.clock, journal_path=str(journal))
    ids = broker._read_journal_ids()

    assert known | top_level <= ids
    for coid in known:
        assert broker.is_ours(coid) or coid in ids


def test_journal_ids_come_from_the_snapshot_coids_list_whatever_the_state_encoding(tmp_path):
    """The ``coids`` list is the snapshot record's contract for record-scanning readers; the encoded state
    is the executor's private format (its field names may change), so the adapter must not depend on it."""
    import json

    cfg = paper_config()
    cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(
        update={"journal_compact_records": 10, "result_retention": 50})})
    h = Harness(tmp_path / "run", cfg)
    for i in range(12):
        h.send(signal_id=f"d{i}", shares=100)
        h.turn()
    h.executor.stop()
    journal = h.state / JOURNAL_FILE
    records = [r for r, _ in read_records(journal)]
    known = set(next(r for r in records if r["k"] == "snapshot")["coids"])
    for r in records:
        if r["k"] == "snapshot":
            r["state"] = {"__opaque__": "private encoding"}
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))

    broker = make_xt_broker(tmp_path / "xt", h.clock, journal_path=str(journal))

    assert known and known <= broker._read_journal_ids()
