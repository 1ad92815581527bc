"""The ETF gate fits the strategy (issue 10, item 12): a realistic backtest on minutes conditioned on real
daily bars passes it; a run without trades fails it.

The daily file is ``../shared/data/etf_daily/fish_512890.csv`` beside the project (the public daily bars of
512890 from 2019-01-18 to 2025-08-29, 1,604 trading days; see that folder's README). It is read in place,
never copied into the project. Its prices are unadjusted (a unit split in October 2021), as the strategy
would have seen them.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from backtest.engine import run_realistic
from backtest.risk import replay_gate_config
from backtest.synth import generate, generate_conditioned
from core.gate import FailReason, GateStage, VersionSet, evaluate_gate
from marketdata.bars import Bars, load_daily, session_holidays
from settings.config import GridbridgeConfig
from settings.grid import default_params

CODE = "512890.SH"
DAILY = Path(os.environ.get("GRIDBRIDGE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) \
    / "etf_daily" / "fish_512890.csv"
VS = VersionSet("etf-default", "grid", "test")


def _gate(data: dict[str, Bars]):
    run = run_realistic(data, {c: default_params(c) for c in data})
    summary = run.risk.summary()
    start, end = datetime.fromisoformat(summary["period_from"]), datetime.fromisoformat(summary["period_to"])
    cfg = replay_gate_config(GridbridgeConfig().gate, np.concatenate([b.t for b in data.values()]))
    report = evaluate_gate(run.risk.audit, start, end, VS, cfg, stage=GateStage.RUN, run_mode="backtest")
    return run, report


@pytest.fixture(scope="module")
def fish_bars() -> Bars:
    if not DAILY.is_file():
        pytest.skip(f"the shared daily file {DAILY} is not beside this checkout")
    return generate_conditioned(CODE, load_daily(DAILY), 1)


def test_realistic_backtest_on_real_daily_bars_passes_the_etf_gate(fish_bars):
    # issue 10 item 12: this run failed FAIL_LOW_ACTIVITY_SIGNALS/_FILLS at 0.19 a calendar day
    run, report = _gate({CODE: fish_bars})
    assert report.kris["trading_days"] == 1604  # holidays are not trading days
    assert len(run.trades) > 0
    assert report.passed, (report.fail_reasons, {k: str(v) for k, v in report.kris.items()})


def test_a_run_without_trades_fails_the_etf_gate():
    bars = generate(CODE, 30, seed=3)
    flat = np.full(len(bars), 1.0)
    _, report = _gate({CODE: Bars(bars.t, flat, flat, flat, flat, bars.v)})
    assert report.kris["orders_submitted"] == 0 and report.kris["trading_days"] == 30
    assert {FailReason.FAIL_LOW_ACTIVITY_SIGNALS, FailReason.FAIL_LOW_ACTIVITY_FILLS} <= set(report.fail_reasons)


def test_the_data_calendar_gives_the_holidays(fish_bars):
    holidays = session_holidays(fish_bars.t)
    assert len(holidays) > 10 and all(d.weekday() < 5 for d in holidays)
    assert datetime(2024, 10, 1).date() in holidays  # National Day


def test_calibration_reports_the_gates_own_activity_rates():
    from backtest.calibrate import calibrate

    data = {CODE: generate(CODE, 40, seed=5)}
    row = calibrate({"short": data}, window=14)["short"]
    _, report = _gate(data)
    assert row["trading_days"] == report.kris["trading_days"] == 40
    assert row["fills_per_day"] == pytest.approx(float(report.kris["fills_per_day"]))
    assert row["signals_per_day"] == pytest.approx(float(report.kris["effective_signals_per_day"]))
    assert 0 <= row["windows_without_fills"] <= 1
