"""The page under ``streamlit.testing``: every section on fixture folders, and bad files never crash it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import mac.dashboard
from core.control import InMemoryNonceStore, verify_command
from mac.dashboard.labels import CODES
from mac.grid.ladder import buy_trigger_price
from mac.grid.params import compile_params
from settings.grid import default_params
from shared_schema.types import CST
from tests.mac.dashboard import fixtures as fx

APP = str(Path(mac.dashboard.__file__).with_name("app.py"))
SECRET = "dashboard-test-secret"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    fx.build_run(tmp_path)
    return tmp_path


def page(monkeypatch: pytest.MonkeyPatch, shared: Path | None = None, replay: Path | None = None,
         secret: str | None = SECRET) -> AppTest:
    for key in ("SHARED_DIR", "REPLAY", "STATE_DIR"):
        monkeypatch.delenv(f"GRIDBRIDGE_DASHBOARD_{key}", raising=False)
    if shared is not None:
        monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_SHARED_DIR", str(shared))
    if replay is not None:
        monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_REPLAY", str(replay))
    monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_REFRESH_S", "0")
    if secret:
        monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", secret)
    else:
        monkeypatch.delenv("GRIDBRIDGE_CONTROL_SECRET", raising=False)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in at.metric:
        out.setdefault(m.label, []).append(m.value)
    return out


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


# Dataframes carry no key in the test tree: each table is found by a column only it has.
TABLE_COLUMNS = {"tbl_pool": "used 已用", "tbl_orders": "reason_label", "tbl_audit": "severity", "tbl_health": "file",
                 "tbl_lots_159201.SZ": "take_profit", "tbl_lots_512890.SH": "take_profit"}


def frame(at: AppTest, key: str):
    tables = [df.value for df in at.dataframe if TABLE_COLUMNS[key] in df.value.columns]
    if key.startswith("tbl_lots_"):
        tag = key.removeprefix("tbl_lots_")[2:6]
        tables = [t for t in tables if len(t) and str(t["client_order_id"].iloc[0]).startswith(f"G{tag}")]
    if not tables:
        raise AssertionError(f"no dataframe {key}")
    return tables[0]


def test_pool_numbers_match_the_pool_file_to_the_yuan(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared")
    m = metrics(at)
    committed = sum(fx.USED.values()) + sum(fx.FROZEN.values())
    assert m["committed 已占用 (used+frozen)"] == [f"{committed:,.2f}"]
    assert m["free 可用"] == [f"{fx.POOL - committed:,.2f}"]
    assert m["utilisation 利用率"] == [f"{fx.UTILIZATION:.2%}"]
    table = frame(at, "tbl_pool")
    assert list(table["used 已用"]) == [f"{fx.USED[c]:,.2f}" for c in CODES]
    assert list(table["frozen 冻结"]) == [f"{fx.FROZEN[c]:,.2f}" for c in CODES]
    assert "255,000.00" in texts(at.caption)  # the reserve line: 85 % of 300,000 committed
    assert any(chart.key == "fig_pool" for chart in at.get("plotly_chart")) or len(at.get("plotly_chart")) >= 5


def test_penalty_state_and_the_rule_that_holds_it(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared")
    warn = texts(at.warning)
    ok = texts(at.success)
    assert "159201" in warn and "ON 开启 since 01-06 11:00" in warn and "stays on until utilisation falls below 85%" in warn
    assert "512890" in ok and "OFF 关闭" in ok and "switches on only above 90%" in ok
    assert "last switch OFF" in ok
    assert not any("differs from its history" in e.value for e in at.error)


def test_grid_shows_the_next_buy_from_the_ladder_helper(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared")
    m = metrics(at)
    code = "159201.SZ"
    ind = fx.INDICATORS[code]
    cp = compile_params(default_params(code))
    on = buy_trigger_price(fx.ANCHOR[code], ind["atr"], ind["slope"], 3, cp, True, ind["close"])
    off = buy_trigger_price(fx.ANCHOR[code], ind["atr"], ind["slope"], 3, cp, False, ind["close"])
    assert m["next buy 下一买点"][0] == f"{on:.3f}"  # the penalty is on for 159201
    assert m["with penalty 有惩罚"][0] == f"{on:.3f}"
    assert m["without penalty 无惩罚"][0] == f"{off:.3f}"
    assert m["lots 持仓层数"] == ["3", "1"]
    lots = frame(at, "tbl_lots_159201.SZ")
    assert list(lots["client_order_id"]) == ["G9201BA0", "G9201BA1", "G9201BA2"]
    markdown = texts(at.markdown)
    assert "trend 趋势 **UP 上升 ↑**" in markdown
    assert "breaker (ATR > 2×ATR_AVG) **ON 熔断暂停买入**" in markdown  # 512890's fixture ATR is 2.5x its average


def test_alpha_race_shows_both_symbols(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared")
    m = metrics(at)
    assert m["acc_alpha 159201 自由现金流"] == [f"{fx.ALPHA['159201.SZ']:,.2f}"]
    assert m["acc_alpha 512890 红利低波"] == [f"{fx.ALPHA['512890.SH']:,.2f}"]
    assert "executor journal" in texts(at.caption)


def test_orders_table_joins_signals_results_and_filters(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared")
    table = frame(at, "tbl_orders")
    by_id = table.set_index("signal_id")
    assert by_id.loc["G2890BPEND1", "status"] == "PENDING"
    assert by_id.loc["G2890BRJ1", "reason"] == "POOL_RESERVE_15"
    assert "触及15%备用金" in by_id.loc["G2890BRJ1", "reason_label"]
    assert "非整百股" in by_id.loc["G2890BRJ2", "reason_label"]
    assert by_id.loc["JS1", "price"] == pytest.approx(1.31)  # the price of a final signal comes from the journal
    assert by_id.loc["G2890BDUP#input0", "reason"] == "DUPLICATE_ID_CONFLICT"
    at.multiselect(key="f_status").set_value(["REJECTED"]).run()
    shown = frame(at, "tbl_orders")
    assert set(shown["status"]) == {"REJECTED"} and len(shown) == 4
    at.multiselect(key="f_reason").set_value(["NOT_SELLABLE_T1"]).run()
    assert list(frame(at, "tbl_orders")["signal_id"]) == ["G9201SNT1"]
    at.multiselect(key="f_status").set_value([]).run()
    at.multiselect(key="f_reason").set_value([]).run()
    at.multiselect(key="f_code").set_value(["512890.SH"]).run()
    assert set(frame(at, "tbl_orders")["code"]) == {"512890.SH"}


def test_risk_section_state_drawdown_audit_and_reconciliation(monkeypatch, tmp_path):
    fx.build_run(tmp_path, mismatch="position 200000 != base 0 + grid lots 121700")
    at = page(monkeypatch, tmp_path / "shared")
    m = metrics(at)
    assert m["risk state 风控状态"] == ["DEGRADED 降级"]
    assert m["drawdown 回撤"] == ["8.00%"]
    assert m["reconciliation 对账"] == ["MISMATCH 不一致"]
    assert any("position mismatch" in e.value for e in at.error)
    assert list(frame(at, "tbl_audit")["code"]) == ["EQUITY_SNAPSHOT", "RISK_STATE_CHANGE"]
    assert set(frame(at, "tbl_health")["status"]) == {"OK"}


def test_halted_pool_is_a_red_banner(monkeypatch, run_dir):
    from shared_schema.atomic_io import atomic_write_model

    atomic_write_model(run_dir / "shared" / "shared_pool.json", fx.pool_file(datetime.now(CST), halted=True))
    at = page(monkeypatch, run_dir / "shared")
    assert metrics(at)["halted 暂停"] == ["YES 是"]
    assert any("HALTED" in e.value for e in at.error)


def test_kill_switch_disabled_without_secret(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared", secret=None)
    assert any("GRIDBRIDGE_CONTROL_SECRET is not set" in e.value for e in at.error)
    assert at.button(key="kill_FORCE_HALT").disabled


def test_force_halt_needs_confirmation_and_writes_a_signed_command(monkeypatch, run_dir):
    shared = run_dir / "shared"
    at = page(monkeypatch, shared)
    at.button(key="kill_FORCE_HALT").click().run()
    assert not (shared / "control").exists() or not list((shared / "control").glob("*.json"))
    assert any("Confirm **Force Halt" in w.value for w in at.warning)
    at.button(key="kill_confirm").click().run()
    files = list((shared / "control").glob("*.json"))
    assert len(files) == 1
    verdict = verify_command(files[0].read_bytes(), SECRET.encode(), InMemoryNonceStore(), datetime.now(CST))
    assert verdict.ok and verdict.command.action.value == "FORCE_HALT"
    assert any("waiting for the executor" in i.value for i in at.info)
    # the executor acknowledges: the page shows it
    from core.control.file_door import write_ack

    write_ack(shared, verdict.command.command_id, True, None, datetime.now(CST))
    at.run()
    assert any("accepted by the executor" in s.value for s in at.success)


def test_cancel_writes_nothing_and_unlock_carries_the_symbol(monkeypatch, run_dir):
    shared = run_dir / "shared"
    at = page(monkeypatch, shared)
    at.button(key="kill_FORCE_REDUCE").click().run()
    at.button(key="kill_cancel").click().run()
    assert not list((shared / "control").glob("*.json")) if (shared / "control").exists() else True
    at.selectbox(key="unlock_symbol").set_value("512890.SH").run()
    at.button(key="kill_FORCE_UNLOCK_SYMBOL").click().run()
    at.button(key="kill_confirm").click().run()
    body = json.loads(next((shared / "control").glob("*.json")).read_text())["body"]
    assert body["action"] == "FORCE_UNLOCK_SYMBOL" and body["symbol"] == "512890.SH"


def test_empty_folder_shows_missing_banners_not_an_exception(monkeypatch, tmp_path):
    at = page(monkeypatch, tmp_path)
    errors = texts(at.error)
    assert "shared_quote.json: MISSING" in errors and "shared_pool.json: MISSING" in errors
    assert "No pool view" in errors


def test_partial_pool_file_is_invalid_and_the_last_good_view_stays(monkeypatch, run_dir):
    shared = run_dir / "shared"
    at = page(monkeypatch, shared)
    good = metrics(at)["committed 已占用 (used+frozen)"]
    text = (shared / "shared_pool.json").read_text()
    (shared / "shared_pool.json").write_text(text[: len(text) // 2])  # a torn write
    at.run()
    assert not at.exception
    assert any("shared_pool.json: INVALID" in e.value and "last good view" in e.value for e in at.error)
    assert metrics(at)["committed 已占用 (used+frozen)"] == good


def test_invalid_files_are_reported(monkeypatch, run_dir):
    shared = run_dir / "shared"
    pool = json.loads((shared / "shared_pool.json").read_text())
    pool["used_159201"] = "lots"
    (shared / "shared_pool.json").write_text(json.dumps(pool))
    (shared / "shared_quote.json").write_text("")
    (shared / "dashboard_state_512890.json").write_text("{not json")
    (shared / "order_result.json").write_text(json.dumps({"seq": 1}))
    at = page(monkeypatch, shared)
    errors = texts(at.error)
    for name in ("shared_pool.json: INVALID", "shared_quote.json: INVALID", "dashboard_state_512890.json: INVALID",
                 "order_result.json: INVALID"):
        assert name in errors


def test_stale_quotes_and_a_stopped_heartbeat_are_both_shown(monkeypatch, tmp_path):
    # The producer (quotes) and the executor (pool heartbeat) are separate processes: each silence is its own
    # banner. A pool file past its heartbeats is the stronger fact, "executor down" (red), with its age; it is
    # not listed a second time as a plain STALE file.
    fx.build_run(tmp_path, now=datetime.now(CST) - timedelta(minutes=30))
    at = page(monkeypatch, tmp_path / "shared")
    warn, errors = texts(at.warning), texts(at.error)
    assert "shared_quote.json: STALE" in warn and "not updated for 30 min" in warn
    assert "Executor down" in errors and "shared_pool.json: DOWN" in errors and "heartbeat stopped" in errors
    assert "shared_pool.json: STALE" not in warn


def test_stale_quotes_with_a_live_executor_are_only_stale(monkeypatch, tmp_path):
    from shared_schema.atomic_io import atomic_write_model

    fx.build_run(tmp_path, now=datetime.now(CST) - timedelta(minutes=30))
    atomic_write_model(tmp_path / "shared" / "shared_pool.json", fx.pool_file(datetime.now(CST), heartbeat_s=10.0))
    at = page(monkeypatch, tmp_path / "shared")
    assert "shared_quote.json: STALE" in texts(at.warning)
    assert "Executor down" not in texts(at.error) and "shared_pool.json" not in texts(at.warning)


def test_replay_of_a_dry_run_folder_moves_with_the_slider(monkeypatch, run_dir):
    at = page(monkeypatch, replay=run_dir)
    slider = at.slider(key="replay_time")
    assert "replay" in texts(at.caption)
    end_alpha = metrics(at)["acc_alpha 159201 自由现金流"]
    # 10:30: the journal's buy is filled, the sell (13:40) has not happened. Committed is the cash that left
    # the account for the lot: 13,000 of fill value plus the 1.30 commission the venue reported.
    slider.set_value(datetime(2026, 1, 6, 10, 30)).run()
    assert not at.exception
    m = metrics(at)
    assert m["committed 已占用 (used+frozen)"] == ["13,001.30"]
    assert m["acc_alpha 159201 自由现金流"] == ["0.00"] != end_alpha


def test_replay_of_a_backtest_folder(monkeypatch, tmp_path):
    folder = fx.build_backtest(tmp_path / "bt")
    at = page(monkeypatch, replay=folder)
    m = metrics(at)
    assert m["acc_alpha 159201 自由现金流"] == [f"{fx.JOURNAL_ALPHA_159201:,.2f}"]
    assert m["drawdown 回撤"] == ["0.04%"]
    assert len(frame(at, "tbl_orders")) == 4


def test_replay_of_an_unknown_folder_is_an_error(monkeypatch, tmp_path):
    at = page(monkeypatch, replay=tmp_path)
    assert any("cannot replay" in e.value for e in at.error)


def test_no_folder_given_is_an_error(monkeypatch):
    at = page(monkeypatch)
    assert any("No shared folder" in e.value for e in at.error)


def test_a_forced_reduction_is_shown_with_its_target_and_held_back_lots(monkeypatch, run_dir):
    from decimal import Decimal

    from shared_schema.atomic_io import atomic_write_model
    from shared_schema.models import ReductionStatus

    reduction = ReductionStatus(mode="COOLDOWN", exposure=Decimal("123456.78"), target=Decimal("61728.39"),
                                selling=["RDX0000ABCD0"], held_back={"G9201BA1": "NOT_SELLABLE_T1"})
    atomic_write_model(run_dir / "shared" / "shared_pool.json",
                       fx.pool_file(datetime.now(CST), risk_state="COOLDOWN", reduction=reduction))
    at = page(monkeypatch, run_dir / "shared")
    shown = texts(at.warning)
    assert "forced reduction" in shown and "COOLDOWN" in shown
    assert "123,456.78" in shown and "61,728.39" in shown
    assert "RDX0000ABCD0" in shown and "G9201BA1 NOT_SELLABLE_T1" in shown
    assert metrics(at)["forced reduction 强制减仓"] == ["COOLDOWN"]


def test_no_forced_reduction_shows_none(monkeypatch, run_dir):
    at = page(monkeypatch, run_dir / "shared")
    assert metrics(at)["forced reduction 强制减仓"] == ["none 无"]
