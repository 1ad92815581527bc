"""The HTTP API (loopback, token, coded refusals, the manage response shape) and the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core.oms.reasons import VenueReason
from crypto.cli import main as crypto_main
from crypto.pm.cli import main as pm_main
from crypto.pm.decisions import MarketView
from crypto.pm.http_api import ManageResponse, PmHttpServer
from crypto.pm.manager import Manager
from crypto.venue.types import VenueError
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_manager import SYM, FakeTreasury, build

TOKEN = "t0ken-for-tests"


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Manager, dict[str, MarketView]]]:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, treasury=FakeTreasury(D(1000), D(200)))
    views: dict[str, MarketView] = {SYM: MarketView(mark=D(100), ts_ms=0, atr=D(2))}
    api = PmHttpServer(m, TOKEN, lambda s: (views[s], False) if s in views else None)
    host, p = api.start()
    yield f"http://{host}:{p}", m, views
    api.stop()


def call(url: str, path: str, body: dict[str, Any] | None = None, token: str | None = TOKEN,
         raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_and_metrics(served: tuple[str, Manager, dict[str, MarketView]]) -> None:
    url, _, _ = served
    status, body = call(url, "/health", token=None)
    assert status == 200 and body["redis"] and body["store"] and body["venue"]
    assert "stop_move_success_rate" in body["sli"] and "tick_lag_ms" in body
    assert call(url, "/metrics", token=None)[0] == 401
    status, sli = call(url, "/metrics")
    assert status == 200 and "order_p95_ms" in sli


def test_manage_returns_the_plan_and_the_orders(served: tuple[str, Manager, dict[str, MarketView]]) -> None:
    url, m, views = served
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), views[SYM])
    views[SYM] = MarketView(mark=D(107), ts_ms=0, atr=D(2))
    status, body = call(url, "/positions/manage", {"pos_id": "p1"})
    assert status == 200
    ManageResponse.model_validate(body)
    assert body["plan"]["stop"] == "102.0" or D(body["plan"]["stop"]) == D(102)
    [order] = body["orders"]
    assert order["kind"] == "STOP_MOVE" and order["type"] == "stop_market" and order["reduce_only"]
    assert order["status"] == "DONE" and len(order["client_order_id"]) <= 32 and order["client_order_id"].isalnum()
    assert len(order["cancel_client_order_ids"]) == 1
    # A caller may bring its own price and signal.
    status, body = call(url, "/positions/manage", {"pos_id": "p1", "mark": "108", "signal": 1})
    assert status == 200 and [a["type"] for a in body["plan"]["actions"]][0] == "ADD_ON"


@pytest.mark.parametrize(
    ("body", "token", "status", "code"),
    [({"pos_id": "nope"}, TOKEN, 404, "POSITION_UNKNOWN"),
     ({"pos_id": "p1"}, "wrong", 401, "UNAUTHORISED"),
     ({"pos_id": "p1"}, None, 401, "UNAUTHORISED"),
     ({"pos_id": "p1", "signal": 2}, TOKEN, 400, "BODY_INVALID"),
     ({"pos_id": "p1", "extra": 1}, TOKEN, 400, "BODY_INVALID"),
     ({"pos_id": "p1", "mark": "-1"}, TOKEN, 400, "BODY_INVALID")],
)
def test_manage_refusals_are_coded(served: tuple[str, Manager, dict[str, MarketView]], body: dict[str, Any],
                                   token: str | None, status: int, code: str) -> None:
    url, m, views = served
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), views[SYM])
    got_status, got = call(url, "/positions/manage", body, token=token)
    assert (got_status, got["error"]) == (status, code)


def test_manage_while_a_pass_holds_the_lock_is_409(served: tuple[str, Manager, dict[str, MarketView]]) -> None:
    url, m, views = served
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), views[SYM])
    with m.state.hold("lock:pos:p1", 10_000):
        status, body = call(url, "/positions/manage", {"pos_id": "p1"})
    assert (status, body["error"]) == (409, "LOCK_BUSY")


def test_garbage_body_and_unknown_route(served: tuple[str, Manager, dict[str, MarketView]]) -> None:
    url, _, _ = served
    assert call(url, "/positions/manage", raw=b"{not json")[1]["error"] == "BODY_INVALID"
    assert call(url, "/nowhere", {"a": 1})[0] == 404


def test_transfer_trigger_is_idempotent_by_id(served: tuple[str, Manager, dict[str, MarketView]]) -> None:
    url, m, _ = served
    s1, b1 = call(url, "/auto-transfer/trigger", {"transfer_id": "ops-1"})
    s2, b2 = call(url, "/auto-transfer/trigger", {"transfer_id": "ops-1"})
    assert s1 == s2 == 200 and b1 == b2 and b1["transfer"]["state"] == "EXECUTED"
    assert m.treasury_port.sent == ["ops-1"]  # type: ignore[union-attr]
    assert call(url, "/auto-transfer/trigger", {"transfer_id": "bad id!"})[1]["error"] == "BODY_INVALID"
    assert call(url, "/auto-transfer/trigger", {})[1] == {"result": "TREASURY_NO_NEED"}


def test_replay_prints_one_positions_life(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), MarketView(mark=D(100), ts_ms=0, atr=D(2)))
    m.manage("p1", MarketView(mark=D(111), ts_ms=0, atr=D(2)))
    m.manage("p1", MarketView(mark=D(101), ts_ms=0, atr=D(2)))
    m.store.close()
    assert crypto_main(["pm", "replay", "--pos-id", "p1", "--db", str(tmp_path / "pm.db")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[1] == "entry" and "closed" in out[-1]
    assert any("TP_PARTIAL" in line for line in out) and any("EXIT" in line for line in out)
    assert pm_main(["replay", "--pos-id", "zzz", "--db", str(tmp_path / "pm.db")]) == 1
    assert pm_main(["replay", "--pos-id", "p1", "--db", str(tmp_path / "none.db")]) == 2


def test_serve_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GRIDBRIDGE_PM_TOKEN", raising=False)
    rc = pm_main(["serve", "--redis", "redis://127.0.0.1:1/0", "--db", str(tmp_path / "x.db"), "--venue", "okx-fake"])
    assert rc == 2


def test_serve_refuses_a_bad_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", "x-long-token")
    cfg = tmp_path / "pm.json"
    cfg.write_text(json.dumps({"add_on": {"gate_roe": "0"}}))
    rc = pm_main(["serve", "--redis", "redis://127.0.0.1:1/0", "--db", str(tmp_path / "x.db"), "--venue", "okx-fake",
                  "--config", str(cfg)])
    assert rc == 2 and "ADD_ON_GATE_NOT_POSITIVE" in capsys.readouterr().err


def test_a_venue_failure_is_a_coded_503(served: tuple[str, Manager, dict[str, MarketView]]) -> None:
    url, m, _ = served

    def down(*_a: object) -> tuple[D, D]:
        raise VenueError(VenueReason.NETWORK, "refused")

    m.treasury_port.free_balances = down  # type: ignore[union-attr,method-assign]
    status, body = call(url, "/auto-transfer/trigger", {"transfer_id": "ops-2"})
    assert (status, body) == (503, {"error": "VENUE_UNAVAILABLE", "detail": "NETWORK"})
