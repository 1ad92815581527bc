"""The crypto gate preset over a synthetic 24/7 audit log whose risk events come from the real kernel."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.audit import AuditWriter
from core.events import AuditCode, AuditEvent, Severity
from core.execution.protective import (
    BracketEvent,
    BracketTrigger,
    ProtectiveConfig,
    fold_attach_failure,
    open_bracket,
    step_bracket,
    tick_bracket,
)
from core.execution.rate_limit import RateLimitConfig, RateLimitGuard, on_rate_limited
from core.gate import (
    CRYPTO_GATE,
    GATE_PRESETS,
    FailReason,
    GateConfig,
    VersionSet,
    evaluate_gate,
    gate_config,
)
from core.gate_cli import main as gate_main
from core.oms.account import HeldPosition
from core.risk.evaluate import evaluate
from tests.core.stubs import CFG, inputs, snapshot

D = Decimal
# Friday 00:00 UTC to Monday 00:00 UTC: three calendar days, one weekday session in China time.
START = datetime(2026, 3, 6, tzinfo=timezone.utc)
END = START + timedelta(days=3)
VS = VersionSet("crypto-cfg-1", "trend-0.1", "abc")


def ev(minutes: float, code: AuditCode, **data: Any) -> AuditEvent:
    return AuditEvent(START + timedelta(minutes=minutes), code, Severity.INFO, "synthetic", "BTC/USDT:USDT", data)


def healthy() -> list[AuditEvent]:
    """A trend loop: a target every hour for two symbols, one fill a day, snapshots every 6 hours."""
    out: list[AuditEvent] = []
    for day in range(3):
        base = day * 1440
        for h in range(24):
            out += [ev(base + h * 60, AuditCode.SIGNAL_ACCEPTED), ev(base + h * 60 + 1, AuditCode.SIGNAL_ACCEPTED)]
        for k in range(1):
            coid = f"c{day}{k}"
            out.append(ev(base + 100 + k * 600, AuditCode.ORDER_SUBMITTED, client_order_id=coid))
            out.append(ev(base + 101 + k * 600, AuditCode.ORDER_FILLED, client_order_id=coid, opens=True,
                          risk_state="NORMAL", leverage="2", max_leverage="3"))
        for q in range(4):
            out.append(ev(base + q * 360 + 5, AuditCode.EQUITY_SNAPSHOT, equity="10000", liq_distance_p95="0.3"))
    return out


def gate(events: list[AuditEvent], cfg: GateConfig = CRYPTO_GATE) -> Any:
    return evaluate_gate(sorted(events, key=lambda e: e.ts), START, END, VS, cfg)


def at_min(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def test_crypto_preset_counts_calendar_days_and_its_own_floors() -> None:
    assert GATE_PRESETS["etf"] == GateConfig() and GATE_PRESETS["crypto"] is CRYPTO_GATE
    crypto = gate(healthy())
    assert crypto.passed, crypto.fail_reasons
    assert crypto.kris["trading_days"] == 3 and crypto.kris["rate_limited_rate"] == 0
    etf = gate(healthy(), GateConfig())
    # The exchange calendar sees one session day (Friday): 3 fills on it are under the grid's 4.
    assert etf.kris["trading_days"] == 1
    assert not etf.passed and FailReason.FAIL_LOW_ACTIVITY_FILLS in etf.fail_reasons


def test_liq_distance_events_from_the_risk_kernel_fail_the_gate() -> None:
    near = HeldPosition("BTC/USDT:USDT", D(1), D(100), D(100), D(94))
    low = evaluate(snapshot(), inputs(positions=[near]), at_min(2000), CFG)
    assert [e.code for e in low.events] == [AuditCode.RISK_LIQ_DISTANCE_LOW]
    report = gate(healthy() + list(low.events))
    assert report.fail_reasons == (FailReason.FAIL_LIQ_DISTANCE_LOW,)
    assert report.kris["liq_distance_p95"] == D("0.06")
    assert report.actions_summary["RISK_LIQ_DISTANCE_LOW"] == 1


def test_missing_stop_from_the_bracket_fails_the_gate() -> None:
    b = open_bracket("BTC/USDT:USDT", D(1), D(90), D(120), "sl1", "tp1", "g")
    b = step_bracket(b, BracketEvent(BracketTrigger.START), at_min(3000)).bracket
    timeout = tick_bracket(b, at_min(3001), ProtectiveConfig())
    missing = fold_attach_failure(timeout, snapshot(), at_min(3001), CFG, ProtectiveConfig())
    report = gate(healthy() + list(timeout.events) + list(missing.events))
    assert report.fail_reasons == (FailReason.FAIL_PROTECTIVE_ORDER_MISSING,)
    assert report.kris["protective_missing_count"] == 1


class Half:
    def random(self) -> float:
        return 0.5


@pytest.mark.parametrize(("refusals", "fails"), [(0, False), (3, True), (12, True)])
def test_rate_limit_refusals_feed_the_exec_error_kri(refusals: int, fails: bool) -> None:
    rcfg = RateLimitConfig(refusals_to_backoff=3)
    g = RateLimitGuard.start(rcfg)
    events: list[AuditEvent] = []
    for i in range(refusals):
        step = on_rate_limited(g, at_min(4000 + i / 10), rcfg, Half(), "BTC/USDT:USDT")
        g, events = step.guard, events + list(step.events)
    report = gate(healthy() + events)
    # 3 orders: 3 refusals is a 50 % rate-limited rate (> 5 %); 12 give 4 backoffs (> 3).
    assert (FailReason.FAIL_EXEC_ERROR_RATE in report.fail_reasons) is fails
    assert report.kris["rate_limit_backoff_count"] == refusals // 3
    assert gate(healthy() + events, GateConfig(calendar="continuous", min_signals_per_day=D(12),
                                               min_fills_per_day=D(1))).passed  # unchecked without limits


def test_gate_config_overrides_a_preset_and_refuses_bad_names() -> None:
    cfg = gate_config("crypto", {"min_fills_per_day": "3"})
    assert cfg.min_fills_per_day == 3 and cfg.calendar == "continuous"
    with pytest.raises(ValueError):
        gate_config("forex")
    with pytest.raises(ValueError):
        gate_config("crypto", {"no_such_field": 1})


def test_cli_preset_crypto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    with AuditWriter(audit, fsync=False) as w:
        w.extend(healthy())
    base = ["--audit", str(audit), "--from", START.isoformat(), "--to", END.isoformat(), "--stage", "run"]
    assert gate_main(base + ["--preset", "crypto", "--out-json", str(tmp_path / "g.json")]) == 0
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["thresholds"]["calendar"] == "continuous" and data["kris"]["trading_days"] == 3
    assert gate_main(base) == 1  # the ETF preset's floors
    over = tmp_path / "over.json"
    over.write_text('{"min_fills_per_day": 1.5}')
    assert gate_main(base + ["--preset", "crypto", "--gate-config", str(over)]) == 1
    over.write_text('[1, 2]')
    assert gate_main(base + ["--preset", "crypto", "--gate-config", str(over)]) == 2
    with pytest.raises(SystemExit):
        gate_main(base + ["--preset", "forex"])
    capsys.readouterr()
