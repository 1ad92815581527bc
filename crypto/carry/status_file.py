"""The carry engine's status file, ``carry_status.json`` in its state dir: what the dashboard's carry page shows.

The engine is its one writer (``CarryStatusPublisher.publish`` at the end of every ``step`` and at
``shutdown``, at most once per ``min_interval_s`` of wall time, and always on shutdown); the write is atomic
(``shared_schema.atomic_io``: temp file in the same folder, fsync, ``os.replace``), so a reader sees the old
file or the new one. Readers use ``CarryStatusReader``, which keeps the last good view when the file is
missing, partial or invalid and says which of those happened.

The file holds, per pair: the machine's state, both legs (spot long, perp short), funding booked, the
short's margin health at the last mark next to the risk thresholds (top-up under 80 %, close-all under 50 %),
the liquidation price; for the engine: the risk state, the circuit breaker against its limits, and the most
recent audited actions (state transitions, top-ups, funding settlements, closes, breaker trips), taken from
the engine's own audit log as it grows. A failure to publish is logged and counted, never raised: the
dashboard's file must not stop the engine.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from crypto.carry import decisions as dec
from crypto.carry.config import CarryConfig
from shared_schema.atomic_io import ModelFileReader, ReadOutcome, atomic_write_model

log = logging.getLogger(__name__)

CARRY_STATUS_FILE = "carry_status.json"
STATUS_KIND = "gridbridge.carry_status/1"
AUDIT_FILE = "audit.jsonl"
# Audit codes the page lists as actions; hourly snapshots, order lines and signals are the gate's, not an
# operator's "what did the engine do".
ACTION_CODES = frozenset({
    "CARRY_STATE_CHANGE", "CARRY_MARGIN_TOPUP", "CARRY_FUNDING_SETTLED", "CARRY_REBALANCED", "CARRY_CLOSE",
    "CARRY_BREAKER_TRIPPED", "CARRY_LEG_UNWOUND", "CARRY_NAKED_EXPOSURE", "CARRY_LIQUIDATED",
    "CARRY_OPEN_REFUSED", "RISK_STATE_CHANGE", "RISK_DUST_LOCKED", "EXEC_PROTECTIVE_ATTACHED",
    "EXEC_PROTECTIVE_ORDER_MISSING", "EXEC_RATE_LIMITED", "CONTROL_ACCEPTED", "CONTROL_REJECTED",
})
TAIL_START_BYTES = 256 * 1024  # on (re)start only the end of a long audit log is read for recent actions


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CarryThresholds(_Model):
    """The risk section's lines the page draws margin health and the breaker against."""

    topup_health: Decimal
    topup_target: Decimal
    close_health: Decimal
    disaster_stop_health: Decimal
    topups_enabled: bool
    topup_liq_distance: Decimal | None = None  # also a top-up when the liquidation distance is under this
    topup_liq_target: Decimal | None = None
    max_consecutive_losses: int
    max_daily_loss_usdt: Decimal


class BreakerStatus(_Model):
    tripped: bool
    reason: str
    consecutive_losses: int
    day_loss: Decimal


class CarryPairStatus(_Model):
    """One pair: its machine state, both legs, funding and the short's margin."""

    symbol: str  # the perp (short leg)
    spot_symbol: str
    state: str
    spot_qty: Decimal
    spot_entry: Decimal
    short_qty: Decimal  # base units, >= 0
    perp_entry: Decimal
    leg_gap: Decimal  # |spot - short| / larger leg
    margin: Decimal
    margin_at_open: Decimal
    mark: Decimal | None  # the perp's mark at the engine's last market view
    margin_health: Decimal | None  # None when flat or no mark seen yet
    liq_price: Decimal | None
    liq_distance: Decimal | None = None  # (liquidation price - mark) / mark of the short
    funding: Decimal  # booked on the open position, signed (+ received)
    funding_rate: Decimal | None  # the venue's rate for the coming settlement, as last read
    fees: Decimal
    realized: Decimal
    capital_committed: Decimal
    topups: int
    open_pnl: Decimal | None = None  # marked at the last hourly risk task (engine's own books)
    dust: Decimal
    opened_ms: int
    disaster_stop: bool  # a venue-side stop is on the short
    last_refusal: str


