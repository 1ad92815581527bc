"""Status files for the crypto pages, made by the engines' own code.

- ``run_carry_dry_run``: the real ``gridbridge crypto carry dry-run`` (in process, the local exchange's model
  on its fast clock); the engine's publisher writes ``carry_status.json`` into the state dir.
- ``run_pm``: the real ``PmService`` (manager, runner, Redis state, snapshot store, the status publisher) over
  a real redis-server, with the pm tests' fake execution port and a small venue whose mark walks up: the
  stop is attached, moved up by the ROE locks, the ladder takes profit, the treasury moves USDT once.
- ``carry_status`` / ``pm_status``: models on hand-picked values for the view-model tests.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from crypto.carry.status_file import (
    STATUS_KIND,
    BreakerStatus,
    CarryAction,
    CarryPairStatus,
    CarryStatus,
    CarryThresholds,
)
from crypto.pm.status_file import PmEvent, PmPositionStatus, PmSlis, PmStatus
from crypto.venue.types import Market, Position

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
SYM = "BTC/USDT:USDT"


def run_carry_dry_run(state: Path, days: float = 3, scenario: str = "calm") -> str:
    """The carry dry run through its CLI entry point; returns what it printed (the engine's final status)."""
    from crypto.carry.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["dry-run", "--days", str(days), "--state", str(state), "--scenario", scenario])
    assert code == 0, out.getvalue()[-2000:]
    return out.getvalue()


class WalkingVenue:
    """A venue with one long swap position whose mark the test moves; the size follows the fake port's
    filled reduce-only market orders (the ladder's take-profits), as a venue's would."""

    def __init__(self, clock: Any, port: Any, qty: D = D("0.5"), entry: D = D(100)) -> None:
        self.clock = clock
        self.port = port
        self.mark = entry
        self.qty0 = qty
        self.entry = entry

    def now_ms(self) -> int:
        return int(self.clock())

    def mark_price(self, symbol: str) -> D:
        return self.mark

    def market(self, symbol: str) -> Market:
        return Market(symbol, "BTC-USDT-SWAP", "swap", "BTC", "USDT", "USDT", D("0.01"), D("0.0001"), D("0.1"),
                      D("0.0001"), D(0))

    def positions(self, symbols: list[str] | None = None) -> list[Position]:
        sold = sum((o.intent.qty for o in self.port.orders.values()
                    if o.status == "closed" and o.intent.type != "stop_market" and o.intent.reduce_only), D(0))
        left = self.qty0 - sold
        if left <= 0:
            return []
        return [Position(SYM, left, self.entry, self.mark, D(70), D(1000) / D(60), D(3), "isolated", D(0))]


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    from tests.crypto.pm.conftest import RedisProcess

    folder.mkdir(parents=True, exist_ok=True)
    server = RedisProcess(folder)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def run_pm(folder: Path, redis_url: str, marks: tuple[str, ...] = ("100", "104", "108", "112", "118", "121")) -> Any:
    """The position manager's service for a few steps on a rising mark; returns the service (its manager's
    SLIs are what the file must show)."""
    from crypto.pm.feed import VenueFeed
    from crypto.pm.service import PmService
    from crypto.pm.status_file import PM_STATUS_FILE, PmStatusPublisher
    from tests.crypto.pm.doubles import FakePort, ManualClock
    from tests.crypto.pm.test_manager import FakeTreasury, build

    folder.mkdir(parents=True, exist_ok=True)
    port, clock = FakePort(), ManualClock()
    manager = build(redis_url, folder / "pm.db", port, clock, treasury=FakeTreasury(D(5000), D(100)))
    venue = WalkingVenue(clock, port)
    # min_interval_s 0: every step writes (the test's steps are few); the service throttles to 1 s live.
    publisher = PmStatusPublisher(folder / PM_STATUS_FILE, min_interval_s=0)
    service = PmService(manager, venue, VenueFeed(venue, clock_ms=clock), clock_ms=clock,  # type: ignore[arg-type]
                        status=publisher)
    for mark in marks:
        venue.mark = D(mark)
        service.step()
        clock.advance(61_000)  # past the manage interval and one ATR bar
    publisher.publish(service, force=True, running=False)
    return service


