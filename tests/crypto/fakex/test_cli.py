"""``gridbridge crypto fakex serve`` as a real process: it prints where it listens, its clock follows wall
time x --speed, and a second process on the same --state file resumes the first one's state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import ccxt

from crypto.fakex.server import wait_until

ROOT = Path(__file__).resolve().parents[3]


def _serve(state: Path, speed: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    code = "import sys; from crypto.fakex.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--seed", "5", "--scenario", "trend",
         "--state", str(state), "--speed", speed],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else "no output"
    return proc, json.loads(line)


def _client(info: dict[str, object]) -> ccxt.okx:
    okx = ccxt.okx({"apiKey": info["apiKey"], "secret": info["secret"], "password": info["password"],
                    "enableRateLimit": False, "timeout": 10_000})
    okx.urls["api"]["rest"] = info["url"]
    return okx


def test_serve_runs_at_speed_and_a_second_process_resumes_the_state(tmp_path: Path) -> None:
    state = tmp_path / "fakex-state.json"
    proc, info = _serve(state, "3600")  # one model hour per wall second
    try:
        okx = _client(info)
        okx.load_markets()
        t0 = okx.fetch_time()
        okx.create_order("BTC/USDT:USDT", "limit", "buy", 1, 30000, {"marginMode": "cross", "clientOrderId": "p1"})
        # Polled every 0.3 s: under public/time's 10 requests per 2 s.
        assert wait_until(lambda: okx.fetch_time() - t0 >= 3_600_000, timeout_s=30, every_s=0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and state.exists()
    saved_ms = json.loads(state.read_text())["now_ms"]
    proc, info = _serve(state, "1")
    assert info["scenario"] == "trend" and info["model_ms"] >= saved_ms
    try:
        okx = _client(info)
        okx.load_markets()
        assert okx.fetch_order(None, "BTC/USDT:USDT", {"clientOrderId": "p1"})["status"] == "open"
        assert okx.fetch_time() >= saved_ms
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_refuses_a_bad_speed() -> None:
    code = "import sys; from crypto.fakex.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "serve", "--speed", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "--speed must be positive" in done.stderr


def test_a_killed_server_restarts_from_its_autosaved_state(tmp_path: Path) -> None:
    state = tmp_path / "fakex-state.json"
    proc, info = _serve(state, "1")
    try:
        okx = _client(info)
        okx.load_markets()
        okx.create_order("BTC/USDT:USDT", "limit", "buy", 2, 30000, {"marginMode": "cross", "clientOrderId": "k9"})
        # The serve loop rewrites the state file every second: wait until it holds the order, then kill -9.
        assert wait_until(lambda: state.exists() and '"k9"' in state.read_text(), timeout_s=30, every_s=0.1)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    proc, info = _serve(state, "1")
    try:
        okx = _client(info)
        okx.load_markets()
        order = okx.fetch_order(None, "BTC/USDT:USDT", {"clientOrderId": "k9"})
        assert order["status"] == "open" and order["amount"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
