"""The account risk machine in the realistic backtest: crash -> DEGRADED -> COOLDOWN -> FUSE, close-all,
the audit log through the gate, and the lazy evaluation against evaluating every minute."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from backtest.cli import main as backtest_main
from backtest.engine import run_realistic
from backtest.risk import BacktestRisk
from backtest.synth import generate
from core.audit import read_events
from core.events import AuditCode
from core.gate import FailReason, VersionSet, evaluate_gate
from core.gate_cli import main as gate_main
from mac.grid.core import BUY, FUSE_CLOSE, trading_day
from mac.grid.risk_policy import GridRiskPolicy
from marketdata.bars import Bars, write_bars_csv
from settings.config import GridbridgeConfig
from settings.grid import default_params

CODES = ("512890.SH", "159201.SZ")
DAY = 240
VERSIONS = VersionSet("test", "test", "test")


def crashed(bars: Bars, start_day: int = 12, days: int = 3, depth: float = 0.25) -> Bars:
    """The same bars with a linear fall of ``depth`` over ``days`` from ``start_day`` on (then flat)."""
    x = np.arange(len(bars))
    s, e = start_day * DAY, (start_day + days) * DAY
    f = np.where(x < s, 1.0, np.where(x >= e, 1 - depth, 1 - depth * (x - s) / (e - s)))
    o, c = np.round(bars.o * f, 3), np.round(bars.c * f, 3)
    h = np.maximum(np.round(bars.h * f, 3), np.maximum(o, c))
    low = np.minimum(np.round(bars.l * f, 3), np.minimum(o, c))
    return Bars(bars.t, o, h, low, c, bars.v)


@pytest.fixture(scope="module")
def crash_data():
    return {c: crashed(generate(c, 20, seed=7 + k)) for k, c in enumerate(CODES)}


@pytest.fixture(scope="module")
def crash_run(crash_data):
    return run_realistic(crash_data, {c: default_params(c) for c in CODES})


@pytest.fixture(scope="module")
def healthy_data():
    return {c: generate(c, 60, seed=28 + k) for k, c in enumerate(CODES)}


def _period(run):
    s = run.risk.summary()
    return datetime.fromisoformat(s["period_from"]), datetime.fromisoformat(s["period_to"])


def test_crash_goes_degraded_cooldown_fuse_and_stops_buying(crash_run):
    risk = crash_run.risk
    path = [b for _, _, b in risk.transitions]
    assert path[0] == "DEGRADED" and "COOLDOWN" in path and path[-1] == "FUSE"
    assert path.index("DEGRADED") < path.index("COOLDOWN") < path.index("FUSE")
    fuse_t = next(t for t, _, b in risk.transitions if b == "FUSE")
    buys_after = [t for r in crash_run.symbols.values() for t in r.trades if t.side == BUY and t.t > fuse_t]
    assert buys_after == []
    assert risk.blocked["RISK_FUSE"] > 0
    summary = risk.summary()
    assert summary["final_state"] == "FUSE" and summary["time_in_state"]["FUSE"] > 0
    assert abs(sum(summary["time_in_state"].values()) - 1) < 1e-9


def test_fuse_closes_every_sellable_lot(crash_run):
    fuse_t = next(t for t, _, b in crash_run.risk.transitions if b == "FUSE")
    fuse_day = trading_day(fuse_t)
    closes = [t for r in crash_run.symbols.values() for t in r.trades if t.reason == FUSE_CLOSE]
    assert closes and all(t.side == "SELL" and t.decided_t >= fuse_t for t in closes)
    for r in crash_run.symbols.values():
        # what is left can only be lots bought on the FUSE day (T+1) - here the data runs on, so none
        assert all(lot.buy_day >= fuse_day for lot in r.state.lots)
        assert all(t.t > t.decided_t for t in r.trades if t.reason == FUSE_CLOSE)  # a real fill, later


def test_crash_audit_fails_the_gate_on_drawdown_but_has_no_reduce_only_violation(crash_run):
    start, end = _period(crash_run)
    report = evaluate_gate(crash_run.risk.audit, start, end, VERSIONS, GridbridgeConfig().gate)
    assert FailReason.FAIL_MDD_EXCEEDED in report.fail_reasons
    assert report.kris["mdd_rolling"] >= 0.2
    assert report.kris["reduce_only_violation_count"] == 0
    assert report.actions_summary["risk_to_FUSE"] == 1


def test_healthy_backtest_audit_passes_the_etf_gate(healthy_data):
    run = run_realistic(healthy_data, {c: default_params(c) for c in CODES})
    codes = {e.code for e in run.risk.audit}
    assert {AuditCode.SIGNAL_ACCEPTED, AuditCode.ORDER_SUBMITTED, AuditCode.ORDER_FILLED,
            AuditCode.EQUITY_SNAPSHOT} <= codes  # fmt: skip
    fills = [e for e in run.risk.audit if e.code is AuditCode.ORDER_FILLED]
    assert all(e.data["leverage"] == "1" and e.data["max_leverage"] == "1" for e in fills)
    assert {e.data["opens"] for e in fills} == {True, False}
    start, end = _period(run)
    report = evaluate_gate(run.risk.audit, start, end, VERSIONS, GridbridgeConfig().gate)
    assert report.passed, report.fail_reasons
    days = {trading_day(int(e.ts.timestamp() * 1000)) for e in run.risk.audit if e.code is AuditCode.EQUITY_SNAPSHOT}
    assert len(days) == 60  # one snapshot a trading day (plus one per state change and the last)


@pytest.mark.parametrize("which", ["crash", "healthy"])
def test_lazy_evaluation_decides_exactly_like_evaluating_every_minute(which, crash_data, healthy_data):
    data = crash_data if which == "crash" else {c: b.slice(0, 20 * DAY) for c, b in healthy_data.items()}
    params = {c: default_params(c) for c in CODES}
    lazy = run_realistic(data, params)
    full = run_realistic(data, params, risk=BacktestRisk(every_bar=True))
    assert lazy.risk.transitions == full.risk.transitions
    assert lazy.trades == full.trades
    assert lazy.risk.evaluations < full.risk.evaluations


def test_degraded_block_layer0_policy_refuses_new_cycles(crash_data):
    params = {c: default_params(c) for c in CODES}
    run = run_realistic(crash_data, params, risk=BacktestRisk(policy=GridRiskPolicy(degraded_action="block_layer0")))
    assert any(b == "DEGRADED" for _, _, b in run.risk.transitions)
    spans = []  # DEGRADED intervals
    for (t, _, b), nxt in zip(run.risk.transitions, run.risk.transitions[1:] + [(None, None, None)], strict=True):
        if b == "DEGRADED":
            spans.append((t, nxt[0] or 1 << 62))
    layer0_in_degraded = [
        t for r in run.symbols.values() for t in r.trades
        if t.side == BUY and t.layer_index == 0 and any(a < t.decided_t < z for a, z in spans)
    ]  # fmt: skip
    assert layer0_in_degraded == []


def test_no_risk_runs_without_the_machine(healthy_data):
    data = {c: b.slice(0, 10 * DAY) for c, b in healthy_data.items()}
    run = run_realistic(data, {c: default_params(c) for c in CODES}, risk=None)
    assert run.risk is None and run.trades


def test_cli_backtest_writes_an_audit_the_gate_reads(tmp_path, crash_data):
    args = ["backtest", "--symbol", "both", "--out", str(tmp_path / "out")]
    for code, bars in crash_data.items():
        write_bars_csv(bars, tmp_path / f"{code}.csv")
        args += ["--data", f"{code}={tmp_path / f'{code}.csv'}"]
    assert backtest_main(args) == 0
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    risk = metrics["risk"]
    assert risk["final_state"] == "FUSE" and metrics["total"]["fuse_closes"] > 0
    assert any(e.code is AuditCode.RISK_STATE_CHANGE for e in read_events(out / "audit.jsonl"))
    code = gate_main(["--audit", str(out / "audit.jsonl"), "--gate-config", str(out / "gate.json"),
                      "--from", risk["period_from"], "--to", risk["period_to"], "--stage", "run",
                      "--run-mode", "backtest", "--out-json", str(out / "gate_report.json")])  # fmt: skip
    assert code == 1
    report = json.loads((out / "gate_report.json").read_text())
    assert report["fail_reasons"] == ["FAIL_MDD_EXCEEDED"] and report["run_mode"] == "backtest"
    assert backtest_main(args + ["--no-risk", "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "audit.jsonl").exists()
