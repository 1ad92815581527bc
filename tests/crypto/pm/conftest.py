"""A real redis-server per test that needs one: loopback, a free port, a temporary folder, no persistence.

The fixture waits on PING (bounded), never sleeps and hopes, and kills the server at the end. ``kill9``
and ``restart`` let a test lose Redis mid-run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):  # the free port can be taken between probe and bind: try another
            port = self.port or _free_port()
            proc = subprocess.Popen(
                [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.folder),
                 "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ping(port, proc):
                self.port, self.proc = port, proc
                return
            proc.kill()
            proc.wait()
            self.port = 0
        raise RuntimeError("redis-server did not answer PING")

    @staticmethod
    def _wait_ping(port: int, proc: subprocess.Popen[bytes], bound_s: float = 10.0) -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.01)  # poll interval while the server comes up (bounded by the deadline)
        return False

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill9()
        self.start()  # same port: clients reconnect to the same URL

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_session: RedisProcess) -> Iterator[str]:
    """A clean database on the shared server."""
    client = redis.Redis.from_url(redis_session.url)
    client.flushdb()
    yield redis_session.url
    client.flushdb()
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A server of the test's own, for tests that kill it."""
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()
