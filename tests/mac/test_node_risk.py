"""The node under the executor's risk states (shared_pool.json ``risk_state`` / ``halted``)."""

from __future__ import annotations

import pytest

from mac.grid.core import BUY, FUSE_CLOSE, OPEN, SELL, trading_day
from mac.grid.risk_policy import GridRiskPolicy
from mac.node import NodeSettings, StrategyNode, node_settings_from_config
from settings.config import GridbridgeConfig, NodeConfig
from shared_schema.atomic_io import atomic_write_model
from shared_schema.models import POOL_FILE, QUOTE_FILE, PoolFile, Position, Quote, QuoteFile, ResultStatus
from shared_schema.types import ms_to_datetime
from tests.mac.test_node import BASE, CODE, World, run_until_buy

DAY = 240  # bars per synthetic day


class RiskWorld(World):
    """``World`` with a risk state in the pool file and a sellable volume that follows T+1."""

    def __init__(self, root, days: int = 3, seed: int = 5) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.risk_state = "NORMAL"
        self.halted = False
        self.sellable = BASE
        super().__init__(root, days, seed)

    def node(self, policy: GridRiskPolicy | None = None, **settings) -> StrategyNode:
        from settings.grid import default_params

        params = {CODE: default_params(CODE, base_position_shares=BASE)}
        settings.setdefault("risk_policy", policy or GridRiskPolicy())
        return StrategyNode(self.shared, params, NodeSettings(**settings), wall_clock=self.clock, watch_mode="poll")

    def advance(self, n: int = 1) -> None:
        self.i += n
        self.seq += 1
        recent = [self.bar(j) for j in range(max(0, self.i - 300), self.i)]
        last = recent[-1]
        quote = Quote(code=CODE, last=last.c, bid1=last.c, ask1=round(last.c + 0.001, 3),
                      quote_time=ms_to_datetime(last.t), prev_close=float(self.bars.o[0]), bars=recent)
        position = Position(code=CODE, volume=self.volume, can_use_volume=self.sellable, avg_cost=1.0,
                            market_value=0.0)
        atomic_write_model(self.shared / QUOTE_FILE, QuoteFile(seq=self.seq, updated_at=self.clock.now(),
                                                               quotes={CODE: quote}, positions={CODE: position}))
        self.write_pool()

    def write_pool(self) -> None:
        super().write_pool()
        pool = PoolFile.model_validate_json((self.shared / POOL_FILE).read_bytes())
        atomic_write_model(self.shared / POOL_FILE,
                           pool.model_copy(update={"risk_state": getattr(self, "risk_state", "NORMAL"),
                                                   "halted": getattr(self, "halted", False)}))


@pytest.fixture
def world(tmp_path):
    return RiskWorld(tmp_path)


def _buys_until(world: RiskWorld, node: StrategyNode, limit: int) -> list:
    """Run bar by bar to ``limit``, answering every signal REJECTED (so the grid stays at layer 0)."""
    buys = []
    while world.i < limit:
        world.advance()
        for sig in node.run_once():
            if sig.direction.value == BUY:
                buys.append((world.i, sig))
            world.answer(sig.signal_id, ResultStatus.REJECTED)
    return buys


def test_degraded_widen_buys_later_than_normal(tmp_path):
    normal = RiskWorld(tmp_path / "n")
    degraded = RiskWorld(tmp_path / "d")
    degraded.risk_state = "DEGRADED"
    a = _buys_until(normal, normal.node(), 2 * DAY)
    b = _buys_until(degraded, degraded.node(GridRiskPolicy(degraded_step_multiplier=3.0)), 2 * DAY)
    assert a, "the data must trigger buys"
    assert len(b) < len(a)
    assert not b or b[0][0] >= a[0][0]


