"""Door (b): a small local HTTP API that queues kill-switch commands.

``POST /v1/commands`` with ``Authorization: Bearer <GRIDBRIDGE_CONTROL_TOKEN>`` and a JSON body
``{"action": "FORCE_HALT", "symbol": null, "issuer": "ops"}`` puts a ``ControlCommand`` on the queue and
answers 202 ``{"command_id": ...}``. A missing or wrong token gets 401, a bad body 400, anything else 404.
``GET /v1/health`` answers 200 without a token. The server binds 127.0.0.1 unless told otherwise, compares
the token with ``hmac.compare_digest`` and never logs it (request logging is replaced by a line without
headers). Time comes from the injected clock.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.control.commands import ControlAction, ControlCommand, new_command
from core.control.killswitch import rejection_event
from core.events import AuditEvent
from core.http_thread import ServerThread, bearer_token_matches

log = logging.getLogger(__name__)

TOKEN_ENV = "GRIDBRIDGE_CONTROL_TOKEN"
MAX_BODY = 4096


def token_from_env(environ: Mapping[str, str]) -> str | None:
    value = environ.get(TOKEN_ENV, "")
    return value or None


@dataclass(frozen=True)
class SubmittedCommand:
    """What every door puts on the queue: the command and where it came from."""

    command: ControlCommand
    source: str


class HttpCommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: ControlAction
    symbol: str | None = Field(default=None, max_length=32)
    issuer: str = Field(default="http", min_length=1, max_length=64)


class ControlHttpServer:
    """Owns the HTTP server thread; ``start`` returns the bound (host, port) (port 0 = ephemeral)."""

    def __init__(
        self,
        commands: queue.SimpleQueue[SubmittedCommand],
        token: str | None,
        clock: Callable[[], datetime],
        host: str = "127.0.0.1",
        port: int = 0,
        on_reject: Callable[[AuditEvent], None] | None = None,
        ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        if not token:
            raise ValueError(f"refusing to start the control API without {TOKEN_ENV}")
        self._token = token.encode("utf-8")
        self.commands = commands
        self.clock = clock
        self.host = host
        self.port = port
        self.on_reject = on_reject
        self.ttl = ttl
        self._serving = ServerThread("control-http")

    def start(self) -> tuple[str, int]:
        return self._serving.start(ThreadingHTTPServer((self.host, self.port), _make_handler(self)))

    def stop(self) -> None:
        self._serving.stop()

    def is_authorised(self, header: str | None) -> bool:
        return bearer_token_matches(header, self._token)

    def reject(self, reason: str, detail: str = "") -> None:
        if self.on_reject is not None:
            self.on_reject(rejection_event(self.clock(), reason, "http", None, detail))


def _make_handler(door: ControlHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gridbridge-control"
        sys_version = ""
        timeout = 5  # a stalled client cannot pin a thread forever

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            # The default logs to stderr; ours goes to logging and never includes headers (the token).
            log.info("control http %s %s", self.command, self.path.split("?")[0])

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", "Bearer")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if self.path == "/v1/health":
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            if self.path != "/v1/commands":
                self._reply(404, {"error": "not found"})
                return
            if not door.is_authorised(self.headers.get("Authorization")):
                door.reject("CONTROL_UNAUTHORISED", "missing or wrong bearer token")
                self._reply(401, {"error": "unauthorised"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not (0 < length <= MAX_BODY):
                door.reject("CONTROL_MALFORMED", "body length")
                self._reply(400, {"error": "body required, at most 4096 bytes"})
                return
            try:
                body = HttpCommandBody.model_validate_json(self.rfile.read(length))
                cmd = new_command(body.action, body.issuer, door.clock(), door.ttl, body.symbol)
            except (ValidationError, ValueError) as exc:
                door.reject("CONTROL_MALFORMED", type(exc).__name__)
                self._reply(400, {"error": "invalid command"})
                return
            door.commands.put(SubmittedCommand(cmd, "http"))
            self._reply(202, {"command_id": cmd.command_id})

    return Handler
