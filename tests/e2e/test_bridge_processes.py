"""The real producer and executor processes on a temp shared folder, driven by ``gridbridge signal``."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, PoolFile, ResultFile
from shared_schema.signal_io import update_signal_file
from tests.kit import procs
from tests.kit.stubs import make_signal, random_walk_bars, write_bars_csv

pytestmark = pytest.mark.slow

CONFIG = {
    # The venue charges three times the executor's fee estimate, so used can only match the venue's cash
    # if the vault books the commission the venue reports, not its own estimate.
    "paper": {
        "initial_cash": "1000000",
        "initial_positions": {"512890.SH": 200000, "159201.SZ": 200000},
        "commission_rate": "0.0003",
    },
    # The market moves one bar per executor turn while there is work (tests.kit.paced_producer): these process
    # tests (about restarts, not ages) give signals a day. heartbeat_s: every turn rewrites the pool file the
    # producer paces on.
    "executor": {"poll_interval_s": 0.02, "max_signal_age_s": 86400, "commission_estimate_rate": "0.0001",
                 "heartbeat_s": 0.02},
}


class Bridge:
    """A producer and an executor process on one temp shared folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shared, self.state = root / "shared", root / "state"
        self.shared.mkdir()
        self.cfg = root / "config.json"
        self.cfg.write_text(json.dumps(CONFIG))
        b1 = write_bars_csv(root / "512890.csv", random_walk_bars(2, seed=3, start_price=1.1))
        b2 = write_bars_csv(root / "159201.csv", random_walk_bars(2, seed=4, start_price=1.3))
        # The market moves on the executor's progress and only while it has work (tests.kit.paced_producer):
        # a slow machine sees the same bars per executor turn and per signal as a fast one.
        self.producer = procs.start_module("tests.kit.paced_producer", str(self.shared), str(self.cfg),
                                           f"512890.SH={b1}", f"159201.SZ={b2}", log=root / "producer.log")
        assert procs.wait_for(lambda: (self.shared / QUOTE_FILE).exists(), 60)
        self.executor = self.start_executor()

    def start_executor(self):
        self.executor = procs.start(
            "executor",
            "--shared-dir",
            str(self.shared),
            "--state-dir",
            str(self.state),
            "--config",
            str(self.cfg),
            "--watch",
            "poll",
            log=self.root / "executor.log",
        )
        return self.executor

    def close(self) -> None:
        procs.stop(self.producer)
        procs.stop(self.executor)


@pytest.fixture
def bridge(tmp_path):
    b = Bridge(tmp_path)
    yield b
    b.close()


def results(shared: Path) -> ResultFile:
    return ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())


def placed(state: Path) -> list[dict]:
    path = state / "paper" / "paper_orders.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def broker_orders(state: Path) -> dict:
    return json.loads((state / "paper" / "paper_broker_state.json").read_text())["orders"]


def test_signals_through_real_processes(bridge):
    shared, state = bridge.shared, bridge.state
    quote = json.loads((shared / QUOTE_FILE).read_text())["quotes"]["512890.SH"]
    ask = quote["ask1"]
    out = procs.run(
        "signal",
        "--shared-dir",
        str(shared),
        "--config",
        str(bridge.cfg),
        "--code",
        "512890.SH",
        "--direction",
        "BUY",
        "--price",
        f"{ask + 0.01:.3f}",
        "--shares",
        "1000",
        "--layer-index",
        "1",
        "--signal-id",
        "buy-1",
    )
    assert out.returncode == 0, out.stderr
    procs.run(
        "signal",
        "--shared-dir",
        str(shared),
        "--config",
        str(bridge.cfg),
        "--code",
        "512890.SH",
        "--direction",
        "BUY",
        "--price",
        f"{ask:.3f}",
        "--shares",
        "150",
        "--signal-id",
        "bad-lot",
    )
    assert procs.wait_for(lambda: results(shared).results["buy-1"].status.value == "FILLED", 30,
                          progress=lambda: results(shared).seq)
    out = procs.run(
        "signal",
        "--shared-dir",
        str(shared),
        "--config",
        str(bridge.cfg),
        "--code",
        "512890.SH",
        "--direction",
        "SELL",
        "--price",
        "1.000",
        "--shares",
        "1000",
        "--signal-id",
        "sell-base",
    )
    assert out.returncode == 0
    assert procs.wait_for(lambda: results(shared).results["sell-base"].status.value == "FILLED", 30,
                          progress=lambda: results(shared).seq)
    assert procs.wait_for(lambda: results(shared).results["bad-lot"].status.value == "REJECTED", 30,
                          progress=lambda: results(shared).seq)
    res = results(shared).results
    assert res["bad-lot"].reason.value == "INVALID_SIGNAL"
    pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
    orders = broker_orders(state)
    # used is the cash that left the account for the lot: the venue's fill value plus its commission.
    buy = orders["buy-1"]
    assert buy["fees_fen"] > 0
    assert pool.used_512890 * 100 == buy["filled_value_fen"] + buy["fees_fen"]
    assert pool.frozen_512890 == 0
    assert {p["client_order_id"] for p in placed(state)} == {"buy-1", "sell-base"}
    status = procs.run("status", "--shared-dir", str(shared), "--json")
    assert json.loads(status.stdout)["pool"]["used"]["512890.SH"] == float(pool.used_512890)


def test_kill_minus_nine_mid_burst_loses_nothing_and_sends_nothing_twice(bridge):
    shared, state = bridge.shared, bridge.state
    quote = json.loads((shared / QUOTE_FILE).read_text())["quotes"]
    ids = []
    for i in range(60):
        code = "512890.SH" if i % 2 else "159201.SZ"
        ask = quote[code]["ask1"]
        direction = "BUY" if i % 3 else "SELL"
        price = f"{ask * 1.02:.3f}" if direction == "BUY" else f"{ask * 0.98:.3f}"
        sig = make_signal(
            signal_id=f"burst-{i}",
            code=code,
            direction=direction,
            price=price,
            shares=100 * (1 + i % 5),
            layer_index=1 + i % 8,
            created_at=quote[code]["quote_time"],
        )
        update_signal_file(shared, sig.created_at, add=[sig])
        ids.append(sig.signal_id)
        if i in (15, 35):
            time.sleep(0.05)
            procs.kill9(bridge.executor)
            bridge.start_executor()
    assert procs.wait_for(lambda: all(results(shared).results[s].status.is_final for s in ids), 30,
                          progress=lambda: results(shared).seq), _pending(
        shared, ids
    )
    final = results(shared).results
    assert set(ids) <= set(final)
    counts = Counter(p["client_order_id"] for p in placed(state))
    assert all(n == 1 for n in counts.values()), counts
    # The vault equals the venue's truth: every grid BUY's used is the cash that left the account for it,
    # the fill value plus the commission as the venue charged it.
    pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
    orders = broker_orders(state)
    for alloc in pool.allocations_159201 + pool.allocations_512890:
        venue = orders[alloc.client_order_id]
        assert alloc.frozen == 0
        assert venue["fees_fen"] > 0
        assert alloc.used * 100 == venue["filled_value_fen"] + venue["fees_fen"]
    filled_buys = {s for s in ids if final[s].status.value == "FILLED" and final[s].direction.value == "BUY"}
    assert {a.client_order_id for a in pool.allocations_159201 + pool.allocations_512890} == filled_buys


def _pending(shared, ids):
    res = results(shared).results
    return {s: res[s].status.value for s in ids if s not in res or not res[s].status.is_final}
