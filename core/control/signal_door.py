"""Door (c): SIGUSR1 -> Force Halt, where the OS has SIGUSR1 (not on Windows)."""

from __future__ import annotations

import queue
import signal
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from core.control.commands import ControlAction, new_command
from core.control.http_door import SubmittedCommand


def install_sigusr1_halt(
    commands: queue.SimpleQueue[SubmittedCommand], clock: Callable[[], datetime], issuer: str = "signal"
) -> bool:
    """Install the handler; False where SIGUSR1 does not exist. Must run in the main thread.

    ``SimpleQueue.put`` is reentrant, so the handler may safely interrupt another ``put``.
    """
    sigusr1 = getattr(signal, "SIGUSR1", None)
    if sigusr1 is None:
        return False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        commands.put(SubmittedCommand(new_command(ControlAction.FORCE_HALT, issuer, clock()), "signal"))

    signal.signal(sigusr1, _on_signal)
    return True
