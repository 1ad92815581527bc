from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audit import AuditWriter
from core.events import AuditCode, AuditEvent, Severity
from core.gate import (
    FailReason,
    GateConfig,
    GateStage,
    ShadowEvidence,
    VersionSet,
    evaluate_gate,
    render_json,
    render_markdown,
    trading_days,
)
from core.gate_cli import main as gate_main
from shared_schema.types import CST
from tests.core.stubs import T0

DAYS = 2
END = T0 + timedelta(days=DAYS)
VS = VersionSet("cfg-7", "grid-1.3", "abc123")


def ev(minutes: float, code: AuditCode, **data: Any) -> AuditEvent:
    return AuditEvent(
        ts=T0 + timedelta(minutes=minutes),
        code=code,
        severity=Severity.INFO,
        cause="synthetic",
        symbol="510300",
        data=data,
    )


def healthy() -> list[AuditEvent]:
    """Two days: 30 signals and 6 fills a day, small drawdown, healthy liquidation distance."""
    out = []
    for day in range(DAYS):
        base = day * 1440
        for i in range(30):
            out.append(ev(base + i * 40, AuditCode.SIGNAL_ACCEPTED))
        for i in range(6):
            out.append(ev(base + i * 200, AuditCode.ORDER_SUBMITTED))
            out.append(
                ev(
                    base + i * 200 + 1,
                    AuditCode.ORDER_FILLED,
                    opens=True,
                    risk_state="NORMAL",
                    leverage="1",
                    max_leverage="3",
                )
            )
        out.append(ev(base + 10, AuditCode.EQUITY_SNAPSHOT, equity="100000", liq_distance_p95="0.15"))
        out.append(ev(base + 900, AuditCode.EQUITY_SNAPSHOT, equity="97000", liq_distance_p95="0.12"))
    return out


def test_healthy_log_passes() -> None:
    report = evaluate_gate(healthy(), T0, END, VS)
    assert report.verdict == "PASS", report.fail_reasons
    assert report.kris["fills_per_day"] == 6 and report.kris["effective_signals_per_day"] == 30


def _with(extra: list[AuditEvent]) -> list[AuditEvent]:
    return healthy() + extra


def _drop(code: AuditCode) -> list[AuditEvent]:
    return [e for e in healthy() if e.code is not code]


CASES = {
    FailReason.FAIL_MDD_EXCEEDED: _with([ev(2000, AuditCode.EQUITY_SNAPSHOT, equity="85000")]),
    FailReason.FAIL_LIQ_DISTANCE_LOW: _with(
        [ev(2000, AuditCode.EQUITY_SNAPSHOT, equity="99000", liq_distance_p95="0.07")]
    ),
    FailReason.FAIL_LEVERAGE_VIOLATION: _with(
        [ev(5, AuditCode.ORDER_FILLED, opens=True, leverage="5", max_leverage="3", risk_state="NORMAL")]
    ),
    FailReason.FAIL_REDUCE_ONLY_VIOLATION: _with(
        [ev(5, AuditCode.ORDER_FILLED, opens=True, risk_state="REDUCE_ONLY")]
    ),
    FailReason.FAIL_EXEC_ERROR_RATE: _with([ev(7, AuditCode.ORDER_ERROR)]),
    FailReason.FAIL_REJECT_RATE: _with([ev(7, AuditCode.ORDER_REJECTED)]),
    FailReason.FAIL_DATA_GAP: _with([ev(7, AuditCode.DATA_GAP, seconds=301)]),
    FailReason.FAIL_LOW_ACTIVITY_SIGNALS: _drop(AuditCode.SIGNAL_ACCEPTED),
    FailReason.FAIL_LOW_ACTIVITY_FILLS: _drop(AuditCode.ORDER_FILLED),
    FailReason.FAIL_PROTECTIVE_ORDER_MISSING: _with([ev(7, AuditCode.EXEC_PROTECTIVE_ORDER_MISSING)]),
    FailReason.FAIL_SHADOW_STAGE: healthy(),  # gated as a release without a Shadow stage report
}


@pytest.mark.parametrize("reason", list(FailReason))
def test_each_kri_failure_vetoes(reason: FailReason) -> None:
    stage = GateStage.RELEASE if reason is FailReason.FAIL_SHADOW_STAGE else GateStage.RUN
    report = evaluate_gate(CASES[reason], T0, END, VS, stage=stage)
    assert report.verdict == "FAIL" and reason in report.fail_reasons


def test_no_trading_never_passes() -> None:
    report = evaluate_gate([], T0, END, VS)
    assert report.verdict == "FAIL"
    assert {FailReason.FAIL_LOW_ACTIVITY_SIGNALS, FailReason.FAIL_LOW_ACTIVITY_FILLS} <= set(
        report.fail_reasons
    )


def test_activity_minimum_is_configurable() -> None:
    report = evaluate_gate(_drop(AuditCode.SIGNAL_ACCEPTED), T0, END, VS, GateConfig(min_signals_per_day=0))
    assert report.verdict == "PASS"


