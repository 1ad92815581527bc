"""An in-process executor on temp folders with a paper broker and a hand-moved market."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from core.journal import read_records
from settings.config import GridbridgeConfig
from shared_schema.atomic_io import atomic_write_json, atomic_write_model
from shared_schema.clock import ManualClock
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    PoolFile,
    Quote,
    QuoteFile,
    Result,
    ResultFile,
)
from tests.kit.stubs import SESSION_TIME, make_quote, signal_payload
from windows.brokers.paper import PaperBroker
from windows.executor import JOURNAL_FILE, Executor

DEFAULT_POSITIONS = {"512890.SH": 100_000, "159201.SZ": 100_000}


def paper_config(**paper: Any) -> GridbridgeConfig:
    base = {"initial_cash": "1000000", "initial_positions": DEFAULT_POSITIONS}
    base.update(paper)
    return GridbridgeConfig.model_validate({"paper": base, "executor": {"poll_interval_s": 0.01, "publish_interval_s": 0}})


class Harness:
    def __init__(
        self, root: Path, config: GridbridgeConfig | None = None, when: datetime = SESSION_TIME
    ) -> None:
        self.root = Path(root)
        self.shared = self.root / "shared"
        self.state = self.root / "state"
        self.config = config or paper_config()
        self.clock = ManualClock(when)
        self.seq = 0
        self.prices = {"512890.SH": 1.1, "159201.SZ": 1.3}
        self.prev_close: dict[str, float] = {}
        self.spread = 0.001
        self.shared.mkdir(parents=True, exist_ok=True)
        self.publish_quotes()
        self.executor = self.make_executor()
        self.executor.start()

    def make_executor(self) -> Executor:
        broker = PaperBroker(
            self.state / "paper", self.config.paper, account_view_path=self.shared / "paper_account.json"
        )
        return Executor(
            self.shared, self.state, self.config, broker, wall_clock=self.clock, watch_mode="poll"
        )

    @property
    def broker(self) -> PaperBroker:
        return self.executor.broker  # type: ignore[return-value]

    def restart(self) -> None:
        self.executor.stop()
        self.executor = self.make_executor()
        self.executor.start()

    def publish_quotes(self, when: datetime | None = None, **prices: float) -> None:
        if when is not None:
            self.clock.set(when)
        for key, value in prices.items():
            self.prices[key.replace("_", ".")] = value
        self.seq += 1
        quotes: dict[str, Quote] = {}
        for code, last in self.prices.items():
            q = make_quote(code, last, self.clock.now(), self.prev_close.get(code), self.spread)
            quotes[code] = q
        atomic_write_model(
            self.shared / QUOTE_FILE, QuoteFile(seq=self.seq, updated_at=self.clock.now(), quotes=quotes)
        )

    def send(self, **overrides: Any) -> str:
        overrides.setdefault("created_at", self.clock.now().isoformat())
        payload = signal_payload(**overrides)
        self.write_entries([*self.entries(), payload])
        return payload["signal_id"]

    def entries(self) -> list[Any]:
        path = self.shared / SIGNAL_FILE
        if not path.exists():
            return []
        return json.loads(path.read_text())["signals"]

    def write_entries(self, entries: list[Any]) -> None:
        atomic_write_json(
            self.shared / SIGNAL_FILE,
            {"schema_version": 1, "seq": 1, "updated_at": self.clock.now().isoformat(), "signals": entries},
        )

    def turn(self, n: int = 1) -> None:
        for _ in range(n):
            self.executor.run_once()

    def results(self) -> ResultFile:
        return ResultFile.model_validate_json((self.shared / RESULT_FILE).read_bytes())

    def result(self, signal_id: str) -> Result:
        return self.results().results[signal_id]

    def pool(self) -> PoolFile:
        return PoolFile.model_validate_json((self.shared / POOL_FILE).read_bytes())

    def journal(self) -> list[dict[str, Any]]:
        """The executor journal's records as they are on disk (a snapshot first after a compaction)."""
        return [record for record, _size in read_records(self.state / JOURNAL_FILE)]

    def placed(self) -> list[dict[str, Any]]:
        path = self.state / "paper" / "paper_orders.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]
