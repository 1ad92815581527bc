"""The engines' status files: what the carry dry run and the pm service publish equals their own state; the
writers are atomic, throttled and never raise; the readers keep the last good view."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.carry.status_file import CARRY_STATUS_FILE, AuditTail, CarryStatusPublisher, CarryStatusReader
from crypto.pm.status_file import PM_STATUS_FILE, PmStatusPublisher, PmStatusReader
from shared_schema.atomic_io import ReadStatus
from tests.mac.dashboard_crypto import fixtures as fx


def test_carry_dry_run_publishes_the_engines_final_state(tmp_path: Path) -> None:
    state = tmp_path / "carry"
    printed = fx.run_carry_dry_run(state, days=3)
    final = json.loads(printed[printed.index("{\n"):])  # the dry run's JSON summary (engine.status())
    outcome = CarryStatusReader(state).read()
    assert outcome.status == ReadStatus.FRESH
    s = outcome.model
    assert s is not None and not s.running  # written by shutdown, last
    [pair] = s.pairs
    book = final["pairs"][pair.symbol]["book"]
    assert pair.state == final["pairs"][pair.symbol]["state"] == "HEDGING"
    assert pair.funding == D(book["funding"])  # exact, the engine's own Decimal
    assert (pair.short_qty, pair.spot_qty, pair.margin) == (D(book["short_qty"]), D(book["spot_qty"]),
                                                            D(book["margin"]))
    assert pair.mark is not None and pair.margin_health is not None and D("0.5") < pair.margin_health < D("1.5")
    assert pair.liq_price is not None and pair.liq_distance == (pair.liq_price - pair.mark) / pair.mark
    assert (s.thresholds.topup_health, s.thresholds.close_health) == (D("0.80"), D("0.50"))
    assert s.breaker.tripped is False and s.risk_state == final["risk_state"]
    assert s.realized_total == 0 and pair.open_pnl is not None  # no pair closed in 3 calm days; marked hourly
    transitions = [(a.data["from"], a.data["to"]) for a in s.actions if a.code == "CARRY_STATE_CHANGE"]
    assert transitions == [("IDLE", "OPENING"), ("OPENING", "HEDGING")]
    assert sum(a.code == "CARRY_FUNDING_SETTLED" for a in s.actions) >= 8  # 3 days of 8 h settlements
    assert not [p for p in state.iterdir() if p.name.startswith(".tmp-")]  # no temp file left behind


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_carry_publisher_is_throttled_forced_on_shutdown_and_never_raises(tmp_path: Path) -> None:
    from crypto.carry.config import CarryConfig
    from crypto.carry.shell import CarryEngine
    from crypto.fakex.direct_venue import DirectVenue
    from crypto.fakex.engine.exchange import Exchange

    x = Exchange.create(seed=1, scenario="calm")
    engine = CarryEngine(DirectVenue(x), CarryConfig(), tmp_path / "s", clock=x, wait=x.clock.advance, fsync=False)
    ticks = Ticks()
    pub = CarryStatusPublisher(tmp_path / "s" / CARRY_STATUS_FILE, min_interval_s=1.0, monotonic=ticks)
    assert pub.publish(engine) is True
    assert pub.publish(engine) is False  # within the interval
    ticks.t = 1.0
    assert pub.publish(engine) is True
    assert pub.publish(engine, force=True, running=False) is True
    assert CarryStatusReader(tmp_path / "s").read().model.seq == 3  # type: ignore[union-attr]
    broken = CarryStatusPublisher(tmp_path / "no" / "such" / CARRY_STATUS_FILE)
    assert broken.publish(engine) is False and broken.failures == 1  # logged and counted, never raised


def test_audit_tail_reads_whole_lines_only_and_survives_rotation_and_garbage(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    line = json.dumps({"ts": "t1", "code": "CARRY_STATE_CHANGE", "severity": "INFO", "symbol": "X", "cause": "c",
                       "data": {"from": "IDLE", "to": "OPENING"}}).encode()
    log.write_bytes(line[:20])  # a line being written
    tail = AuditTail(log)
    assert tail.poll() == ()
    log.write_bytes(line + b"\nnot json\n" + json.dumps({"code": "EQUITY_SNAPSHOT"}).encode() + b"\n")
    assert [a.data["to"] for a in tail.poll()] == ["OPENING"]  # garbage and snapshots skipped
    log.write_bytes(line.replace(b"OPENING", b"HEDGING") + b"\n")  # rotated: a shorter new file
    assert [a.data["to"] for a in tail.poll()] == ["OPENING", "HEDGING"]


def test_audit_tail_started_mid_file_skips_the_cut_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crypto.carry.status_file as sf

    monkeypatch.setattr(sf, "TAIL_START_BYTES", 40)
    log = tmp_path / "audit.jsonl"
    rec = {"ts": "t", "code": "CARRY_CLOSE", "severity": "INFO", "cause": "x", "data": {"reason": "TAKE_PROFIT"}}
    log.write_text(json.dumps(rec) + "\n" + json.dumps(rec | {"cause": "last"}) + "\n")
    assert [a.cause for a in AuditTail(log).poll()] == []  # only a cut line within the last 40 bytes


def test_pm_service_publishes_its_slis_positions_and_events(tmp_path: Path) -> None:
    with fx.redis_server(tmp_path / "redis") as url:
        service = fx.run_pm(tmp_path / "pm", url)
        snapshot = service.manager.slis.snapshot()
        [pos_id] = service.manager.state.active_ids()
        stop = service.manager.state.stop_level(pos_id)
        outcome = PmStatusReader(tmp_path / "pm").read()
        s = outcome.model
        assert outcome.status == ReadStatus.FRESH and s is not None and not s.running
        assert s.slis.model_dump() == snapshot
        assert snapshot["stop_moves"] >= 3 and snapshot["take_profits"] == 1 and snapshot["treasury_transfer_count"] == 1
        [pos] = s.positions
        assert (pos.pos_id, pos.stop, pos.ladder_fired, pos.ladder_rungs) == (pos_id, stop, (0,), 2)
        assert pos.stop_on_venue and pos.qty == D("0.25")  # half taken at the first rung
        kinds = [e.type for e in s.events]
        assert kinds[0] == "ENTRY" and "TP_PARTIAL" in kinds and kinds.count("STOP_MOVE") >= 3  # oldest first
        # Redis goes away: the SLIs are still published, the positions are the last file's, flagged.
        publisher = service.status
    publisher.publish(service, force=True)
    after = PmStatusReader(tmp_path / "pm").read().model
    assert after is not None and after.redis_ok is False and after.retry_queue is None
    assert after.positions == s.positions and after.events == s.events and after.seq == s.seq + 1


def test_pm_publisher_never_raises(tmp_path: Path) -> None:
    class Broken:
        manager = None

    pub = PmStatusPublisher(tmp_path / PM_STATUS_FILE)
    assert pub.publish(Broken()) is False and pub.failures == 1
    assert not (tmp_path / PM_STATUS_FILE).exists()


def test_readers_keep_the_last_good_view(tmp_path: Path) -> None:
    from shared_schema.atomic_io import atomic_write_model

    reader = CarryStatusReader(tmp_path)
    assert reader.read().status == ReadStatus.MISSING
    good = fx.carry_status()
    atomic_write_model(tmp_path / CARRY_STATUS_FILE, good)
    assert reader.read().model == good
    (tmp_path / CARRY_STATUS_FILE).write_text('{"kind": "gridbridge.carry_status/1", "seq"')  # partial
    bad = reader.read()
    assert bad.status == ReadStatus.INVALID and bad.model == good
    (tmp_path / CARRY_STATUS_FILE).unlink()
    gone = reader.read()
    assert gone.status == ReadStatus.MISSING and gone.model == good
