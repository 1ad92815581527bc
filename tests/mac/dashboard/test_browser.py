"""The real app in headless Chromium: key numbers against the files, Force Halt end to end, screenshots.

Needs Debian's ``chromium`` (``apt-get install -y chromium fonts-wqy-zenhei``) and the ``playwright`` Python
package (never ``playwright install``: we drive the system browser). Screenshots of each section go to
``artifacts/screenshots/`` for CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from core.control import InMemoryNonceStore, verify_command
from core.control.file_door import write_ack
from mac.dashboard.launch import streamlit_command
from shared_schema.types import CST
from tests.kit import procs
from tests.mac.dashboard import fixtures as fx

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and Path(p).exists()), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
SECRET = "browser-test-secret"
SAFETY_MS = 180_000  # a safety net for a stuck page, never a deadline a slow machine has to meet
SECTIONS = {
    "pool": "Pool 资金池",
    "penalty": "Step penalty 步长惩罚",
    "grids": "Grids 网格",
    "alpha": "Alpha race 超额收益竞赛",
    "orders": "Signals & results 信号与回报",
    "risk": "Risk 风控",
    "kill_switch": "Kill switch 紧急控制",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    """Ends as soon as streamlit answers or exits; the timeout is only a safety net for a hung start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("streamlit did not come up")


@pytest.fixture
def server(tmp_path: Path):
    if CHROMIUM is None:
        pytest.skip("chromium not found (apt-get install -y chromium); the browser test needs it")
    shared = fx.build_run(tmp_path)
    port = _free_port()
    args = argparse.Namespace(shared_dir=str(shared), replay=None, state_dir=None, port=port, address="127.0.0.1",
                              refresh=1.0, stale_after=600.0)
    argv, env = streamlit_command(args)
    env["GRIDBRIDGE_CONTROL_SECRET"] = SECRET
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, shared
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_dashboard_in_chromium(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download)")
    url, shared = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    committed = sum(fx.USED.values()) + sum(fx.FROZEN.values())
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(url)
            page.get_by_text("Kill switch 紧急控制").wait_for(timeout=SAFETY_MS)
            # Wait for what is checked (the figures, then plotly's charts), never a fixed pause.
            expected = (f"{committed:,.2f}", f"{fx.POOL - committed:,.2f}", f"{fx.UTILIZATION:.2%}",
                        f"{fx.ALPHA['159201.SZ']:,.2f}", f"{fx.ALPHA['512890.SH']:,.2f}", "DEGRADED",
                        "stays on until utilisation falls below 85%")
            assert procs.wait_for(lambda: all(e in page.inner_text("body") for e in expected), SAFETY_MS / 1000), \
                [e for e in expected if e not in page.inner_text("body")]
            page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=SAFETY_MS)
            for name, heading in SECTIONS.items():
                target = page.get_by_role("heading", name=heading).first
                target.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(400)  # only the picture waits on this: nothing is asserted from it
                page.screenshot(path=str(SHOTS / f"{name}.png"))

            page.get_by_role("button", name="Force Halt 强制暂停").click()
            page.get_by_role("button", name="Confirm 确认").click()
            assert procs.wait_for(lambda: any((shared / "control").glob("*.json")), SAFETY_MS / 1000), \
                "no signed command file"
            files = list((shared / "control").glob("*.json"))
            assert len(files) == 1, files
            verdict = verify_command(files[0].read_bytes(), SECRET.encode(), InMemoryNonceStore(), datetime.now(CST))
            assert verdict.ok and verdict.command.action.value == "FORCE_HALT"
            page.get_by_text("sent FORCE_HALT").wait_for(timeout=SAFETY_MS)
            write_ack(shared, verdict.command.command_id, True, None, datetime.now(CST))
            page.get_by_text("accepted by the executor").first.wait_for(timeout=SAFETY_MS)  # the fragment refreshes itself
            page.get_by_role("heading", name=SECTIONS["kill_switch"]).first.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "kill_switch_acknowledged.png"))
        finally:
            browser.close()
    assert os.path.getsize(SHOTS / "pool.png") > 10_000