def carry_status(health: str | None = "0.95", *, running: bool = True, tripped: bool = False,
                 written_at: datetime = NOW, risk_state: str = "NORMAL", topups_enabled: bool = True,
                 liq_distance: str | None = "0.486") -> CarryStatus:
    short = D("0.0823") if health is not None else D(0)
    pair = CarryPairStatus(
        symbol=SYM, spot_symbol="BTC/USDT", state="HEDGING" if health is not None else "IDLE",
        spot_qty=D("0.0822177") if health is not None else D(0), spot_entry=D("60003.1"), short_qty=short,
        perp_entry=D("60002.9"), leg_gap=D("0.001"), margin=D("2473.06"), margin_at_open=D("2469.12"),
        mark=D("60252.8"), margin_health=None if health is None else D(health), liq_price=D("89537.29"),
        liq_distance=None if liq_distance is None else D(liq_distance),
        funding=D("3.9442"), funding_rate=D("0.0001"), fees=D("7.41"), realized=D(0), capital_committed=D("7402.44"),
        topups=1, open_pnl=D("-3.46"), dust=D(0), opened_ms=1767225600000, disaster_stop=True, last_refusal="")
    actions = (
        CarryAction(ts="2026-01-01T00:00:00+00:00", code="CARRY_STATE_CHANGE", severity="INFO", symbol=SYM,
                    cause="both legs filled", data={"from": "OPENING", "to": "HEDGING", "trigger": "LEGS_FILLED"}),
        CarryAction(ts="2026-01-01T08:00:00+00:00", code="CARRY_FUNDING_SETTLED", severity="INFO", symbol=SYM,
                    cause="settlement", data={"amount": "0.49", "rate": "0.0001"}),
    )
    return CarryStatus(
        kind=STATUS_KIND, written_at=written_at, engine_ms=1767456000000, seq=7, running=running,
        risk_state=risk_state, emergency=False, last_exit_clean=True, realized_total=D("-41.5"),
        breaker=BreakerStatus(tripped=tripped, reason="BREAKER_CONSECUTIVE_LOSSES" if tripped else "",
                              consecutive_losses=3 if tripped else 1, day_loss=D("12.5")),
        thresholds=CarryThresholds(topup_health=D("0.80"), topup_target=D("1.00"), close_health=D("0.50"),
                                   disaster_stop_health=D("0.10"), topups_enabled=topups_enabled,
                                   topup_liq_distance=D("0.25"), topup_liq_target=D("0.35"),
                                   max_consecutive_losses=3, max_daily_loss_usdt=D(500)),
        pairs=(pair,), actions=actions)


def pm_status(p95: float | None = 12.0, stop_rate: float | None = 1.0, *, written_at: datetime = NOW,
              redis_ok: bool = True, stop_on_venue: bool = True) -> PmStatus:
    pos = PmPositionStatus(
        pos_id="BTCUSDTUSDT-1700000000000", symbol=SYM, kind="swap", direction=1, qty=D("0.25"), q0=D("0.5"),
        entry=D(100), margin=D("16.67"), mark=D(118), stop=D("109.9"), stop_on_venue=stop_on_venue,
        ladder_fired=(0,), ladder_rungs=2, add_count=1, add_cap=2, adds_qty=D("0.25"), best_roe=D("0.54"),
        realised_pnl=D("4.5"), stagnated=False, opened_ms=1_700_000_000_000)
    return PmStatus(
        written_at=written_at, clock_ms=1_700_000_300_000, seq=4, running=True, redis_ok=redis_ok, retry_queue=0,
        service_errors=0, config_version="1",
        slis=PmSlis(order_p95_ms=p95, orders_measured=7, stop_move_success_rate=stop_rate, stop_moves=3,
                    take_profit_success_rate=1.0, take_profits=1, stagnated_count=0, treasury_transfer_count=1,
                    treasury_transfer_success_rate=1.0),
        positions=(pos,),
        events=(PmEvent(ts_ms=1_700_000_000_000, symbol=SYM, pos_id=pos.pos_id, type="ENTRY", data={"qty": "0.5"}),
                PmEvent(ts_ms=1_700_000_120_000, symbol=SYM, pos_id=pos.pos_id, type="STOP_MOVE",
                        data={"stop": "109.9"})))
