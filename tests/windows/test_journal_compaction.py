"""Journal compaction: a snapshot plus the tail rebuilds exactly the state a full replay builds, a kill -9
anywhere in a compaction loses nothing and sends nothing twice, and the journal stays bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.journal import Journal
from tests.kit import procs
from tests.kit.harness import Harness, paper_config
from windows.executor import JOURNAL_FILE, build_vault
from windows.executor_state import ExecutorState

VOLATILE = ("illegal_transitions", "changed")


def compact_config(every: int = 10, retention: int = 10):
    cfg = paper_config()
    return cfg.model_copy(update={"executor": cfg.executor.model_copy(
        update={"journal_compact_records": every, "result_retention": retention})})


def comparable(state: ExecutorState) -> dict[str, Any]:
    return {k: v for k, v in state.snapshot()["__d__"].items() if k not in VOLATILE}


def replayed(records: list[dict[str, Any]], config) -> ExecutorState:
    state = ExecutorState(build_vault(config), config.executor.result_retention)
    for record in records:
        state.apply(record)
    return state


class Mirror:
    """Every record the executor ever appended, in order: the journal as it would be without compaction."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records: list[dict[str, Any]] = []
        real = Journal.append

        def append(journal: Journal, record: dict[str, Any], sync: bool = True) -> None:
            if journal.path.name == JOURNAL_FILE:  # not the paper venue's own order log
                self.records.append(json.loads(json.dumps(record, default=str)))
            real(journal, record, sync)

        monkeypatch.setattr(Journal, "append", append)


# One step of a session: (kind, size). Buys of varied size, sells of open lots, junk, a signal re-offered,
# time passing (orders age out, signals expire), a restart.
steps = st.lists(st.tuples(st.sampled_from(["buy", "rest", "sell", "junk", "again", "time", "restart", "halt"]),
                           st.integers(1, 30)), min_size=5, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=steps)
def test_snapshot_plus_tail_equals_a_full_replay(tmp_path_factory, monkeypatch, session):
    root = tmp_path_factory.mktemp("compaction")
    with monkeypatch.context() as m:
        mirror = Mirror(m)
        config = compact_config(every=12, retention=10)
        h = Harness(root, config)
        n = 0
        try:
            for kind, size in session:
                n += 1
                if kind == "buy":
                    h.send(signal_id=f"b{n}", shares=100 * size)
                elif kind == "rest":
                    h.send(signal_id=f"r{n}", price="1.000", shares=100 * size)
                elif kind == "sell":
                    lots = [a for a in h.executor.state.vault.allocations.values()
                            if a.is_open and a.filled_shares and a.client_order_id not in h.executor.state.lots_in_sell]
                    if lots:
                        lot = lots[0]
                        h.send(signal_id=f"s{n}", direction="SELL", price="1.100", shares=lot.holding_shares,
                               release_client_order_ids=[lot.client_order_id])
                elif kind == "junk":
                    h.write_entries(h.entries() + [{"signal_id": f"j{n}", "shares": -size}, ["not", "a", "signal"]])
                elif kind == "again":
                    h.write_entries(h.entries() + h.entries()[:1])
                elif kind == "time":
                    h.clock.advance(size * 20)
                    h.publish_quotes()
                    if size % 3 == 0:
                        h.write_entries([])  # the writers prune what is final
                elif kind == "restart":
                    h.restart()
                elif kind == "halt":
                    h.executor._commit({"k": "halt", "on": size % 2 == 1, "why": "FORCE_HALT",
                                        "t": h.clock.now().isoformat()})
                h.turn()
            live = comparable(h.executor.state)
            assert live == comparable(replayed(mirror.records, config))
            inputs = set(h.executor.seen_inputs)
            h.restart()  # may itself fold what the venue did meanwhile: new records, replayed below too
            assert h.executor.seen_inputs == inputs == {r["key"] for r in mirror.records if r["k"] == "input"}
            live = comparable(h.executor.state)
            compacted = h.journal()
            if len(mirror.records) > 30:
                assert compacted[0]["k"] == "snapshot" and len(compacted) < len(mirror.records)
        finally:
            h.executor.stop()
    full = replayed(mirror.records, config)
    from_snapshot = replayed(compacted, config)
    assert comparable(from_snapshot) == comparable(full)
    assert comparable(full) == live
    assert full.vault.check_invariants() == []


