"""Fault injection for chaos tests: named points where a process may die as if killed with -9.

``GRIDBRIDGE_FAILPOINTS="executor.before_send:0.05,atomic.before_replace:0.01"`` makes each named point
end the process (``os._exit(137)``, no cleanup, like SIGKILL) with that probability. Unset, every point is
a dictionary lookup and nothing else. The random stream is seeded per process (``GRIDBRIDGE_FAILPOINT_SEED``
plus the pid) so a storm is reproducible in distribution without every restart dying at the same spot.
"""

from __future__ import annotations

import os
import random

_SPEC = os.environ.get("GRIDBRIDGE_FAILPOINTS", "")
_POINTS: dict[str, float] = {}
for _item in filter(None, (part.strip() for part in _SPEC.split(","))):
    _name, _, _p = _item.partition(":")
    _POINTS[_name] = float(_p or 1.0)
_RNG = random.Random(int(os.environ.get("GRIDBRIDGE_FAILPOINT_SEED", "0")) ^ os.getpid())


def failpoint(name: str) -> None:
    """Die here with the configured probability (only when GRIDBRIDGE_FAILPOINTS names this point)."""
    p = _POINTS.get(name)
    if p and _RNG.random() < p:
        os._exit(137)