class CarryAction(_Model):
    """One audited action, as the audit log has it."""

    ts: str
    code: str
    severity: str
    symbol: str | None
    cause: str
    data: dict[str, Any]


class CarryStatus(_Model):
    kind: Literal["gridbridge.carry_status/1"] = STATUS_KIND
    written_at: datetime  # wall clock, UTC: how fresh the file is
    engine_ms: int  # the engine's clock (the fake's in a dry run)
    seq: int
    running: bool  # False once the engine shut down cleanly
    risk_state: str
    emergency: bool
    last_exit_clean: bool
    realized_total: Decimal | None = None  # net PnL of the pairs closed so far (the engine's journal)
    breaker: BreakerStatus
    thresholds: CarryThresholds
    pairs: tuple[CarryPairStatus, ...]
    actions: tuple[CarryAction, ...]  # oldest first
    publish_failures: int = 0


class EngineLike(Protocol):
    """What the publisher reads of ``crypto.carry.shell.CarryEngine`` (a Protocol: no import of the shell)."""

    cfg: CarryConfig
    pairs: Mapping[str, Any]
    breaker: Any
    risk_state: Any
    emergency: bool
    last_exit_clean: bool
    realized_total: Decimal
    dir: Path

    def funding_rate_seen(self, symbol: str) -> Decimal | None: ...

    @property
    def clock(self) -> Any: ...


def _health(book: dec.PairBook, mark: Decimal | None) -> Decimal | None:
    if book.is_flat or mark is None:
        return None
    return dec.margin_health(book, mark)


def pair_status(pair: Any, rate: Decimal | None) -> CarryPairStatus:
    """One ``shell.Pair`` as the page shows it (pure: reads the pair's book, mark and dust)."""
    b: dec.PairBook = pair.b
    inst = pair.inst
    mark = pair.last_mark
    return CarryPairStatus(
        symbol=inst.symbol, spot_symbol=inst.spot_symbol, state=pair.state.value, spot_qty=b.spot_qty,
        spot_entry=b.spot_entry, short_qty=b.short_qty, perp_entry=b.perp_entry,
        leg_gap=dec.leg_gap(b.spot_qty, b.short_qty), margin=b.margin, margin_at_open=b.margin_at_open,
        mark=mark, margin_health=_health(b, mark), liq_price=dec.liquidation_price(b, inst),
        liq_distance=None if mark is None else dec.liquidation_distance(b, inst, mark), funding=b.funding,
        funding_rate=rate, fees=b.fees, realized=b.realized, capital_committed=b.capital_committed,
        topups=len(b.topup_ids), open_pnl=pair.open_pnl, dust=pair.dust,
        opened_ms=b.opened_ms, disaster_stop=bool(pair.stop_cid),
        last_refusal=pair.last_refusal)


def thresholds_of(cfg: CarryConfig) -> CarryThresholds:
    r = cfg.risk
    return CarryThresholds(topup_health=r.topup_health, topup_target=r.topup_target, close_health=r.close_health,
                           disaster_stop_health=r.disaster_stop_health, topups_enabled=r.topups_enabled,
                           topup_liq_distance=r.topup_liq_distance, topup_liq_target=r.topup_liq_target,
                           max_consecutive_losses=r.max_consecutive_losses,
                           max_daily_loss_usdt=r.max_daily_loss_usdt)


