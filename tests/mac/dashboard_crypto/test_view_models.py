"""The crypto pages' view models without streamlit: missing, partial and invalid files, stale and stopped
writers, margin-health zones at the thresholds, SLIs against their SLOs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.carry.status_file import CARRY_STATUS_FILE, CarryStatusReader
from crypto.pm.status_file import PM_STATUS_FILE, PmSlos, PmStatusReader
from mac.dashboard.crypto_view_models import (
    GREEN,
    GREY,
    NO_DATA,
    ORANGE,
    RED,
    SLO_BREACHED,
    SLO_MET,
    ZONE_CLOSE,
    ZONE_NONE,
    ZONE_OK,
    ZONE_TOPUP,
    carry_page,
    health_zone,
    pm_page,
    sli_rows,
)
from shared_schema.atomic_io import ReadOutcome, ReadStatus, atomic_write_model
from tests.mac.dashboard_crypto import fixtures as fx

NOW = fx.NOW


def levels(page) -> list[str]:
    return [b.level for b in page.banners]


def text(page) -> str:
    return "\n".join(b.text for b in page.banners)


# ------------------------------------------------------------------------------------------ carry


@pytest.mark.parametrize(("health", "zone", "color"), [
    ("1.2", ZONE_OK, GREEN), ("0.80", ZONE_OK, GREEN), ("0.7999", ZONE_TOPUP, ORANGE), ("0.50", ZONE_TOPUP, ORANGE),
    ("0.4999", ZONE_CLOSE, RED), ("0", ZONE_CLOSE, RED), (None, ZONE_NONE, GREY),
])
def test_margin_health_is_coloured_by_the_top_up_and_close_lines(health, zone, color) -> None:
    page = carry_page(ReadOutcome(fx.carry_status(health), ReadStatus.FRESH), NOW)
    [pair] = page.pairs
    assert (pair.zone, pair.zone_color) == (zone, color)
    shown = {m.label: m for m in pair.metrics}["margin health 保证金健康度"]
    assert shown.color == color
    assert ("error" in levels(page)) == (zone == ZONE_CLOSE)
    assert ("warning" in levels(page)) == (zone == ZONE_TOPUP)


def test_zone_text_names_the_action_and_the_line() -> None:
    t = fx.carry_status().thresholds
    assert health_zone(D("0.75"), t)[1] == "75.0% is under the top-up line 80%: adds margin back to 100%"
    assert "top-ups are OFF" in health_zone(D("0.75"), t.model_copy(update={"topups_enabled": False}))[1]
    assert health_zone(D("0.45"), t)[1].endswith("the close line 50%: the engine closes everything")


def test_carry_page_shows_state_legs_funding_breaker_and_actions() -> None:
    page = carry_page(ReadOutcome(fx.carry_status("0.95"), ReadStatus.FRESH), NOW, "/state/carry")
    assert page.configured and page.banners == ()
    [pair] = page.pairs
    m = {x.label: x.value for x in pair.metrics}
    assert m["state 状态"] == "HEDGING" and m["funding earned 资金费收入 (USDT)"] == "3.9442"
    assert m["margin health 保证金健康度"] == "95.0%" and m["open PnL 持仓盈亏 (USDT)"] == "-3.46"
    assert {x.label: x.value for x in page.engine}["closed pairs' net PnL 已平仓盈亏 (USDT)"] == "-41.50"
    assert [(leg["leg"], leg["qty"]) for leg in pair.legs] == [("spot (long)", "0.0822177"), ("perp (short)", "0.0823")]
    assert page.breaker is not None and page.breaker.value == "armed (not tripped)" and page.breaker.color == GREEN
    assert "losses in a row 1/3" in page.breaker.help
    assert [a["code"] for a in page.actions] == ["CARRY_FUNDING_SETTLED", "CARRY_STATE_CHANGE"]  # newest first
    assert page.actions[1]["what"] == "OPENING → HEDGING (LEGS_FILLED)"


@pytest.mark.parametrize(("distance", "color", "warned"), [("0.486", GREEN, False), ("0.25", GREEN, False),
                                                         ("0.2499", ORANGE, True), (None, GREY, False)])
def test_liquidation_distance_against_the_25_percent_top_up_line(distance, color, warned) -> None:
    page = carry_page(ReadOutcome(fx.carry_status("0.95", liq_distance=distance), ReadStatus.FRESH), NOW)
    [pair] = page.pairs
    shown = {m.label: m for m in pair.metrics}["liquidation distance 强平距离"]
    assert shown.color == color and shown.help == "top-up when under 25%, back to 35%"
    assert ("liquidation distance 24.99%: top-up when under 25%" in text(page)) == warned


def test_tripped_breaker_and_reduce_only_are_red_banners() -> None:
    page = carry_page(ReadOutcome(fx.carry_status(tripped=True, risk_state="REDUCE_ONLY"), ReadStatus.FRESH), NOW)
    assert page.breaker is not None and page.breaker.color == RED and "BREAKER_CONSECUTIVE_LOSSES" in page.breaker.value
    assert levels(page).count("error") == 2 and "Risk state REDUCE_ONLY" in text(page)


def test_no_carry_folder_says_how_to_configure_it() -> None:
    page = carry_page(None, NOW)
    assert not page.configured and levels(page) == ["info"]
    assert "--carry-dir" in text(page) and "GRIDBRIDGE_DASHBOARD_CARRY_DIR" in text(page)


def test_missing_partial_and_invalid_files_never_raise_and_keep_the_last_good_view(tmp_path: Path) -> None:
    reader = CarryStatusReader(tmp_path)
    page = carry_page(reader.read(), NOW, str(tmp_path))
    assert page.status is None and levels(page) == ["error"] and "No `carry_status.json`" in text(page)
    path = tmp_path / CARRY_STATUS_FILE
    path.write_text("{")  # invalid before any good read
    page = carry_page(reader.read(), NOW, str(tmp_path))
    assert page.status is None and levels(page) == ["error"] and "cannot be read" in text(page)
    atomic_write_model(path, fx.carry_status())
    assert carry_page(reader.read(), NOW, str(tmp_path)).banners == ()
    path.write_bytes(path.read_bytes()[:200])  # a partial write (what a non-atomic writer would leave)
    page = carry_page(reader.read(), NOW, str(tmp_path))
    assert page.status == fx.carry_status() and levels(page) == ["warning"]
    assert "showing the last good view (written 2026-11-30 12:00:00 UTC)" in text(page)
    path.write_text('{"kind": "gridbridge.carry_status/1", "seq": "x"}')  # valid JSON, wrong shape
    assert levels(carry_page(reader.read(), NOW, str(tmp_path))) == ["warning"]
    path.unlink()
    page = carry_page(reader.read(), NOW, str(tmp_path))
    assert page.status == fx.carry_status() and "has disappeared" in text(page)


def test_stale_and_stopped_writers_are_said() -> None:
    old = fx.carry_status(written_at=NOW - timedelta(minutes=10))
    page = carry_page(ReadOutcome(old, ReadStatus.UNCHANGED), NOW, stale_after_s=120)
    assert levels(page) == ["warning"] and "not updated for 10 min" in text(page)
    assert carry_page(ReadOutcome(old, ReadStatus.UNCHANGED), NOW, stale_after_s=601).banners == ()
    stopped = fx.carry_status(written_at=NOW - timedelta(minutes=10), running=False)
    page = carry_page(ReadOutcome(stopped, ReadStatus.UNCHANGED), NOW, stale_after_s=120)
    assert levels(page) == ["info"] and "shut down cleanly" in text(page)  # its last file is expected to age


# ------------------------------------------------------------------------------------------ position manager


@pytest.mark.parametrize(("p95", "verdict"), [(12.0, SLO_MET), (800.0, SLO_MET), (800.5, SLO_BREACHED),
                                              (None, NO_DATA)])
def test_order_p95_against_800_ms(p95, verdict) -> None:
    row = sli_rows(fx.pm_status(p95=p95).slis, PmSlos())[0]
    assert row.verdict == verdict and row.color == {SLO_MET: GREEN, SLO_BREACHED: RED, NO_DATA: GREY}[verdict]
    assert row.target == "≤ 800 ms"


@pytest.mark.parametrize(("rate", "verdict"), [(1.0, SLO_MET), (0.99, SLO_MET), (0.9899, SLO_BREACHED),
                                               (None, NO_DATA)])
def test_stop_move_success_against_99_percent(rate, verdict) -> None:
    row = sli_rows(fx.pm_status(stop_rate=rate).slis, PmSlos())[1]
    assert row.verdict == verdict and row.target == "≥ 99%"
    page = pm_page(ReadOutcome(fx.pm_status(stop_rate=rate), ReadStatus.FRESH), NOW)
    assert ("SLO breached" in text(page)) == (verdict == SLO_BREACHED)


def test_pm_page_shows_the_six_slis_positions_and_events() -> None:
    page = pm_page(ReadOutcome(fx.pm_status(), ReadStatus.FRESH), NOW, "/state/pm")
    assert page.banners == ()
    assert [r.value for r in page.slis] == ["12.0 ms", "100.00%", "100.00%", "0", "1", "100.00%"]
    [pos] = page.positions
    assert (pos["stop"], pos["ladder"], pos["adds"], pos["stop on venue"]) == ("109.90", "1/2 rungs (0)",
                                                                               "1/2 (+0.25)", "yes")
    assert pos["stop distance"] == "6.86%"  # (118 - 109.9) / 118, long
    assert [e["type"] for e in page.events] == ["STOP_MOVE", "ENTRY"]


def test_pm_page_flags_redis_down_and_a_swap_without_a_stop() -> None:
    page = pm_page(ReadOutcome(fx.pm_status(redis_ok=False, stop_on_venue=False), ReadStatus.FRESH), NOW)
    assert levels(page) == ["error", "error"]
    assert "Redis is down" in text(page) and "No stop on the venue for BTCUSDTUSDT-1700000000000" in text(page)


def test_pm_page_without_folder_or_file(tmp_path: Path) -> None:
    assert "--pm-dir" in text(pm_page(None, NOW))
    reader = PmStatusReader(tmp_path)
    page = pm_page(reader.read(), NOW, str(tmp_path))
    assert page.status is None and "No `pm_status.json`" in text(page)
    atomic_write_model(tmp_path / PM_STATUS_FILE, fx.pm_status())
    reader.read()
    (tmp_path / PM_STATUS_FILE).write_text("[1, 2")
    page = pm_page(reader.read(), NOW, str(tmp_path))
    assert page.status == fx.pm_status() and levels(page) == ["warning"]
