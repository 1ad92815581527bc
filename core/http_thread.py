"""An HTTP server on a background thread, and the bearer-token check its handlers share.

The kill switch's control door, the position manager's API and the local exchange all serve this way: a
stdlib ``ThreadingHTTPServer`` (a thread per request, daemon threads so a hung client never holds the process
open) polled every 50 ms so ``stop`` returns promptly. Shell code: nothing here decides anything.
"""

from __future__ import annotations

import hmac
import threading
from http.server import ThreadingHTTPServer

BEARER = "Bearer "


class ServerThread:
    """Runs one server at a time; ``start`` returns its bound (host, port), ``stop`` is idempotent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, server: ThreadingHTTPServer) -> tuple[str, int]:
        if self._server is not None:
            raise RuntimeError(f"{self.name}: already serving")
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def bearer_token_matches(header: str | None, token: bytes) -> bool:
    """``Authorization: Bearer <token>`` in constant time; a missing or other scheme never matches."""
    if not token or not header or not header.startswith(BEARER):
        return False
    return hmac.compare_digest(header[len(BEARER):].strip().encode("utf-8"), token)
