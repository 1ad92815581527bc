"""Attacks on the pm's HTTP API: one entry with an extreme field, a huge or deep body, wrong types, a wrong
token. Each is a coded refusal, nothing is sent to the venue, and the service keeps serving."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from crypto.pm.decisions import MarketView
from crypto.pm.http_api import PmHttpServer
from crypto.pm.manager import Manager
from tests.crypto.pm.doubles import FakePort, ManualClock
from tests.crypto.pm.test_http_cli import TOKEN, call
from tests.crypto.pm.test_manager import SYM, FakeTreasury, build


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Manager, FakePort]]:
    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock, treasury=FakeTreasury(D(1000), D(200)))
    views: dict[str, MarketView] = {SYM: MarketView(mark=D(100), ts_ms=0, atr=D(2))}
    api = PmHttpServer(m, TOKEN, lambda s: (views[s], False) if s in views else None)
    host, p = api.start()
    m.open_position("p1", SYM, "swap", 1, D(2), D(100), D(40), views[SYM])
    yield f"http://{host}:{p}", m, port
    api.stop()


def _alive(url: str) -> None:
    status, body = call(url, "/health", token=None)
    assert status == 200 and body["redis"]


RAW_BODIES: list[tuple[str, bytes]] = [
    ("mark 1e30", b'{"pos_id": "p1", "mark": "1e30"}'),
    ("mark 1e30 number", b'{"pos_id": "p1", "mark": 1e30}'),
    ("mark NaN", b'{"pos_id": "p1", "mark": "NaN"}'),
    ("mark Infinity", b'{"pos_id": "p1", "mark": "Infinity"}'),
    ("mark -0", b'{"pos_id": "p1", "mark": "-0"}'),
    ("mark 0", b'{"pos_id": "p1", "mark": 0}'),
    ("mark 35 digits", b'{"pos_id": "p1", "mark": "12345678901234567890123456789012345"}'),
    ("mark 1e-30", b'{"pos_id": "p1", "mark": "1e-30"}'),
    ("mark far from the feed", b'{"pos_id": "p1", "mark": "1000"}'),
    ("atr 1e30", b'{"pos_id": "p1", "atr": "1e30"}'),
    ("atr NaN", b'{"pos_id": "p1", "atr": "NaN"}'),
    ("liq NaN", b'{"pos_id": "p1", "mark": "100", "liq_price": "NaN"}'),
    ("liq 1e30", b'{"pos_id": "p1", "mark": "100", "liq_price": "1e30"}'),
    ("mark a word", b'{"pos_id": "p1", "mark": "abc"}'),
    ("mark a list", b'{"pos_id": "p1", "mark": [1]}'),
    ("pos_id a number", b'{"pos_id": 1}'),
    ("signal a float", b'{"pos_id": "p1", "signal": 1.5}'),
    ("signal true", b'{"pos_id": "p1", "signal": true}'),
    ("regime unknown", b'{"pos_id": "p1", "regime": "moon"}'),
    ("a list body", b'[{"pos_id": "p1"}]'),
    ("a string body", b'"p1"'),
    ("null", b"null"),
    ("deep nesting", b"[" * 4000 + b"]" * 4000),
    ("not utf-8", b'{"pos_id": "\xff\xfe"}'),
]


@pytest.mark.parametrize(("name", "raw"), RAW_BODIES, ids=[n for n, _ in RAW_BODIES])
def test_an_extreme_field_is_a_coded_400_and_nothing_is_sent(served: tuple[str, Manager, FakePort], name: str,
                                                             raw: bytes) -> None:
    url, m, port = served
    before = port.place_calls
    status, body = call(url, "/positions/manage", raw=raw)
    assert status == 400, (name, status, body)
    assert body["error"] in ("BODY_INVALID", "BODY_SIZE", "OUT_OF_BAND"), body
    assert port.place_calls == before
    pos = m.state.load_position("p1")
    assert pos is not None and not pos.closed and pos.qty == D(2) and not pos.ladder_fired
    _alive(url)


def _raw_post(url: str, headers: dict[str, str], body: bytes = b"", chunks: Iterator[bytes] | None = None
              ) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/positions/manage")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            if chunks is not None:
                for c in chunks:
                    conn.send(c)
            elif body:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all: that is the point
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_a_100_mb_body_is_refused_unread(served: tuple[str, Manager, FakePort]) -> None:
    url, _, _ = served
    size = 100 * 1024 * 1024

    def chunks() -> Iterator[bytes]:
        block = b" " * (1024 * 1024)
        for _ in range(100):
            yield block

    status, body = _raw_post(url, {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(size)},
                             chunks=chunks())
    assert (status, body["error"]) == (400, "BODY_SIZE")
    _alive(url)


@pytest.mark.parametrize("length", ["-5", "abc", "1e3", str(10**30)])
def test_a_lying_content_length_is_refused(served: tuple[str, Manager, FakePort], length: str) -> None:
    url, _, _ = served
    status, body = _raw_post(url, {"Authorization": f"Bearer {TOKEN}", "Content-Length": length})
    assert (status, body["error"]) == (400, "BODY_SIZE")
    _alive(url)


def test_a_short_body_does_not_hang_a_worker_for_ever(served: tuple[str, Manager, FakePort]) -> None:
    """Content-Length promises 100 bytes, 10 arrive, the client waits: the handler times out and the
    service keeps answering others meanwhile."""
    url, _, _ = served
    host, port = url.removeprefix("http://").split(":")
    stalled = http.client.HTTPConnection(host, int(port), timeout=30)
    stalled.putrequest("POST", "/positions/manage")
    stalled.putheader("Authorization", f"Bearer {TOKEN}")
    stalled.putheader("Content-Length", "100")
    stalled.endheaders()
    stalled.send(b'{"pos_id":')
    try:
        _alive(url)  # others are served while one connection stalls
    finally:
        stalled.close()


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer " + TOKEN, TOKEN, "Bearer " + TOKEN + "x",
                                    "Basic " + TOKEN, "Bearer \u00e9"])
def test_a_wrong_token_is_401_on_every_route(served: tuple[str, Manager, FakePort], header: str) -> None:
    url, _, _ = served
    for path, body in (("/positions/manage", b'{"pos_id": "p1"}'), ("/auto-transfer/trigger", b"{}")):
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Authorization", header.encode("utf-8").decode("latin-1"))
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            conn.send(body)
            resp = conn.getresponse()
            assert resp.status == 401 and json.loads(resp.read())["error"] == "UNAUTHORISED"
        finally:
            conn.close()
    _alive(url)


def test_a_flood_of_stalled_connections_is_bounded(redis_url: str, tmp_path: Path) -> None:
    """200 connections that send half a request and wait: at most 8 threads serve them (the cap of this
    server), the rest get 503 BUSY at once; when they go away the API answers again. Before: a thread each."""
    import socket
    import threading

    port, clock = FakePort(), ManualClock()
    m = build(redis_url, tmp_path / "pm.db", port, clock)
    api = PmHttpServer(m, TOKEN, lambda s: None, max_connections=8)
    host, p = api.start()
    url = f"http://{host}:{p}"
    threads_before = threading.active_count()
    stalled: list[socket.socket] = []
    busy = 0
    try:
        for _ in range(200):
            s = socket.create_connection((host, p), timeout=10)
            s.sendall(b"POST /positions/manage HTTP/1.1\r\nContent-Length: 100\r\n")
            stalled.append(s)
        for s in stalled[8:]:
            data = s.recv(200)
            busy += data.startswith(b"HTTP/1.1 503")
        assert busy >= 150
        assert threading.active_count() - threads_before <= 8 + 2
    finally:
        for s in stalled:
            s.close()
    deadline = time.monotonic() + 30
    while True:  # the stalled handlers see their sockets closed and free their slots: progress, bounded
        try:
            status, body = call(url, "/health", token=None)
        except OSError:
            status = 0
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200
    api.stop()


@pytest.mark.parametrize("raw", [b'{"transfer_id": "ops-9", "approve": "yes"}', b'{"transfer_id": "ops-9", "approve": 1}',
                                 b'{"transfer_id": "ops-9", "approve": "true"}', b'{"transfer_id": 12}',
                                 b'{"transfer_id": "' + b"x" * 65 + b'"}', b'{"transfer_id": "a b"}'])
def test_a_transfer_trigger_with_a_loose_field_is_refused(served: tuple[str, Manager, FakePort], raw: bytes) -> None:
    """Before: "yes" and 1 were taken as approve=true (pydantic's lax bool) for a transfer of money."""
    url, m, _ = served
    status, body = call(url, "/auto-transfer/trigger", raw=raw)
    assert (status, body["error"]) == (400, "BODY_INVALID")
    assert m.treasury_port.sent == []  # type: ignore[union-attr]
