"""``gridbridge crypto pm serve`` as a real process against the local exchange and a real redis-server:
it watches the venue, attaches a stop to a new position, answers the HTTP API, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto.venue.factory import VenueCredentials, make_venue
from crypto.venue.types import OrderRequest

server = pytest.importorskip("crypto.fakex.server")
pytestmark = pytest.mark.slow
SWAP = "BTC/USDT:USDT"


def _get(url: str, token: str | None = None, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_serve_process_end_to_end(redis_url: str, tmp_path: Path) -> None:
    with server.FakeExchange.start(seed=7, scenario="calm") as fx:
        c = fx.credentials
        creds = tmp_path / "creds.json"
        creds.write_text(json.dumps({"api_key": c.api_key, "secret": c.secret, "passphrase": c.passphrase}))
        cfg = tmp_path / "pm.json"
        cfg.write_text(json.dumps({"manage_interval_s": 10}))
        env = {**os.environ, "GRIDBRIDGE_PM_TOKEN": "tok-for-tests"}
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from gridbridge.cli import main; sys.exit(main())", "crypto", "pm",
             "serve", "--redis", redis_url, "--db", str(tmp_path / "pm.db"), "--venue", "okx-fake",
             "--venue-url", fx.url, "--credentials", str(creds), "--config", str(cfg), "--symbols", SWAP],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).resolve().parents[3])
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line.startswith("pm http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")  # type: ignore[union-attr]
            base = line.split()[1]
            venue = make_venue("okx-fake", fx.url, VenueCredentials(api_key=c.api_key, secret=c.secret,
                                                                    passphrase=c.passphrase))
            venue.set_leverage(SWAP, D(3), "isolated")
            venue.place_order(OrderRequest(SWAP, "buy", D("0.05"), "market", "serveentry1", margin_mode="isolated"))
            t0 = time.monotonic()
            stops: list[object] = []
            while time.monotonic() - t0 < 20 and not stops:  # bounded wait on progress
                stops = [o for o in venue.open_orders(SWAP) if o.type == "stop_market"]
                if not stops:
                    time.sleep(0.05)
            seen_s = time.monotonic() - t0
            assert len(stops) == 1, "no stop attached"
            print(f"serve: stop on the venue {seen_s * 1000:.0f} ms after the fill (poll granularity 50 ms)")
            status, health = _get(base + "/health")
            assert status == 200 and health["redis"] and health["store"] and health["venue"]
            status, manage = _get(base + "/positions/manage", "tok-for-tests", {"pos_id": "nope"})
            assert status == 404 and manage["error"] == "POSITION_UNKNOWN"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        assert rc == 0
