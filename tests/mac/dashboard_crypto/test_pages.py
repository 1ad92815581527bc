"""The crypto pages under ``streamlit.testing``: chosen in the sidebar or by ``?page=``, drawn from the status
files, and never an exception on a missing, unconfigured or broken file."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import mac.dashboard
from crypto.carry.status_file import CARRY_STATUS_FILE
from crypto.pm.status_file import PM_STATUS_FILE
from shared_schema.atomic_io import atomic_write_model
from tests.mac.dashboard_crypto import fixtures as fx

APP = str(Path(mac.dashboard.__file__).with_name("app.py"))


def page(monkeypatch: pytest.MonkeyPatch, which: str, carry: Path | None = None, pm: Path | None = None) -> AppTest:
    for key in ("SHARED_DIR", "REPLAY", "STATE_DIR", "CARRY_DIR", "PM_DIR"):
        monkeypatch.delenv(f"GRIDBRIDGE_DASHBOARD_{key}", raising=False)
    if carry is not None:
        monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_CARRY_DIR", str(carry))
    if pm is not None:
        monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_PM_DIR", str(pm))
    monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_REFRESH_S", "0")
    monkeypatch.setenv("GRIDBRIDGE_DASHBOARD_STALE_S", "1e9")  # the fixtures' files are written "in 2026-11-30"
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["page"] = which
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def body(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.error, *at.warning, *at.info, *at.caption)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_carry_page_draws_the_file(monkeypatch, tmp_path: Path) -> None:
    atomic_write_model(tmp_path / CARRY_STATUS_FILE, fx.carry_status("0.75"))
    at = page(monkeypatch, "carry", carry=tmp_path)
    text = body(at)
    assert "state 状态=HEDGING" in text and "margin health 保证金健康度=75.0%" in text
    assert "under the top-up line 80%: adds margin back to 100%" in text
    assert "armed (not tripped)" in text
    legs = next(t.value for t in at.table if "leg" in t.value.columns)
    assert list(legs["qty"]) == ["0.0822177", "0.0823"]
    actions = next(t.value for t in at.table if "what" in t.value.columns)
    assert actions["what"].iloc[-1] == "OPENING → HEDGING (LEGS_FILLED)"


def test_pm_page_draws_the_file(monkeypatch, tmp_path: Path) -> None:
    atomic_write_model(tmp_path / PM_STATUS_FILE, fx.pm_status(p95=950.0))
    at = page(monkeypatch, "pm", pm=tmp_path)
    text = body(at)
    assert "end-to-end order p95 下单延迟=950 ms" in text and "SLO BREACHED" in text
    assert "SLO breached: end-to-end order p95 下单延迟 950 ms (target ≤ 800 ms)" in text
    positions = next(t.value for t in at.table if "ladder" in t.value.columns)
    assert positions["stop"].iloc[0] == "109.90"


@pytest.mark.parametrize("which", ["carry", "pm"])
def test_unconfigured_and_broken_files_are_said_not_raised(monkeypatch, tmp_path: Path, which: str) -> None:
    at = page(monkeypatch, which)
    assert f"--{which}-dir" in body(at)
    (tmp_path / (CARRY_STATUS_FILE if which == "carry" else PM_STATUS_FILE)).write_text("{not json")
    at = page(monkeypatch, which, **{which: tmp_path})
    assert "cannot be read" in body(at)


def test_the_sidebar_switches_pages_and_the_grid_page_is_the_default(monkeypatch, tmp_path: Path) -> None:
    atomic_write_model(tmp_path / CARRY_STATUS_FILE, fx.carry_status())
    at = page(monkeypatch, "grid", carry=tmp_path)
    assert "No shared folder" in body(at)  # the ETF page, unchanged
    at.sidebar.radio[0].set_value("carry").run()
    assert not at.exception and "state 状态=HEDGING" in body(at)
    assert at.query_params["page"] in ("carry", ["carry"])  # kept in the URL
