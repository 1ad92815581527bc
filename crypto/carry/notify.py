"""Notifications of the carry engine: one ``Notifier`` protocol, a log sink and a local webhook sink.

The webhook sink posts JSON to a **loopback** URL only (127.0.0.1, ::1, localhost): a relay running on the
same machine forwards to a chat or a pager; this process never talks to the outside network. A failed post
is counted and logged, never raised: a notification must not stop the engine.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from core.events import AuditEvent

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
log = logging.getLogger("crypto.carry")


class Notifier(Protocol):
    def notify(self, event: AuditEvent) -> None: ...


class NotifyConfigError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class LogSink:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    def notify(self, event: AuditEvent) -> None:
        self.log.warning("%s %s %s %s", event.code.value, event.symbol or "-", event.cause, dict(event.data))


class WebhookSink:
    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise NotifyConfigError("WEBHOOK_SCHEME", f"{url!r}: http(s) only")
        if parts.hostname not in LOOPBACK_HOSTS:
            raise NotifyConfigError("WEBHOOK_NOT_LOOPBACK", f"{url!r}: the webhook must be on this machine")
        self.url = url
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0

    def notify(self, event: AuditEvent) -> None:
        body = json.dumps(event.to_record(), default=str).encode("utf-8")
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - loopback checked
                resp.read()
            self.sent += 1
        except (urllib.error.URLError, OSError) as exc:
            self.failed += 1
            log.warning("webhook %s failed: %s", self.url, exc)


class FanOut:
    def __init__(self, sinks: Sequence[Notifier]) -> None:
        self.sinks = tuple(sinks)

    def notify(self, event: AuditEvent) -> None:
        for sink in self.sinks:
            sink.notify(event)
