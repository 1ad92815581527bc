"""kill -9 inside the new persistence steps (a real process, ``os._exit`` at a failpoint): the paper venue
killed between writing its books and rewriting its placement log, the risk shell killed between a durable
audit write and ``risk_state.json``. The restart loses nothing, sends nothing twice, revives no dropped
order, and rebuilds the risk state the whole audit log describes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime

import pytest

from core.audit import log_segments, replay_risk_file
from shared_schema.types import CST
from tests.kit import procs
from tests.kit.harness import Harness
from windows.risk_shell import AUDIT_FILE

DRIVER = textwrap.dedent("""
    import json, sys
    from datetime import timedelta
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import shared_schema.failpoints as fp
    from tests.kit.harness import Harness
    from tests.kit.stubs import SESSION_TIME
    from core.journal import Journal
    mirror = open({mirror!r}, "a")
    real = Journal.append
    def append(journal, record, sync=True):
        if journal.path.name == "paper_orders.jsonl":
            mirror.write(json.dumps(record, default=str) + "\\n"); mirror.flush()
        real(journal, record, sync)
    Journal.append = append
    h = Harness(Path({home!r}))
    h.executor.risk.audit.max_bytes = 6000
    h.executor.risk.settings.risk_state_every_bytes = 1500
    when = SESSION_TIME
    for d in range(12):
        if d == 2:
            fp._POINTS[{point!r}] = {p}
        for i in range(6):
            when = when + timedelta(minutes=5)
            h.publish_quotes(when=when)
            h.send(signal_id=f"d{{d}}n{{i}}", shares=100, price="1.100" if i % 2 else "1.000",
                   created_at=when.isoformat())
            h.turn()
        h.write_entries([])
        when = when + timedelta(days=1 if when.weekday() < 4 else 3)
    sys.exit(3)  # the failpoint never fired
""")


@pytest.mark.parametrize("point, p", [("paper.compact_log.before_swap", 0.5), ("risk.before_state_save", 0.1)])
def test_a_kill_in_the_new_persistence_steps_loses_nothing(tmp_path, point, p):
    home, mirror = tmp_path / "home", tmp_path / "mirror.jsonl"
    env = procs.env()
    env["GRIDBRIDGE_FAILPOINT_SEED"] = "11"
    script = DRIVER.format(root=str(procs.ROOT), mirror=str(mirror), home=str(home), point=point, p=p)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=procs.ROOT, capture_output=True, timeout=600)
    assert done.returncode == 137, done.stderr.decode()[-2000:]
    sent = [json.loads(line) for line in mirror.read_text().splitlines()]
    assert sent and all(r["accepted"] for r in sent)

    last = json.loads((home / "state" / "paper" / "paper_broker_state.json").read_text())["trading_day"]
    # restart on the day the run was killed on, no failpoints in this process
    h = Harness(home, when=datetime.fromisoformat(last).replace(hour=14, minute=30, tzinfo=CST))
    try:
        risk = h.executor.risk
        assert risk.loaded_from in ("snapshot+tail", "full replay")
        full = replay_risk_file(h.state / AUDIT_FILE)
        assert (risk.snapshot.state, risk.snapshot.frozen_symbols, risk.snapshot.halted) == \
            (full.state, full.frozen_symbols, full.halted)
        books = h.broker.book
        today = [r["client_order_id"] for r in sent if r["order"]["trading_day"] >= books.trading_day]
        assert set(today) <= set(books.orders), "the venue knows every order it accepted today"
        assert not [c for c, o in books.orders.items() if o.is_open and o.trading_day < books.trading_day]
        h.turn(3)
        placed = Counter(r["client_order_id"] for r in h.placed())
        assert placed and max(placed.values()) == 1, "nothing reached the venue twice"
        assert all(r["accepted"] for r in h.placed())
        if point.startswith("risk"):
            assert log_segments(h.state / AUDIT_FILE), "the kill came after rotations"
    finally:
        h.executor.stop()
