"""Faults the server can inject, per test (``handle.inject``) or through the admin door.

- ``lose_response``: the request is processed (an order is placed), then the connection is closed without
  an answer: the client sees a network error and must look the order up by its client id.
- ``timeout``: processed, then the answer is held for ``ms`` of wall time and the connection closed: a
  client whose timeout is shorter sees a request timeout.
- ``latency``: the request waits ``ms`` before being processed.
- ``disconnect``: the connection is closed before anything is processed, for ``count`` requests or for
  ``duration_ms`` of wall time.
A fault matches by HTTP method and path prefix (both optional); ``count`` 0 means until cleared.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["lose_response", "timeout", "latency", "disconnect"]


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    path: str = Field(default="", max_length=200)  # path prefix, "" = every path
    method: str = Field(default="", max_length=8)  # "" = any method
    count: int = Field(default=1, ge=0)  # how many requests it hits; 0 = until cleared or expired
    ms: int = Field(default=0, ge=0, le=120_000)  # latency / hold time
    duration_ms: int = Field(default=0, ge=0)  # disconnect window in wall ms (0 = by count)


@dataclass(frozen=True)
class _Armed:
    rule: FaultRule
    left: int  # remaining hits; -1 = unlimited
    until_wall_ms: float  # 0 = no expiry


@dataclass(frozen=True)
class FaultHit:
    kind: FaultKind
    ms: int


class FaultPlan:
    """The armed faults; ``take`` consumes the first rule of a kind that matches a request."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str, str]] = []  # (kind, method, path): what was injected, for reports

    def inject(self, rule: FaultRule, wall_ms: float) -> None:
        left = -1 if rule.count == 0 else rule.count
        until = wall_ms + rule.duration_ms if rule.duration_ms else 0.0
        if rule.kind == "disconnect" and rule.duration_ms:
            left = -1
        with self._lock:
            self._armed.append(_Armed(rule, left, until))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def active(self) -> list[FaultRule]:
        with self._lock:
            return [a.rule for a in self._armed]

    def take(self, kinds: tuple[FaultKind, ...], method: str, path: str, wall_ms: float) -> FaultHit | None:
        with self._lock:
            self._armed = [a for a in self._armed if not a.until_wall_ms or a.until_wall_ms > wall_ms]
            for i, armed in enumerate(self._armed):
                rule = armed.rule
                if rule.kind not in kinds or not path.startswith(rule.path):
                    continue
                if rule.method and rule.method.upper() != method.upper():
                    continue
                if armed.left > 0:
                    left = armed.left - 1
                    if left == 0:
                        del self._armed[i]
                    else:
                        self._armed[i] = replace(armed, left=left)
                self.fired.append((rule.kind, method, path))
                return FaultHit(rule.kind, rule.ms)
        return None