def build_status(engine: EngineLike, written_at: datetime, seq: int, actions: tuple[CarryAction, ...],
                 running: bool = True, publish_failures: int = 0) -> CarryStatus:
    """The status of ``engine`` now (no IO: the wall time and the actions are handed in)."""
    pairs = [pair_status(p, engine.funding_rate_seen(symbol)) for symbol, p in engine.pairs.items()]
    b = engine.breaker
    return CarryStatus(
        written_at=written_at, engine_ms=int(engine.clock.now_ms()), seq=seq, running=running,
        risk_state=engine.risk_state.value, emergency=engine.emergency, last_exit_clean=engine.last_exit_clean,
        realized_total=engine.realized_total,
        breaker=BreakerStatus(tripped=b.tripped, reason=b.reason, consecutive_losses=b.consecutive_losses,
                              day_loss=b.day_loss),
        thresholds=thresholds_of(engine.cfg), pairs=tuple(pairs), actions=actions,
        publish_failures=publish_failures)


class AuditTail:
    """The recent actions of a growing audit log: reads only what was appended since the last poll (whole
    lines only: a line being written is read next time); a log that shrank (rotated) is read from the
    start; a line that is not a JSON object is skipped."""

    def __init__(self, path: Path, keep: int = 40, codes: frozenset[str] = ACTION_CODES) -> None:
        self.path = Path(path)
        self.codes = codes
        self.actions: deque[CarryAction] = deque(maxlen=keep)
        self.offset: int | None = None

    def poll(self) -> tuple[CarryAction, ...]:
        skip_first = False
        try:
            size = self.path.stat().st_size
            if self.offset is None:
                self.offset = max(0, size - TAIL_START_BYTES)
                skip_first = self.offset > 0  # started mid-file: the first line is probably cut
            elif size < self.offset:
                self.offset = 0
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(size - self.offset)
        except OSError:
            return tuple(self.actions)
        end = chunk.rfind(b"\n")
        if end < 0:
            return tuple(self.actions)
        self.offset += end + 1
        lines = chunk[: end + 1].splitlines()
        for line in lines[1:] if skip_first else lines:
            self._take(line)
        return tuple(self.actions)

    def _take(self, line: bytes) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            return
        if not isinstance(rec, dict) or rec.get("code") not in self.codes:
            return
        data = rec.get("data")
        self.actions.append(CarryAction(ts=str(rec.get("ts", "")), code=str(rec["code"]),
                                        severity=str(rec.get("severity", "")),
                                        symbol=rec.get("symbol") if isinstance(rec.get("symbol"), str) else None,
                                        cause=str(rec.get("cause", "")),
                                        data=data if isinstance(data, dict) else {}))


class CarryStatusPublisher:
    """Writes ``carry_status.json`` for one engine: throttled to ``min_interval_s`` of wall time (a fast dry
    run steps thousands of times a second), forced on shutdown; never raises."""

    def __init__(self, path: Path, audit_path: Path | None = None, min_interval_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.path = Path(path)
        self.tail = AuditTail(audit_path if audit_path is not None else self.path.with_name(AUDIT_FILE))
        self.min_interval_s = min_interval_s
        self.monotonic = monotonic
        self.wall = wall
        self.seq = 0
        self.failures = 0
        self._last: float | None = None

    def publish(self, engine: EngineLike, *, force: bool = False, running: bool = True) -> bool:
        """True when a new file was written."""
        now = self.monotonic()
        if not force and self._last is not None and now - self._last < self.min_interval_s:
            return False
        self._last = now
        try:
            status = build_status(engine, self.wall(), self.seq + 1, self.tail.poll(), running, self.failures)
            atomic_write_model(self.path, status)
        except Exception:  # noqa: BLE001 - the dashboard's file never stops the engine; logged and counted
            self.failures += 1
            log.exception("carry status: could not publish %s", self.path)
            return False
        self.seq += 1
        return True


class CarryStatusReader:
    """The dashboard's side: ``read()`` gives the latest good ``CarryStatus`` and whether it is fresh,
    unchanged, missing or invalid (then the last good one is kept)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / CARRY_STATUS_FILE
        self._reader = ModelFileReader(self.path, CarryStatus)

    def read(self) -> ReadOutcome[CarryStatus]:
        return self._reader.read()
