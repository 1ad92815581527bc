"""``carry run`` / ``bootstrap`` / ``close-all`` as processes against the fake's OKX server (sped-up clock)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.carry.config import AccountConfig, CarryConfig, write_config
from crypto.fakex.server import FakeExchange

ROOT = Path(__file__).resolve().parents[3]


def _carry(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridbridge.cli", "crypto", "carry", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.slow
def test_run_then_bootstrap_shows_the_position_then_close_all(tmp_path: Path) -> None:
    balances = {"trading": {"USDT": D("7500")}, "funding": {"USDT": D("2500")}}
    with FakeExchange.start(seed=4, scenario="calm", balances=balances, speed=300.0) as fx:
        c = fx.credentials
        env = {**os.environ, "OKX_API_KEY": c.api_key, "OKX_SECRET": c.secret, "OKX_PASSPHRASE": c.passphrase}
        cfg_dir, state = tmp_path / "cfg", tmp_path / "state"
        write_config(CarryConfig(account=AccountConfig(venue="okx-fake", base_url=fx.url, state_dir=str(state))),
                     cfg_dir)
        assert _carry(["bootstrap", "--config", str(cfg_dir)], env).returncode == 0  # clean, nothing held
        proc = subprocess.Popen([sys.executable, "-m", "gridbridge.cli", "crypto", "carry", "run", "--config",
                                 str(cfg_dir), "--poll-s", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not fx.exchange.positions(["BTC-USDT-SWAP"]):
                time.sleep(0.2)
            assert fx.exchange.positions(["BTC-USDT-SWAP"]), "the engine never opened"
            time.sleep(1.5)  # the open's journal and stop placement finish inside the same step
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        boot = _carry(["bootstrap", "--config", str(cfg_dir)], env)
        report = json.loads(boot.stdout)
        assert boot.returncode == 0, report
        assert report["last_exit_clean"] is True
        assert [p["symbol"] for p in report["leftover_positions"]] == ["BTC/USDT:USDT"]
        closed = _carry(["close-all", "--config", str(cfg_dir)], env)
        assert closed.returncode == 0, closed.stderr[-2000:]
        assert fx.exchange.positions(["BTC-USDT-SWAP"]) == []
        status = json.loads(_carry(["status", "--state", str(state)], env).stdout)
        assert status["pairs"]["BTC/USDT:USDT"]["state"] == "STOPPED"
