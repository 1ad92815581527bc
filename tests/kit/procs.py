"""Real gridbridge processes for bridge tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gridbridge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridbridge.cli", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def start(*args: str, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(gridbridge_cmd(*args), stdout=out, stderr=subprocess.STDOUT, env=env(), cwd=ROOT)


def start_module(module: str, *args: str, log: Path | None = None) -> subprocess.Popen:
    """A test-kit process (``python -m module args``), e.g. ``tests.kit.paced_producer``."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT, env=env(),
                            cwd=ROOT)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        gridbridge_cmd(*args), capture_output=True, text=True, env=env(), cwd=ROOT, timeout=timeout
    )


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill9(proc)


def wait_for(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.1,
             progress: Callable[[], object] | None = None) -> bool:
    """True as soon as ``predicate()`` holds; False after ``timeout`` wall seconds without it.

    With ``progress`` the timeout is a no-progress safety net, not a deadline: it restarts whenever
    ``progress()`` returns something new (a market time, a results seq, ...), so a slow machine that keeps
    moving is never cut off; only a run that stops moving for ``timeout`` seconds fails."""
    deadline = time.monotonic() + timeout
    last = _probe(progress)
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(interval)
        now = _probe(progress)
        if now != last:
            last, deadline = now, time.monotonic() + timeout
    return False


def _probe(progress: Callable[[], object] | None) -> object:
    if progress is None:
        return None
    try:
        return progress()
    except (OSError, ValueError, KeyError):
        return None


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_bytes())
