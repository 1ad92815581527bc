"""The crypto pages in headless Chromium (Debian's ``chromium``, driven by the ``playwright`` package; never a
downloaded browser): the dashboard runs on status files made by the real carry dry run and the real pm
service, both pages show their key figures, and a status file broken under the running page leaves the last
good view on screen with a warning. Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import argparse
import subprocess
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.carry.status_file import CARRY_STATUS_FILE, CarryStatusReader
from crypto.pm.status_file import PmStatusReader
from mac.dashboard.crypto_view_models import ms, pct, qty, usdt
from mac.dashboard.launch import streamlit_command
from tests.kit import procs
from tests.mac.dashboard import test_browser as etf
from tests.mac.dashboard_crypto import fixtures as fx

pytestmark = pytest.mark.browser

SAFETY_S = 180.0  # a safety net for a stuck page, never a deadline a slow machine has to meet


@pytest.fixture
def crypto_server(tmp_path: Path):
    if etf.CHROMIUM is None:
        pytest.skip("chromium not found (apt-get install -y chromium); the browser test needs it")
    carry_dir, pm_dir = tmp_path / "carry", tmp_path / "pm"
    fx.run_carry_dry_run(carry_dir, days=3)
    with fx.redis_server(tmp_path / "redis") as url:
        fx.run_pm(pm_dir, url)
    port = etf._free_port()
    args = argparse.Namespace(shared_dir=None, replay=None, state_dir=None, carry_dir=str(carry_dir),
                              pm_dir=str(pm_dir), port=port, address="127.0.0.1", refresh=1.0, stale_after=600.0)
    argv, env = streamlit_command(args)
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        etf._wait_healthy(base, proc)
        yield base, carry_dir, pm_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _shows(page, expected: list[str]) -> None:
    assert procs.wait_for(lambda: all(e in page.inner_text("body") for e in expected), SAFETY_S), \
        [e for e in expected if e not in page.inner_text("body")]


def test_crypto_pages_in_chromium(crypto_server) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    base, carry_dir, pm_dir = crypto_server
    carry = CarryStatusReader(carry_dir).read().model
    pm = PmStatusReader(pm_dir).read().model
    assert carry is not None and pm is not None
    [pair] = carry.pairs
    [pos] = pm.positions
    etf.SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=etf.CHROMIUM, args=etf.ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            page.goto(base + "/?page=carry")
            page.get_by_text("Carry engine 资金费套利").first.wait_for(timeout=SAFETY_S * 1000)
            _shows(page, ["HEDGING", usdt(pair.funding, 4), pct(pair.margin_health), "armed (not tripped)",
                          qty(pair.short_qty), qty(pair.spot_qty), "OPENING → HEDGING (LEGS_FILLED)",
                          "above the top-up line 80% (close-all under 50%)", "CARRY_FUNDING_SETTLED"])
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=SAFETY_S * 1000)
            page.screenshot(path=str(etf.SHOTS / "crypto_carry.png"), full_page=True)

            # A broken file under the running page: the last good view stays, and the page says so.
            (carry_dir / CARRY_STATUS_FILE).write_text('{"kind": "gridbridge.carry_status/1", "seq": ')
            _shows(page, ["showing the last good view", usdt(pair.funding, 4), "HEDGING"])
            page.screenshot(path=str(etf.SHOTS / "crypto_carry_invalid_file.png"), full_page=True)

            page.goto(base + "/?page=pm")
            page.get_by_text("Position manager 仓位管理").first.wait_for(timeout=SAFETY_S * 1000)
            p95 = ms(pm.slis.order_p95_ms)
            assert pm.slis.stop_move_success_rate == 1.0 and pm.slis.order_p95_ms is not None
            _shows(page, ["end-to-end order p95", p95, "SLO MET", "100.00%", "target ≤ 800 ms", "≥ 99%",
                          pos.pos_id, usdt(pos.stop, 2), "1/2 rungs (0)", "TP_PARTIAL", "STOP_MOVE"])
            assert "SLO BREACHED" not in page.inner_text("body")
            page.screenshot(path=str(etf.SHOTS / "crypto_pm.png"), full_page=True)

            # The sidebar leads back to the ETF page, which has no shared folder here and says so.
            page.get_by_text("ETF grid 网格").first.click()
            _shows(page, ["No shared folder"])
        finally:
            browser.close()
    assert (etf.SHOTS / "crypto_carry.png").stat().st_size > 10_000
    assert pos.stop is not None and pos.stop > D(100)  # the stop was moved up past the entry by the ROE locks
