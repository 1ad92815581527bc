from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.audit import AuditWriter
from core.events import AuditCode, AuditEvent, Severity
from core.gate import FailReason, GateConfig, VersionSet, evaluate_gate, render_json, render_markdown
from core.gate_cli import main as gate_main
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
}


@pytest.mark.parametrize("reason", list(FailReason))
def test_each_kri_failure_vetoes(reason: FailReason) -> None:
    report = evaluate_gate(CASES[reason], T0, END, VS)
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
