"""What every command shell shares: the config named by ``--config`` and a stop flag raised by SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal as os_signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settings.config import GridbridgeConfig


def config_of(args: argparse.Namespace) -> GridbridgeConfig:
    """The config file ``--config`` names, or the defaults when there is none."""
    from settings.config import load_config

    return load_config(Path(args.config) if getattr(args, "config", None) else None)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (where the OS has them): a long-running command's stop flag."""
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(os_signal, name):
            os_signal.signal(getattr(os_signal, name), lambda *_: stop.set())
    return stop