def test_degraded_block_layer0_refuses_a_new_cycle(world):
    world.risk_state = "DEGRADED"
    node = world.node(GridRiskPolicy(degraded_action="block_layer0"))
    assert _buys_until(world, node, 2 * DAY) == []
    rt = node.runtimes[CODE]
    assert rt.counters["blocked_RISK_DEGRADED_LAYER0"] > 0
    assert any(e.get("kind") == "BUY_BLOCKED" and e.get("detail") == "RISK_DEGRADED_LAYER0" for e in rt.events)
    assert rt.grid.lots == () and rt.outbox == {}  # blocked buys were rolled back locally


def _hold_a_lot(world: RiskWorld, node: StrategyNode):
    """Buy once, fill it, and move to the next trading day so the lot is sellable."""
    buy = run_until_buy(world, node)
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.volume += buy.shares
    world.advance()
    node.run_once()
    lot = node.runtimes[CODE].grid.lots[0]
    assert lot.status == OPEN
    return buy, lot


@pytest.mark.parametrize("state", ["COOLDOWN", "REDUCE_ONLY"])
def test_cooldown_and_reduce_only_only_sell(world, state):
    node = world.node()
    buy, _ = _hold_a_lot(world, node)
    world.risk_state = state
    sent = []
    while world.i < 3 * DAY - 1:
        world.advance()
        if world.i % DAY == 0:
            world.sellable = BASE + buy.shares
        sent += node.run_once()
    assert [s for s in sent if s.direction.value == BUY] == []
    assert node.runtimes[CODE].counters[f"blocked_RISK_{state}"] > 0
    assert all(s.source != f"node:{FUSE_CLOSE}" for s in sent)  # reducing, not closing everything


def test_fuse_closes_sellable_lots_t1_aware_and_buys_nothing(tmp_path):
    world = RiskWorld(tmp_path, seed=3)  # a seed whose next morning is under the take-profit
    node = world.node()
    buy, lot = _hold_a_lot(world, node)
    world.risk_state = "FUSE"
    buy_day = trading_day(world.bar(world.i - 1).t)
    sent = []
    # the rest of the buy day: the lot is not sellable yet (T+1) and less than it is sellable from the base,
    # so nothing closes (with the whole base sellable it would go against the base: see test_core)
    world.sellable = lot.shares - 100
    while trading_day(world.bar(world.i).t) == buy_day:
        world.advance()
        sent += node.run_once()
    assert [s for s in sent if s.source == f"node:{FUSE_CLOSE}"] == []
    # next day: the broker reports it sellable and the close-all sells it, exactly once
    world.sellable = BASE + buy.shares
    for _ in range(5):
        world.advance()
        sent += node.run_once()
    closes = [s for s in sent if s.source == f"node:{FUSE_CLOSE}"]
    assert [(c.direction.value, c.shares, c.release_client_order_ids) for c in closes] == [
        (SELL, lot.shares, [lot.client_order_id])
    ]
    assert [s for s in sent if s.direction.value == BUY] == []
    # an expired close is offered again on a later bar
    world.answer(closes[0].signal_id, ResultStatus.EXPIRED)
    for _ in range(2):
        world.advance()
        sent += node.run_once()
    assert len([s for s in sent if s.source == f"node:{FUSE_CLOSE}"]) == 2


def test_fuse_close_never_sells_the_base_position(world):
    node = world.node()
    _hold_a_lot(world, node)
    world.risk_state = "FUSE"
    # the venue holds only the base (the books still show a lot): selling anything would cut into the base
    world.sellable = BASE
    world.volume = BASE
    sent = []
    for _ in range(DAY + 5):
        world.advance()
        sent += node.run_once()
    assert [s for s in sent if s.direction.value == SELL and s.source == f"node:{FUSE_CLOSE}"] == []


def test_node_settings_take_the_policy_from_the_config():
    config = GridbridgeConfig(node=NodeConfig(degraded_action="block_layer0", degraded_step_multiplier=2.0))
    settings = node_settings_from_config(config)
    assert settings.risk_policy == GridRiskPolicy(degraded_action="block_layer0", degraded_step_multiplier=2.0)
    assert node_settings_from_config(GridbridgeConfig()).risk_policy == GridRiskPolicy()