def test_renderers() -> None:
    report = evaluate_gate(healthy(), T0, END, VS)
    data = json.loads(render_json(report))
    assert data["verdict"] == "PASS" and data["version_set"]["git"] == "abc123"
    assert "mdd_rolling" in data["kris"] and "**PASS**" in render_markdown(report)


def test_cli_reads_file_and_writes_reports(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with AuditWriter(audit, fsync=False) as w:
        w.extend(healthy())
        w.append(ev(DAYS * 1440 + 5, AuditCode.ORDER_ERROR))  # outside --to: ignored
    args = [
        "--audit",
        str(audit),
        "--from",
        T0.isoformat(),
        "--to",
        END.isoformat(),
        "--stage",
        "run",
        "--git",
        "abc",
        "--out-json",
        str(tmp_path / "g.json"),
        "--out-md",
        str(tmp_path / "g.md"),
    ]
    assert gate_main(args) == 0
    assert json.loads((tmp_path / "g.json").read_text())["verdict"] == "PASS"
    assert (
        gate_main(
            ["--audit", str(tmp_path / "missing.jsonl"), "--from", T0.isoformat(), "--to", END.isoformat()]
        )
        == 1
    )


# ------------------------------------------------------------------------ trading days (issue 10, item 12)

FRI = datetime(2026, 3, 6, tzinfo=CST)  # a Friday, midnight China time


def _activity(days: list[datetime], per_day: int) -> list[AuditEvent]:
    out = []
    for day in days:
        for i in range(per_day):
            at = day + timedelta(hours=10, minutes=i)
            out.append(AuditEvent(at, AuditCode.SIGNAL_ACCEPTED, Severity.INFO, "t", "512890.SH", {}))
            out.append(AuditEvent(at, AuditCode.ORDER_SUBMITTED, Severity.INFO, "t", "512890.SH",
                                  {"client_order_id": f"G{day:%d}{i}"}))
            out.append(AuditEvent(at, AuditCode.ORDER_FILLED, Severity.INFO, "t", "512890.SH", {"opens": False}))
    return out


def test_activity_rates_are_per_trading_day_not_calendar_day() -> None:
    # Friday to Tuesday midnight: four calendar days, two trading days (Friday, Monday), 3 trades on each
    cfg = GateConfig(min_signals_per_day=Decimal(3), min_fills_per_day=Decimal(3))
    end = FRI + timedelta(days=4)
    report = evaluate_gate(_activity([FRI, FRI + timedelta(days=3)], 3), FRI, end, VS, cfg)
    assert report.kris["trading_days"] == 2
    assert report.kris["effective_signals_per_day"] == 3 and report.kris["fills_per_day"] == 3
    assert report.passed, report.fail_reasons


def test_holidays_and_periods_outside_the_session_are_not_trading_days() -> None:
    cfg = GateConfig(holidays=(date(2026, 3, 9),))
    assert trading_days(FRI, FRI + timedelta(days=4), cfg) == 1  # Monday is a holiday
    # Friday 15:30 to Monday 09:00: no session overlapped
    assert trading_days(FRI + timedelta(hours=15.5), FRI + timedelta(days=3, hours=9), GateConfig()) == 0
    assert trading_days(FRI, FRI + timedelta(days=4), GateConfig(calendar="continuous")) == 4
    weekend = evaluate_gate([], FRI + timedelta(days=1), FRI + timedelta(days=3), VS)
    assert {FailReason.FAIL_LOW_ACTIVITY_SIGNALS, FailReason.FAIL_LOW_ACTIVITY_FILLS} <= set(weekend.fail_reasons)


def test_lost_orders_count_as_submitted() -> None:
    # every order's send ended unknown and was declared lost: ORDER_ERROR, never ORDER_SUBMITTED
    lost = [
        AuditEvent(e.ts, AuditCode.ORDER_ERROR, e.severity, "lost", e.symbol, e.data)
        if e.code is AuditCode.ORDER_SUBMITTED
        else e
        for e in _activity([FRI, FRI + timedelta(days=3)], 30)
    ]
    report = evaluate_gate(lost, FRI, FRI + timedelta(days=4), VS, GateConfig())
    assert report.kris["orders_submitted"] == 60
    assert report.kris["exec_error_rate"] == 1
    assert FailReason.FAIL_EXEC_ERROR_RATE in report.fail_reasons
    # an order first unknown, then found and acknowledged, is one order
    twice = _activity([FRI], 30) + [AuditEvent(FRI + timedelta(hours=10), AuditCode.ORDER_ERROR, Severity.WARN,
                                               "unknown", "512890.SH", {"client_order_id": f"G{FRI:%d}0"})]
    assert evaluate_gate(twice, FRI, FRI + timedelta(days=1), VS).kris["orders_submitted"] == 30


# ------------------------------------------------------------------------------------------ Shadow stage


def _shadow_run(days: int) -> tuple[list[AuditEvent], datetime]:
    """``days`` trading days of paper trading from FRI, 30 signals and fills a day."""
    out: list[datetime] = []
    day = FRI
    while len(out) < days:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return _activity(out, 30), day


def test_shadow_stage_needs_fourteen_trading_days_of_paper_or_dry_run() -> None:
    events, end = _shadow_run(13)
    short = evaluate_gate(events, FRI, end, VS, stage=GateStage.SHADOW, run_mode="paper")
    assert short.fail_reasons == (FailReason.FAIL_SHADOW_STAGE,) and "13 trading day" in short.notes[-1]
    events, end = _shadow_run(14)
    ok = evaluate_gate(events, FRI, end, VS, stage=GateStage.SHADOW, run_mode="dry-run")
    assert ok.passed, (ok.fail_reasons, ok.notes)
    live = evaluate_gate(events, FRI, end, VS, stage=GateStage.SHADOW, run_mode="live")
    assert live.fail_reasons == (FailReason.FAIL_SHADOW_STAGE,)


def test_release_needs_a_passing_shadow_stage_of_the_same_versions() -> None:
    events, end = _shadow_run(14)
    shadow = evaluate_gate(events, FRI, end, VS, stage=GateStage.SHADOW, run_mode="paper")
    evidence = ShadowEvidence.from_report(json.loads(render_json(shadow)))
    release = healthy()
    assert evaluate_gate(release, T0, END, VS, stage=GateStage.RELEASE, shadow=evidence).passed
    no_shadow = evaluate_gate(release, T0, END, VS, stage=GateStage.RELEASE)
    assert no_shadow.fail_reasons == (FailReason.FAIL_SHADOW_STAGE,)
    other = VersionSet("cfg-8", "grid-1.3", "abc123")
    assert FailReason.FAIL_SHADOW_STAGE in evaluate_gate(release, T0, END, other, stage=GateStage.RELEASE,
                                                          shadow=evidence).fail_reasons
    failed_events, _ = _shadow_run(14)
    failed_events.append(AuditEvent(FRI + timedelta(hours=11), AuditCode.DATA_GAP, Severity.WARN, "t", None,
                                    {"seconds": 900}))
    failed = evaluate_gate(failed_events, FRI, end, VS, stage=GateStage.SHADOW, run_mode="paper")
    bad = ShadowEvidence.from_report(json.loads(render_json(failed)))
    assert FailReason.FAIL_SHADOW_STAGE in evaluate_gate(release, T0, END, VS, stage=GateStage.RELEASE,
                                                          shadow=bad).fail_reasons


def test_cli_release_reads_the_shadow_report(tmp_path: Path) -> None:
    events, end = _shadow_run(14)
    shadow_audit, release_audit = tmp_path / "shadow.jsonl", tmp_path / "release.jsonl"
    with AuditWriter(shadow_audit, fsync=False) as w:
        w.extend(events)
    with AuditWriter(release_audit, fsync=False) as w:
        w.extend(healthy())
    common = ["--config-version", "cfg-7", "--strategy-version", "grid-1.3", "--git", "abc123"]
    shadow_json = tmp_path / "shadow_gate.json"
    assert gate_main(["--audit", str(shadow_audit), "--from", FRI.isoformat(), "--to", end.isoformat(),
                      "--stage", "shadow", "--run-mode", "dry-run", "--out-json", str(shadow_json), *common]) == 0
    release = ["--audit", str(release_audit), "--from", T0.isoformat(), "--to", END.isoformat(), *common]
    assert gate_main(release) == 1  # release is the default stage: no Shadow report, no release
    assert gate_main([*release, "--shadow-report", str(shadow_json)]) == 0
    (tmp_path / "junk.json").write_text("[1]")
    assert gate_main([*release, "--shadow-report", str(tmp_path / "junk.json")]) == 2


def _trading_days_by_walking(start: datetime, end: datetime, holidays: set[date]) -> int:
    n, day = 0, start.astimezone(CST).date()
    while day <= end.astimezone(CST).date():
        opens = datetime.combine(day, time(9, 30), CST)
        if day.weekday() < 5 and day not in holidays and start < opens + timedelta(hours=5.5) and opens < end:
            n += 1
        day += timedelta(days=1)
    return n


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 60 * 24 * 60),
    st.integers(0, 60 * 24 * 40),
    st.lists(st.integers(0, 100), max_size=6),
)
def test_trading_days_count_every_weekday_session_the_period_overlaps(start_min, length_min, holiday_offsets):
    start = FRI + timedelta(minutes=start_min)
    end = start + timedelta(minutes=length_min)
    holidays = {FRI.date() + timedelta(days=k) for k in holiday_offsets}
    cfg = GateConfig(holidays=tuple(sorted(holidays)))
    assert trading_days(start, end, cfg) == _trading_days_by_walking(start, end, holidays)


def test_a_huge_period_is_counted_at_once() -> None:
    days = trading_days(datetime(1, 1, 2, tzinfo=CST), datetime(9999, 1, 1, tzinfo=CST), GateConfig())
    assert 2_600_000 < days < 2_610_000
