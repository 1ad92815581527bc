"""The node reads the executor's heartbeat: a quiet market is not stale data, a silent executor is down."""

from __future__ import annotations

import json

from mac.node import state_file
from shared_schema.atomic_io import atomic_write_model
from shared_schema.heartbeat import DOWN_AFTER_HEARTBEATS
from shared_schema.models import POOL_FILE, PoolFile
from tests.mac.test_node import CODE, World


def beat(world: World, heartbeat_s: float) -> None:
    pool = PoolFile.model_validate_json((world.shared / POOL_FILE).read_bytes())
    atomic_write_model(world.shared / POOL_FILE, pool.model_copy(update={
        "seq": pool.seq + 1, "updated_at": world.clock.now(), "heartbeat_s": heartbeat_s}))


def test_a_quiet_market_with_a_beating_executor_never_blocks_for_stale_data(tmp_path):
    world = World(tmp_path)
    node = world.node(stale_after_s=120)
    world.advance(30)
    beat(world, 10.0)
    node.run_once()
    for second in range(1, 6 * 60 + 1):  # six quiet minutes: one new bar a minute, a heartbeat every 10 s
        world.clock.advance(1)
        if second % 60 == 0:
            world.advance()
        if second % 10 == 0:
            beat(world, 10.0)
        node.run_once()
        assert not node.executor_down and not any(POOL_FILE in p or "executor" in p for p in node.data_problems)


def test_a_silent_executor_is_reported_down_within_three_heartbeats_and_back_when_it_beats(tmp_path):
    world = World(tmp_path)
    node = world.node(stale_after_s=120)
    world.advance(30)
    beat(world, 10.0)
    node.run_once()
    waited = 0
    while not node.executor_down:
        world.clock.advance(1)
        waited += 1
        node.run_once()
        assert waited <= 30, node.data_problems
    assert waited == int(DOWN_AFTER_HEARTBEATS * 10) + 1
    assert node._buy_block(node.runtimes[CODE], None, node.data_problems) == "EXECUTOR_DOWN"
    saved = json.loads(state_file(world.shared, CODE).read_text())
    assert saved["executor_down"] is True and saved["events"][-1]["kind"] == "EXECUTOR_DOWN"
    beat(world, 10.0)
    node.run_once()
    assert not node.executor_down
    saved = json.loads(state_file(world.shared, CODE).read_text())
    assert saved["executor_down"] is False and saved["events"][-1]["kind"] == "EXECUTOR_UP"
