"""Real producer and executor processes on ``--broker xtquant`` against the fake MiniQMT terminal.

The fake terminal is a folder (``FakeTerminal``) every process opens as its ``userdata_mini`` path; this
test process plays the exchange: a thread moves the synthetic market one minute bar at a time. Mid-run the
terminal drops every session (both processes must reconnect with new session ids and reconcile) and the
executor is killed with SIGKILL and restarted. At the end the vault equals the terminal's trades and no
client_order_id reached the terminal twice.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from mac.node import state_file
from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, PoolFile, QuoteFile, ResultFile
from shared_schema.signal_io import update_signal_file
from shared_schema.types import datetime_to_ms
from tests.kit import procs
from tests.kit.fake_xtquant import FakeTerminal
from tests.kit.fake_xtquant.terminal import synth_tape
from tests.kit.stubs import make_signal
from tests.kit.venues import ACCOUNT

pytestmark = pytest.mark.slow

CODES = ["159201.SZ", "512890.SH"]
STEP_S = 0.05  # least wall seconds between two market minutes (a fast machine is not flooded)
MAX_ORDER_AGE_S = 3600  # market seconds: an hour, six times the ten minutes big0 needs at 600 shares a minute


class Exchange:
    """Moves the fake terminal's market one minute bar at a time on a thread, as the exchange does to QMT,
    but on the executor's progress, not on the wall clock.

    The next bar comes only once the executor has caught up with the current one: its ``shared_pool.json``
    carries a ``market_time`` at or after the terminal's (it read that bar's quotes from the producer and
    finished a turn on them; the test config sets ``heartbeat_s`` small so every turn rewrites the file).
    No executor running, no new bar. So every machine, fast or slow, sees the same market per executor
    turn: a slow one cannot let max order age, the close or signal ages pass between two turns."""

    def __init__(self, terminal: FakeTerminal, shared: Path, nodes: tuple[str, ...] = (), step_s: float = STEP_S,
                 bars_per_step: int = 1) -> None:
        self.terminal = terminal
        self.shared = shared
        self.nodes = nodes  # strategy nodes (codes) that must have stepped the current bar too
        self.step_s = step_s
        self.bars_per_step = bars_per_step  # bars moved each time everyone caught up (a coarser, shorter run)
        self.steps = 0
        self.pause_if: Callable[[], bool] | None = None  # while set and true, no new bar (the test acts)
        self.paused = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def caught_up(self) -> bool:
        try:
            pool = PoolFile.model_validate_json((self.shared / POOL_FILE).read_bytes())
        except (OSError, ValueError):
            return False
        now = self.terminal.market_time()
        if pool.market_time is None or now is None or pool.market_time < now:
            return False
        return all(self._node_caught_up(code, now) for code in self.nodes)

    def _node_caught_up(self, code: str, now: datetime) -> bool:
        """The node of ``code`` has stepped its newest bar at or before ``now`` (its saved ``last_bar_t``)."""
        try:
            last = json.loads(state_file(self.shared, code).read_bytes())["last_bar_t"]
        except (OSError, ValueError, KeyError):
            return False
        times = sorted(synth_tape(self.terminal.snapshot()["market"]["synth"]).index[code])
        at = bisect.bisect_right(times, datetime_to_ms(now))
        return at == 0 or int(last) >= times[at - 1]

    def _run(self) -> None:  # steps counts bars
        while not self.stop.wait(self.step_s):
            if self.pause_if is not None and self.pause_if():
                self.paused.set()
                continue
            self.paused.clear()
            if not self.caught_up():
                continue
            for _ in range(self.bars_per_step):
                if self.terminal.replay_step() is None:
                    return
                self.steps += 1

    def __enter__(self) -> Exchange:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def results(shared: Path) -> ResultFile:
    return ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())


def quotes(shared: Path) -> QuoteFile:
    return QuoteFile.model_validate_json((shared / QUOTE_FILE).read_bytes())


def send_burst(shared: Path, prefix: str, n: int, shares: int | None = None) -> list[str]:
    ids = []
    for i in range(n):
        q = quotes(shared)
        code = CODES[i % 2]
        quote = q.quotes[code]
        direction = "SELL" if i % 4 == 3 else "BUY"
        price = round(quote.ask1 * 1.01, 3) if direction == "BUY" else round(quote.bid1 * 0.99, 3)
        sig = make_signal(signal_id=f"{prefix}{i}", code=code, direction=direction, price=f"{price:.3f}",
                          shares=shares or 100 * (3 + i % 9), layer_index=1 + i % 6, created_at=quote.quote_time.isoformat())
        update_signal_file(shared, sig.created_at, add=[sig])
        ids.append(sig.signal_id)
        time.sleep(0.02)
    return ids


@pytest.fixture
def rig(tmp_path, monkeypatch):
    qmt = tmp_path / "qmt"
    terminal = FakeTerminal.create(qmt, cash="1000000", positions={c: 200_000 for c in CODES}, account_id=ACCOUNT,
                                   synth={"codes": CODES, "days": 2, "seed": 9, "start": "2026-01-05"})
    terminal.set_faults(liquidity=600)  # bigger orders fill over several minutes: partial fills
    terminal.replay_step()
    config = {
        "xtquant": {"userdata_path": str(qmt), "account_id": ACCOUNT, "callback_deadline_s": 2.0,
                    "reconnect_backoff_s": [0.2, 0.5], "producer_interval_s": 0.05},
        # The fake market replays fast: signals (about restarts, not ages) get a day of market time.
        # Max order age fits big0 (6000 shares at 600 a minute) by construction; heartbeat_s makes every turn
        # publish the pool file the Exchange paces on.
        "executor": {"poll_interval_s": 0.02, "max_signal_age_s": 86400, "max_order_age_s": MAX_ORDER_AGE_S,
                     "heartbeat_s": 0.02},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("GRIDBRIDGE_XTQUANT_MODULE", "tests.kit.fake_xtquant")
    monkeypatch.setenv("FAKE_XTQUANT_DIR", str(qmt))
    return tmp_path, terminal


def test_xtquant_processes_survive_a_disconnect_and_an_executor_restart(rig):
    root, terminal = rig
    shared, state, cfg = root / "shared", root / "state", str(root / "config.json")
    producer = procs.start("producer", "--broker", "xtquant", "--shared-dir", str(shared), "--config", cfg,
                           log=root / "producer.log")

    def start_executor():
        return procs.start("executor", "--broker", "xtquant", "--shared-dir", str(shared), "--state-dir", str(state),
                           "--config", cfg, "--watch", "poll", log=root / "executor.log")

    executor = None

    def progress() -> tuple[object, ...]:  # what moves while the run is healthy: the market and the results
        return terminal.market_time(), results(shared).seq if (shared / RESULT_FILE).exists() else None

    def big0_partly_filled() -> bool:
        return any(o["remark"] == "big0" and 0 < o["traded_volume"] < 6000 for o in terminal.orders())

    try:
        with Exchange(terminal, shared) as exchange:
            assert procs.wait_for(lambda: quotes(shared).source == "xtquant" and len(quotes(shared).quotes) == 2, 60), \
                (root / "producer.log").read_text()
            executor = start_executor()
            assert procs.wait_for(lambda: (shared / POOL_FILE).exists() and (shared / RESULT_FILE).exists(), 60)

            ids = send_burst(shared, "a", 6)
            terminal.drop_connections()  # in the middle of the burst
            ids += send_burst(shared, "b", 6)
            assert procs.wait_for(lambda: any("connected: reconnected" in a for a in results(shared).alerts), 30,
                                  progress=progress), (root / "executor.log").read_text()[-3000:]
            ids += send_burst(shared, "c", 6)
            # big0 fills 600 a minute: the market holds once it is partly filled, so it is open across the kill
            # by construction, and moves again once the new executor has caught up.
            exchange.pause_if = big0_partly_filled
            ids += send_burst(shared, "big", 1, shares=6000)
            assert procs.wait_for(exchange.paused.is_set, 30, progress=progress), terminal.orders_by_remark().get("big0")
            procs.kill9(executor)
            executor = start_executor()
            exchange.pause_if = None
            ids += send_burst(shared, "d", 6)

            def all_final() -> bool:
                res = results(shared).results
                return all(s in res and res[s].status.is_final for s in ids)

            assert procs.wait_for(all_final, 30, progress=progress), (root / "executor.log").read_text()[-3000:]
            pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
    finally:
        if executor is not None:
            procs.stop(executor)
        procs.stop(producer)

    final = results(shared).results
    placed = Counter(o["remark"] for o in terminal.orders())
    assert placed and all(n == 1 for n in placed.values()), placed
    # The vault equals the terminal's truth: every open grant's used is the cash the terminal took (value + fees).
    allocations = pool.allocations_159201 + pool.allocations_512890
    for alloc in allocations:
        assert alloc.frozen == 0, alloc
        assert int(alloc.used * 100) == terminal.cash_out_fen(alloc.client_order_id), alloc
    filled_buys = {o["remark"] for o in terminal.orders() if o["order_type"] == 23 and o["traded_volume"] > 0}
    assert {a.client_order_id for a in allocations if a.used > 0} == filled_buys
    for sid in ids:
        r = final[sid]
        if r.status.value in ("FILLED", "PARTIAL", "CANCELLED") and r.filled_shares:
            (order,) = [o for o in terminal.orders() if o["remark"] == r.client_order_id]
            assert order["traded_volume"] == r.filled_shares
    assert final["big0"].status.value == "FILLED" and final["big0"].filled_shares == 6000
    log = (root / "executor.log").read_text()
    assert "DISCONNECTED" in log and "reconnected as session" in log
    assert "executor started: 0 journal records" in log and "executor started: 0 journal records" not in log.split(
        "DISCONNECTED")[-1]
    executor_sessions = [s for s in terminal.sessions() if int(s) % 100 < 50]
    assert len(executor_sessions) >= 3, terminal.sessions()  # first, after the drop, after the restart