def test_the_journal_stays_bounded_by_open_state_and_retention(tmp_path):
    h = Harness(tmp_path, compact_config(every=50, retention=20))
    sizes = []
    for i in range(400):
        h.send(signal_id=f"x{i}", shares=100)
        h.send(signal_id=f"y{i}", shares=-1)  # junk beside every signal
        h.turn()
        h.write_entries([])
        h.clock.advance(150)  # past max_signal_age_s: signals cannot come back
        h.publish_quotes()
        h.turn()
        sizes.append((h.state / JOURNAL_FILE).stat().st_size)
    state = h.executor.state
    open_lots = sum(1 for a in state.vault.allocations.values() if a.is_open)
    # Retention (20 results, 200 input rejections) + open lots + one compaction interval, not 800 signals.
    assert len(state.signals) <= 20 + 200 + 50
    assert len(state.vault.allocations) <= open_lots + 50
    assert max(sizes[-100:]) <= max(sizes[100:200]) * 1.5  # flat, not growing with the signals seen
    h.restart()
    assert len(h.executor.state.signals) == len(state.signals)
    h.executor.stop()


DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from tests.kit.harness import Harness
    from tests.windows.test_journal_compaction import compact_config
    from core.journal import Journal
    mirror = open({mirror!r}, "a")
    real = Journal.append
    def append(journal, record, sync=True):
        if journal.path.name == "executor_journal.jsonl":
            mirror.write(json.dumps(record, default=str) + "\\n"); mirror.flush()
        real(journal, record, sync)
    Journal.append = append
    h = Harness(Path({home!r}), compact_config(every=10, retention=5))
    for i in range(60):
        h.send(signal_id=f"k{{i}}", shares=100 * (1 + i % 4))
        h.turn()
        if i % 4 == 3:
            h.write_entries([])
            h.clock.advance(200)
            h.publish_quotes()
            h.turn()
    sys.exit(3)  # every compaction survived: the failpoint never fired
