"""Real producer and executor processes on ``--broker xtquant`` against the fake MiniQMT terminal.

The fake terminal is a folder (``FakeTerminal``) every process opens as its ``userdata_mini`` path; this
test process plays the exchange: a thread moves the synthetic market one minute bar at a time. Mid-run the
terminal drops every session (both processes must reconnect with new session ids and reconcile) and the
executor is killed with SIGKILL and restarted. At the end the vault equals the terminal's trades and no
client_order_id reached the terminal twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, PoolFile, QuoteFile, ResultFile
from shared_schema.signal_io import update_signal_file
from tests.kit import procs
from tests.kit.fake_xtquant import FakeTerminal
from tests.kit.stubs import make_signal
from tests.kit.venues import ACCOUNT

pytestmark = pytest.mark.slow

CODES = ["159201.SZ", "512890.SH"]
STEP_S = 0.05  # wall seconds per market minute


class Exchange:
    """Moves the fake terminal's market on a thread, as the exchange does to QMT."""

    def __init__(self, terminal: FakeTerminal) -> None:
        self.terminal = terminal
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(STEP_S):
            if self.terminal.replay_step() is None:
                return

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
        "executor": {"poll_interval_s": 0.02, "max_signal_age_s": 86400},
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
    try:
        with Exchange(terminal):
            assert procs.wait_for(lambda: quotes(shared).source == "xtquant" and len(quotes(shared).quotes) == 2, 30), \
                (root / "producer.log").read_text()
            executor = start_executor()
            assert procs.wait_for(lambda: (shared / POOL_FILE).exists() and (shared / RESULT_FILE).exists(), 30)

            ids = send_burst(shared, "a", 6)
            terminal.drop_connections()  # in the middle of the burst
            ids += send_burst(shared, "b", 6)
            assert procs.wait_for(lambda: any("connected: reconnected" in a for a in results(shared).alerts), 30), \
                (root / "executor.log").read_text()[-3000:]
            ids += send_burst(shared, "c", 6)
            ids += send_burst(shared, "big", 1, shares=6000)  # fills 600 a minute: open across the kill
            time.sleep(0.1)
            procs.kill9(executor)
            executor = start_executor()
            ids += send_burst(shared, "d", 6)

            def all_final() -> bool:
                res = results(shared).results
                return all(s in res and res[s].status.is_final for s in ids)

            assert procs.wait_for(all_final, 60), (root / "executor.log").read_text()[-3000:]
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
