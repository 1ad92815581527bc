"""The position manager's status file, ``pm_status.json`` beside its snapshot store: what the dashboard's
position-manager page shows.

The service is its one writer (``PmStatusPublisher.publish`` after every ``PmService.step``, at most once per
``min_interval_s`` of wall time, and once more when ``serve`` stops); the write is atomic
(``shared_schema.atomic_io``: temp file in the same folder, fsync, ``os.replace``). Readers use
``PmStatusReader``, which keeps the last good view when the file is missing, partial or invalid.

The file holds the SLIs (``crypto.pm.sli``) next to their SLOs (end-to-end order p95 <= 800 ms against the
fake, stop-move success >= 99 %), the open positions with their stop level, ladder rungs fired and add-ons,
and the most recent position events from the Redis streams (``pos:events:{SYMBOL}``). A failure to publish
(Redis down included: the positions then come from the last good file) is logged and counted, never raised.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, cast

import redis
from pydantic import BaseModel, ConfigDict

from crypto.pm.decisions import ManagedPosition
from shared_schema.atomic_io import ModelFileReader, ReadOutcome, atomic_write_model

log = logging.getLogger(__name__)

PM_STATUS_FILE = "pm_status.json"
STATUS_KIND: Final = "gridbridge.pm_status/1"
SLO_ORDER_P95_MS = Decimal(800)  # end-to-end order latency p95, against the fake
SLO_STOP_MOVE_SUCCESS = Decimal("0.99")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PmSlis(_Model):
    """``Slis.snapshot()``: latency in ms, rates as fractions (None before the first sample)."""

    order_p95_ms: float | None
    orders_measured: int
    stop_move_success_rate: float | None
    stop_moves: int
    take_profit_success_rate: float | None
    take_profits: int
    stagnated_count: int
    treasury_transfer_count: int
    treasury_transfer_success_rate: float | None


class PmSlos(_Model):
    order_p95_ms_max: Decimal = SLO_ORDER_P95_MS
    stop_move_success_min: Decimal = SLO_STOP_MOVE_SUCCESS


class PmPositionStatus(_Model):
    pos_id: str
    symbol: str
    kind: str
    direction: int
    qty: Decimal
    q0: Decimal
    entry: Decimal
    margin: Decimal
    mark: Decimal | None
    stop: Decimal | None
    stop_on_venue: bool  # a reduce-only stop order is live for it (swap); spot stops are guard stops
    ladder_fired: tuple[int, ...]
    ladder_rungs: int
    add_count: int
    add_cap: int
    adds_qty: Decimal
    best_roe: Decimal
    realised_pnl: Decimal
    stagnated: bool
    opened_ms: int


class PmEvent(_Model):
    ts_ms: int
    symbol: str
    pos_id: str
    type: str
    data: dict[str, str]


class PmStatus(_Model):
    kind: Literal["gridbridge.pm_status/1"] = STATUS_KIND
    written_at: datetime  # wall clock, UTC
    clock_ms: int  # the service's clock (the fake's when it runs its own)
    seq: int
    running: bool
    redis_ok: bool
    retry_queue: int | None
    service_errors: int
    config_version: str
    slis: PmSlis
    slos: PmSlos = PmSlos()
    positions: tuple[PmPositionStatus, ...]
    events: tuple[PmEvent, ...]  # oldest first
    publish_failures: int = 0


def position_status(pos: ManagedPosition, mark: Decimal | None, ladder_rungs: int, add_cap: int) -> PmPositionStatus:
    return PmPositionStatus(
        pos_id=pos.pos_id, symbol=pos.symbol, kind=pos.kind, direction=pos.direction, qty=pos.qty, q0=pos.q0,
        entry=pos.entry, margin=pos.margin, mark=mark, stop=pos.stop, stop_on_venue=bool(pos.stop_coid),
        ladder_fired=tuple(pos.ladder_fired), ladder_rungs=ladder_rungs, add_count=pos.add_count, add_cap=add_cap,
        adds_qty=pos.adds_qty, best_roe=pos.best_roe, realised_pnl=pos.realised_pnl, stagnated=pos.stagnated,
        opened_ms=pos.opened_ms)


def recent_events(r: Any, keep: int, per_stream: int = 50) -> tuple[PmEvent, ...]:
    """The last ``keep`` events over every ``pos:events:*`` stream, oldest first."""
    out: list[PmEvent] = []
    for key in r.scan_iter("pos:events:*", count=500):
        symbol = str(key).removeprefix("pos:events:")
        # Newest ``per_stream`` of each stream, put oldest first so that the stable sort keeps the order of
        # events written in the same millisecond.
        for _id, fields in reversed(cast(Any, r).xrevrange(key, count=per_stream)):
            try:
                data = json_obj(fields.get("data", "{}"))
                out.append(PmEvent(ts_ms=int(fields.get("ts", 0)), symbol=symbol, pos_id=str(fields.get("pos_id", "")),
                                   type=str(fields.get("type", "")), data={k: str(v) for k, v in data.items()}))
            except (ValueError, TypeError):
                continue  # one odd entry does not hide the others
    out.sort(key=lambda e: e.ts_ms)
    return tuple(out[-keep:])


def json_obj(raw: Any) -> dict[str, Any]:
    value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return value if isinstance(value, dict) else {}


def build_status(service: Any, written_at: datetime, seq: int, keep_events: int = 50, running: bool = True,
                 publish_failures: int = 0, previous: PmStatus | None = None) -> PmStatus:
    """The status of a ``PmService`` now: its manager's SLIs and config, the open positions and recent events
    from Redis. With Redis down, ``redis_ok`` is False and the positions and events are ``previous``'s (the
    last published), so the page shows them as of then instead of an empty book."""
    m = service.manager
    cfg = m.cfg
    state = m.state
    marks: dict[str, Decimal] = {s: v.mark for s, v in service.feed.last.items()}
    try:
        positions = []
        for pos_id in state.active_ids():
            pos = m.position(pos_id)  # a corrupt Redis document: from the store (audited once)
            if pos is None or pos.closed:
                continue
            positions.append(position_status(pos, marks.get(pos.symbol), len(cfg.ladder), cfg.add_on.cap))
        kept: tuple[PmPositionStatus, ...] = tuple(positions)
        events = recent_events(state.r, keep_events)
        retry: int | None = state.retry_len()
        redis_ok = True
    except redis.RedisError:
        kept = previous.positions if previous is not None else ()
        events = previous.events if previous is not None else ()
        retry, redis_ok = None, False
    return PmStatus(
        written_at=written_at, clock_ms=int(service.clock_ms()), seq=seq, running=running, redis_ok=redis_ok,
        retry_queue=retry, service_errors=int(service.errors), config_version=str(cfg.version),
        slis=PmSlis(**m.slis.snapshot()), positions=kept, events=events, publish_failures=publish_failures)


class PmStatusPublisher:
    """Writes ``pm_status.json`` for one service: throttled to ``min_interval_s`` of wall time, forced at the
    end; never raises. With Redis down it still writes the SLIs, flagged ``redis_ok`` False, with the
    positions of the last file it wrote."""

    def __init__(self, path: Path, min_interval_s: float = 1.0, keep_events: int = 50,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self.keep_events = keep_events
        self.monotonic = monotonic
        self.wall = wall
        self.seq = 0
        self.failures = 0
        self._last: float | None = None
        self._previous: PmStatus | None = None

    def publish(self, service: Any, *, force: bool = False, running: bool = True) -> bool:
        now = self.monotonic()
        if not force and self._last is not None and now - self._last < self.min_interval_s:
            return False
        self._last = now
        try:
            status = build_status(service, self.wall(), self.seq + 1, self.keep_events, running, self.failures,
                                  self._previous)
            atomic_write_model(self.path, status)
        except Exception:  # noqa: BLE001 - the dashboard's file never stops the service; logged and counted
            self.failures += 1
            log.exception("pm status: could not publish %s", self.path)
            return False
        self.seq += 1
        self._previous = status
        return True


class PmStatusReader:
    """The dashboard's side: the latest good ``PmStatus`` and whether it is fresh, unchanged, missing or
    invalid (then the last good one is kept)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / PM_STATUS_FILE
        self._reader = ModelFileReader(self.path, PmStatus)

    def read(self) -> ReadOutcome[PmStatus]:
        return self._reader.read()
