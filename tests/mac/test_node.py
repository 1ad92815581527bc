"""The strategy node as a process shell: results, restarts, reconciliation, stale data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from backtest.synth import generate
from mac.grid.core import BUY, OPEN
from mac.node import NodeSettings, StrategyNode, state_file
from settings.grid import default_params
from shared_schema.atomic_io import atomic_write_model
from shared_schema.clock import ManualClock
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    Bar,
    PoolFile,
    Position,
    Quote,
    QuoteFile,
    Result,
    ResultFile,
    ResultStatus,
)
from shared_schema.types import CST, ms_to_datetime

CODE = "512890.SH"
BASE = 100_000
WALL = datetime(2026, 1, 5, 9, 0, tzinfo=CST)


class World:
    """Hand-made shared files around one node."""

    def __init__(self, root: Path, days: int = 2, seed: int = 5) -> None:
        self.shared = root
        self.bars = generate(CODE, days, seed)
        self.clock = ManualClock(WALL)
        self.i = 0
        self.seq = 0
        self.volume = BASE
        self.utilization = 0.1
        self.results: dict[str, Result] = {}
        self.write_pool()
        self.write_results()

    def node(self, **settings) -> StrategyNode:
        params = {CODE: default_params(CODE, base_position_shares=BASE)}
        return StrategyNode(self.shared, params, NodeSettings(**settings), wall_clock=self.clock, watch_mode="poll")

    def bar(self, i: int) -> Bar:
        b = self.bars
        return Bar(t=int(b.t[i]), o=float(b.o[i]), h=float(b.h[i]), l=float(b.l[i]), c=float(b.c[i]), v=float(b.v[i]))

    def advance(self, n: int = 1) -> None:
        self.i += n
        self.seq += 1
        recent = [self.bar(j) for j in range(max(0, self.i - 300), self.i)]
        last = recent[-1]
        quote = Quote(code=CODE, last=last.c, bid1=last.c, ask1=round(last.c + 0.001, 3), quote_time=ms_to_datetime(last.t),
                      prev_close=float(self.bars.o[0]), bars=recent)
        position = Position(code=CODE, volume=self.volume, can_use_volume=BASE, avg_cost=1.0, market_value=0.0)
        atomic_write_model(self.shared / QUOTE_FILE, QuoteFile(seq=self.seq, updated_at=self.clock.now(),
                                                               quotes={CODE: quote}, positions={CODE: position}))
        self.write_pool()

    def write_pool(self) -> None:
        used = Decimal(int(300000 * self.utilization))
        atomic_write_model(self.shared / POOL_FILE, PoolFile(
            seq=self.seq + 1, updated_at=self.clock.now(), physical_pool=Decimal(300000), reserve_ratio=Decimal("0.15"),
            nominal_cap_159201=Decimal(200000), nominal_cap_512890=Decimal(200000), used_159201=used,
            used_512890=Decimal(0), frozen_159201=Decimal(0), frozen_512890=Decimal(0),
            acc_alpha_159201=Decimal(0), acc_alpha_512890=Decimal(0), utilization=self.utilization))

    def write_results(self) -> None:
        atomic_write_model(self.shared / RESULT_FILE, ResultFile(seq=self.seq + 1, updated_at=self.clock.now(),
                                                                 results=self.results))

    def answer(self, signal_id: str, status: ResultStatus, filled: int = 0, price: float = 0.0) -> None:
        self.results[signal_id] = Result(signal_id=signal_id, status=status, filled_shares=filled, avg_price=price,
                                         updated_at=self.clock.now())
        self.write_results()

    def signals_in_file(self) -> list[dict]:
        path = self.shared / SIGNAL_FILE
        return json.loads(path.read_text())["signals"] if path.exists() else []


def run_until_buy(world: World, node: StrategyNode, limit: int = 480):
    while world.i < limit:
        world.advance()
        sent = node.run_once()
        buys = [s for s in sent if s.direction.value == BUY]
        if buys:
            return buys[0]
    raise AssertionError("no buy in the data")


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def test_node_writes_a_signal_and_folds_the_fill(world):
    node = world.node()
    buy = run_until_buy(world, node)
    assert buy.signal_id in {s["signal_id"] for s in world.signals_in_file()}
    assert buy.expires_at > buy.created_at and len(buy.client_order_id) <= 24
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.volume += buy.shares
    world.advance()
    node.run_once()
    lot = node.runtimes[CODE].grid.lots[0]
    assert lot.status == OPEN and lot.shares == buy.shares
    assert world.signals_in_file() == []  # final results are pruned by the writer


def test_rejected_buy_rolls_the_lot_back(world):
    node = world.node()
    buy = run_until_buy(world, node)
    world.answer(buy.signal_id, ResultStatus.REJECTED)
    world.advance()
    node.run_once()
    assert all(lot.client_order_id != buy.signal_id for lot in node.runtimes[CODE].grid.lots)


def test_restart_resumes_lots_pending_signals_and_penalty(world):
    node = world.node()
    buy = run_until_buy(world, node)
    world.utilization = 0.95
    world.advance()
    node.run_once()
    before = node.runtimes[CODE]
    assert before.grid.penalty_on
    restarted = world.node()
    after = restarted.runtimes[CODE]
    assert after.grid == before.grid
    assert after.outbox == before.outbox and buy.signal_id in after.outbox
    assert after.last_bar_t == before.last_bar_t


def test_signal_lost_between_state_save_and_file_write_is_offered_again(world):
    node = world.node()
    buy = run_until_buy(world, node)
    (world.shared / SIGNAL_FILE).unlink()  # as if the process died before writing it
    restarted = world.node()
    world.advance()
    restarted.run_once()
    assert buy.signal_id in {s["signal_id"] for s in world.signals_in_file()}


def test_position_mismatch_blocks_new_layers_until_resolved(world):
    node = world.node()
    world.volume = BASE - 500  # Windows says we hold less than the base position
    for _ in range(3):
        world.advance()
        node.run_once()
    runtime = node.runtimes[CODE]
    assert runtime.mismatch
    while world.i < 470:
        world.advance()
        assert [s for s in node.run_once() if s.direction.value == BUY] == []
    assert runtime.counters["blocked_POSITION_MISMATCH"] > 0
    world.volume = BASE
    world.advance()
    node.run_once()
    world.advance()
    node.run_once()
    assert runtime.mismatch == ""


def test_stale_quotes_mean_no_new_buys(world):
    node = world.node(stale_after_s=60)
    world.advance(60)  # before the first buy in this data
    node.run_once()
    world.clock.advance(600)  # the producer stopped writing ten minutes ago
    original = world.clock.now()
    blocked = 0
    while world.i < 480:
        # bars keep arriving but the file's updated_at is old: simulate a frozen producer clock
        world.clock.set(original - timedelta(seconds=600))
        world.advance()
        world.clock.set(original)
        blocked += len([s for s in node.run_once() if s.direction.value == BUY])
    assert blocked == 0
    assert node.runtimes[CODE].counters["blocked_DATA_NOT_OK"] > 0
    assert any("stale" in p for p in node.data_problems)


def test_dashboard_state_file_is_written(world):
    node = world.node()
    run_until_buy(world, node)
    data = json.loads(state_file(world.shared, CODE).read_text())
    assert data["code"] == CODE and data["pending"] and data["history"]
    assert {"atr", "slope", "atr_avg"} <= set(data["indicators"])


def write_quote_with_outlier(world: World, outlier_ms: int, quote_time: datetime | None = None) -> None:
    """The next quote file with one extra bar stamped ``outlier_ms`` after the real ones."""
    world.i += 1
    world.seq += 1
    recent = [world.bar(j) for j in range(max(0, world.i - 300), world.i)]
    last = recent[-1]
    bad = Bar(t=outlier_ms, o=last.c, h=last.c, l=last.c, c=last.c, v=1.0)
    quote = Quote(code=CODE, last=last.c, bid1=last.c, ask1=round(last.c + 0.001, 3),
                  quote_time=quote_time or ms_to_datetime(last.t), prev_close=float(world.bars.o[0]),
                  bars=[*recent, bad])
    position = Position(code=CODE, volume=world.volume, can_use_volume=BASE, avg_cost=1.0, market_value=0.0)
    atomic_write_model(world.shared / QUOTE_FILE, QuoteFile(seq=world.seq, updated_at=world.clock.now(),
                                                            quotes={CODE: quote}, positions={CODE: position}))


def test_a_bar_dated_2099_is_refused_alerted_and_never_moves_the_node_clock(world, caplog):
    from shared_schema.types import datetime_to_ms

    node = world.node()
    world.advance(30)
    node.run_once()
    outlier = datetime_to_ms(datetime(2099, 1, 5, 10, 0, tzinfo=CST))
    write_quote_with_outlier(world, outlier)
    with caplog.at_level("WARNING", logger="gridbridge.node"):
        node.run_once()
    rt = node.runtimes[CODE]
    assert rt.last_bar_t < outlier and rt.last_bar_t == world.bar(world.i - 1).t
    assert [e for e in rt.events if e["kind"] == "QUOTE_REFUSED"]
    assert any("ahead of the wall clock" in r.getMessage() for r in caplog.records)
    # Later bars are still stepped: the grid keeps trading and its signals carry real times.
    buy = run_until_buy(world, node)
    assert buy.created_at < world.clock.now()


def test_a_quote_time_far_ahead_drops_that_quote(world):
    node = world.node()
    world.advance(30)
    node.run_once()
    before = node.runtimes[CODE].last_bar_t
    write_quote_with_outlier(world, world.bar(world.i).t, quote_time=datetime(2099, 1, 5, tzinfo=CST))
    node.run_once()
    assert node.runtimes[CODE].last_bar_t == before  # nothing of that quote was used


def test_bars_a_little_ahead_of_the_wall_clock_are_used(world):
    from shared_schema.types import datetime_to_ms

    node = world.node(max_quote_ahead_s=300)
    world.advance(30)
    node.run_once()
    near = datetime_to_ms(world.clock.now()) + 200_000
    write_quote_with_outlier(world, near)
    node.run_once()
    assert node.runtimes[CODE].last_bar_t == near


# --- issue 10, item 10: a lot the executor sold (forced reduction) leaves the grid -----------------------


def external_sell(world: World, sid: str, lots: list[str], requested: int, filled: int, price: float,
                  status: ResultStatus = ResultStatus.FILLED) -> None:
    world.results[sid] = Result(signal_id=sid, client_order_id=sid, code=CODE, direction="SELL", status=status,
                                requested_shares=requested, filled_shares=filled, avg_price=price,
                                release_client_order_ids=lots, updated_at=world.clock.now())
    world.write_results()


def bought(world: World, node: StrategyNode):
    buy = run_until_buy(world, node)
    world.answer(buy.signal_id, ResultStatus.FILLED, buy.shares, float(buy.price))
    world.volume += buy.shares
    world.advance()
    node.run_once()
    return buy


def test_a_lot_sold_by_the_executor_leaves_the_grid_once_and_no_mismatch_follows(world):
    node = world.node()
    buy = bought(world, node)
    cash = node.runtimes[CODE].grid.cash
    external_sell(world, "RDXABCDEFGH0", [buy.signal_id], buy.shares, buy.shares, 1.0)
    world.volume -= buy.shares
    world.advance()
    node.run_once()
    rt = node.runtimes[CODE]
    assert all(lot.client_order_id != buy.signal_id for lot in rt.grid.lots)
    assert rt.grid.cash > cash  # the proceeds are the grid's cash, as for its own sells
    assert [e for e in rt.events if e["kind"] == "LOT_SOLD_BY_EXECUTOR"]
    for _ in range(3):
        world.advance()
        node.run_once()
    assert not node.runtimes[CODE].mismatch
    restarted = world.node()  # applied once: a restart does not apply it again
    world.advance()
    restarted.run_once()
    assert restarted.runtimes[CODE].grid.cash == node.runtimes[CODE].grid.cash


def test_a_partly_filled_executor_sell_keeps_the_unsold_part_of_the_lot(world):
    node = world.node()
    buy = bought(world, node)
    sold = buy.shares // 2 // 100 * 100
    external_sell(world, "RDXABCDEFGH0", [buy.signal_id], buy.shares, sold, 1.0, ResultStatus.CANCELLED)
    world.volume -= sold
    world.advance()
    node.run_once()
    (lot,) = [lot for lot in node.runtimes[CODE].grid.lots if lot.client_order_id == buy.signal_id]
    assert lot.shares == buy.shares - sold and lot.status == OPEN


def test_an_executor_sell_still_open_or_naming_unknown_lots_changes_nothing(world):
    node = world.node()
    buy = bought(world, node)
    before = node.runtimes[CODE].grid
    external_sell(world, "RDXABCDEFGH0", [buy.signal_id], buy.shares, 0, 0.0, ResultStatus.SENT)
    external_sell(world, "RDXABCDEFGH1", ["GNOTOURS"], 100, 100, 1.0)
    world.advance()
    node.run_once()
    assert node.runtimes[CODE].grid.lots == before.lots
