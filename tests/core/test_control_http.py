from __future__ import annotations

import http.client
import json
import logging
import queue

import pytest

from core.control.http_door import ControlHttpServer
from tests.core.stubs import at

TOKEN = "tok-123-secret"


@pytest.fixture
def door():
    q: queue.SimpleQueue = queue.SimpleQueue()
    rejects: list = []
    server = ControlHttpServer(q, TOKEN, clock=lambda: at(), on_reject=rejects.append)
    host, port = server.start()
    yield host, port, q, rejects
    server.stop()


def _post(host: str, port: int, body: dict, token: str | None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", "/v1/commands", body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_binds_loopback_by_default(door) -> None:
    assert door[0] == "127.0.0.1"


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_missing_or_bad_token_is_401_and_queues_nothing(door, token, caplog) -> None:
    host, port, q, rejects = door
    with caplog.at_level(logging.DEBUG):
        status, _ = _post(host, port, {"action": "FORCE_HALT"}, token)
    assert status == 401 and q.empty()
    assert rejects and rejects[-1].data["reason"] == "CONTROL_UNAUTHORISED"
    assert TOKEN not in caplog.text


def test_good_token_queues_command(door, caplog) -> None:
    host, port, q, _ = door
    with caplog.at_level(logging.DEBUG):
        status, body = _post(host, port, {"action": "FORCE_UNLOCK_SYMBOL", "symbol": "SOLUSDT"}, TOKEN)
    assert status == 202
    item = q.get(timeout=2)
    assert item.command.command_id == body["command_id"] and item.source == "http"
    assert item.command.issued_at == at()
    assert TOKEN not in caplog.text


def test_bad_body_is_400(door) -> None:
    host, port, q, _ = door
    assert _post(host, port, {"action": "LAUNCH_MISSILES"}, TOKEN)[0] == 400
    assert _post(host, port, {"action": "FORCE_UNLOCK_SYMBOL"}, TOKEN)[0] == 400
    assert q.empty()


def test_refuses_to_start_without_token() -> None:
    with pytest.raises(ValueError):
        ControlHttpServer(queue.SimpleQueue(), None, clock=lambda: at())
