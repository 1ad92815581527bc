"""Notifications: a log sink, a webhook sink that posts JSON to loopback only, and the engine's use of them."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.events import AuditCode, AuditEvent, Severity
from crypto.carry.notify import FanOut, LogSink, NotifyConfigError, WebhookSink

EVENT = AuditEvent(ts=datetime(2026, 1, 1, tzinfo=timezone.utc), code=AuditCode.CARRY_MARGIN_TOPUP,
                   severity=Severity.WARN, cause="margin health under the top-up line", symbol="BTC/USDT:USDT",
                   data={"amount": "12.34"})


@pytest.fixture
def receiver():
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_audit_record(receiver) -> None:
    url, got = receiver
    sink = WebhookSink(url)
    sink.notify(EVENT)
    assert sink.sent == 1 and got == [EVENT.to_record()]


@pytest.mark.parametrize("url,code", [("http://example.com/hook", "WEBHOOK_NOT_LOOPBACK"),
                                      ("http://10.0.0.5:8080/x", "WEBHOOK_NOT_LOOPBACK"),
                                      ("ftp://127.0.0.1/x", "WEBHOOK_SCHEME")])
def test_webhook_refuses_anything_but_loopback(url: str, code: str) -> None:
    with pytest.raises(NotifyConfigError) as e:
        WebhookSink(url)
    assert e.value.code == code


def test_a_dead_webhook_is_counted_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", timeout_s=0.5)
    with caplog.at_level(logging.WARNING):
        FanOut([sink, LogSink()]).notify(EVENT)
    assert sink.failed == 1 and "CARRY_MARGIN_TOPUP" in caplog.text