""")


@pytest.mark.parametrize("point", ["executor.before_compact", "journal.compact.before_write",
                                   "journal.compact.before_swap", "journal.compact.after_swap"])
def test_a_kill_anywhere_in_a_compaction_loses_nothing_and_sends_nothing_twice(tmp_path, point):
    home, mirror = tmp_path / "home", tmp_path / "mirror.jsonl"
    env = procs.env()
    env["GRIDBRIDGE_FAILPOINTS"] = f"{point}:0.5"
    env["GRIDBRIDGE_FAILPOINT_SEED"] = "7"
    script = DRIVER.format(root=str(procs.ROOT), mirror=str(mirror), home=str(home))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=procs.ROOT, capture_output=True, timeout=300)
    assert done.returncode == 137, done.stderr.decode()[-2000:]  # killed inside a compaction
    leftovers = [p.name for p in (home / "state").iterdir() if p.name.startswith(".tmp-")]
    config = compact_config(every=10, retention=5)
    before = [json.loads(line) for line in mirror.read_text().splitlines()]
    h = Harness(home, config)  # restart, no failpoints in this process
    try:
        assert not [p for p in (home / "state").iterdir() if p.name.startswith(".tmp-")]
        assert comparable(h.executor.state) == comparable(replayed(before, config)), leftovers
        placed = Counter(p["client_order_id"] for p in h.placed())
        assert placed and max(placed.values()) == 1  # nothing reached the venue twice
        intents = {r["coid"] for r in before if r["k"] == "intent"}
        assert set(placed) <= intents
        h.turn(3)
        assert all(h.result(sid).status.is_final for sid in (e["signal_id"] for e in h.entries()))
    finally:
        h.executor.stop()
    assert os.path.getsize(home / "state" / JOURNAL_FILE) > 0


def test_a_compaction_that_cannot_swap_keeps_the_full_journal_alerts_once_and_retries_later(tmp_path, monkeypatch):
    from core import journal as journal_module

    h = Harness(tmp_path, compact_config(every=10, retention=5))
    real_os = journal_module.os
    calls = {"n": 0}

    class LockedJournalOs:
        """The journal module's view of ``os``, where the rename over the journal fails (a reader has it
        open on Windows); every other module keeps the real ``os``."""

        def __getattr__(self, name):
            return getattr(real_os, name)

        @staticmethod
        def replace(src, dst):
            calls["n"] += 1
            raise PermissionError(13, "the file is open in another process")

    monkeypatch.setattr(journal_module, "os", LockedJournalOs())
    for i in range(8):
        h.send(signal_id=f"p{i}", shares=100)
        h.turn()
    records = h.journal()
    assert 1 <= calls["n"] <= len(records) // 10  # once per interval of records, not every turn
    assert len([a for a in h.executor.alerts if "journal compaction failed" in a]) == 1
    assert not [p for p in h.state.iterdir() if p.name.startswith(".tmp-")]
    assert records[0]["k"] == "signal"  # the full journal, untouched
    monkeypatch.setattr(journal_module, "os", real_os)
    for i in range(8, 16):
        h.send(signal_id=f"p{i}", shares=100)
        h.turn()
    assert h.journal()[0]["k"] == "snapshot"
    assert not h.executor.active_alerts().get("journal:compact")
    before = comparable(h.executor.state)
    h.restart()
    assert comparable(h.executor.state) == before
    h.executor.stop()


def test_a_sell_of_a_lot_still_held_is_never_forgotten(tmp_path):

    from shared_schema.models import ResultStatus

    h = Harness(tmp_path, compact_config(every=10_000, retention=10))
    h.send(signal_id="lot", shares=1000)
    h.turn()
    h.send(signal_id="sell", direction="SELL", price="1.150", shares=1000, release_client_order_ids=["lot"])
    h.turn()
    h.clock.advance(h.config.executor.max_order_age_s + 1)  # the sell rests, ages out, is cancelled
    h.publish_quotes()
    h.turn(2)
    assert h.result("sell").status is ResultStatus.CANCELLED
    for i in range(30):  # push the sell's result out of the retention
        h.send(signal_id=f"f{i}", shares=100)
        h.turn()
    h.write_entries([])
    h.clock.advance(3600)
    h.publish_quotes()
    h.turn()
    state = h.executor.state
    drop = state.forgettable(frozenset(), h.executor.now(), 120, 30)
    assert "sell" not in drop["ids"] and "lot" not in drop["owners"]
    assert {f"f{i}" for i in range(5)} <= set(drop["ids"])  # older ones do go
    h.executor.stop()


def test_the_dashboard_replays_a_compacted_journal_to_the_same_pool(tmp_path):
    from mac.dashboard.parsing import parse_file
    from shared_schema.pool_history import POOL_HISTORY_FILE

    h = Harness(tmp_path, compact_config(every=10, retention=5))
    for i in range(12):
        h.send(signal_id=f"d{i}", shares=100 * (1 + i % 3))
        h.turn()
    vault = h.executor.state.vault
    h.executor.stop()
    assert h.journal()[0]["k"] == "snapshot"
    history = parse_file("pool_history", h.state / POOL_HISTORY_FILE).value
    last = history.frame.iloc[-1]
    assert last["used_512890"] == vault.get_used_map()["512890.SH"] / 100
    assert last["alpha_512890"] == vault.acc_alpha["512890.SH"] / 100


def test_a_snapshot_that_cannot_be_built_never_stops_a_turn_and_the_full_journal_stays(tmp_path, monkeypatch):
    # Compaction is an optimisation: a state the snapshot cannot encode (any exception, not only an
    # OSError from the swap) leaves the full journal, alerts once and lets every later turn run.
    h = Harness(tmp_path, compact_config(every=10, retention=5))

    def broken_snapshot(self):
        raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")

    monkeypatch.setattr(ExecutorState, "snapshot", broken_snapshot)
    for i in range(16):
        h.send(signal_id=f"s{i}", shares=100)
        h.turn()
    records = h.journal()
    assert records[0]["k"] == "signal"  # never swapped
    assert len([a for a in h.executor.alerts if "journal compaction failed" in a]) == 1
    assert all(h.executor.state.signals[f"s{i}"].result.status.is_final for i in range(16))
    monkeypatch.undo()
    before = comparable(h.executor.state)
    h.restart()
    assert comparable(h.executor.state) == before
    h.executor.stop()
