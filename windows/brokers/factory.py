"""Builds the broker named in the config or on the command line; the only place that knows them all."""

from __future__ import annotations

from pathlib import Path

from shared_schema.config import GridbridgeConfig
from windows.brokers.paper import ACCOUNT_VIEW_FILE, PaperBroker
from windows.brokers.protocol import Broker


def make_broker(name: str, config: GridbridgeConfig, shared_dir: Path, state_dir: Path) -> Broker:
    if name == "paper":
        return PaperBroker(Path(state_dir) / "paper", config.paper, account_view_path=Path(shared_dir) / ACCOUNT_VIEW_FILE)
    if name == "xtquant":
        raise SystemExit("the xtquant broker is not available in this build yet (see docs/windows.md)")
    raise ValueError(f"unknown broker {name!r}")
