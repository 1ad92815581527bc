"""Where the dashboard finds a run's files: the shared folder, the executor's state folder, the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared_schema.models import symbol_key
from shared_schema.pool_history import POOL_HISTORY_FILE

JOURNAL_FILE = "executor_journal.jsonl"


@dataclass(frozen=True)
class Sources:
    """Where the files are: the shared folder and (optional) the executor's state dir and config."""

    shared_dir: Path
    state_dir: Path | None = None
    config: Path | None = None

    @classmethod
    def resolve(cls, shared_dir: Path | str, state_dir: Path | str | None = None,
                config: Path | str | None = None) -> Sources:
        shared = Path(shared_dir)
        state = Path(state_dir) if state_dir else None
        if state is None:
            guess = shared.parent / f"{shared.name}_executor_state"  # the dry-run layout
            state = guess if guess.is_dir() else None
        if config:  # given: kept even when missing, so the journal's banner says it cannot be read
            return cls(shared, state, Path(config))
        guess = shared.parent / "config.json"  # the dry-run layout
        return cls(shared, state, guess if guess.is_file() else None)

    def node_path(self, code: str) -> Path:
        return self.shared_dir / f"dashboard_state_{symbol_key(code)}.json"

    def audit_paths(self) -> list[Path]:
        out: list[Path] = []
        for folder in (self.shared_dir, self.state_dir):
            if folder is not None and folder.is_dir():
                out.extend(sorted(folder.glob("*audit*.jsonl")))
        return out

    def journal_path(self) -> Path | None:
        if self.state_dir is None:
            return None
        path = self.state_dir / JOURNAL_FILE
        return path if path.is_file() else None

    def pool_history_path(self) -> Path | None:
        """``pool_history.jsonl``, which the executor writes beside its journal: reachable where the journal is."""
        if self.state_dir is None:
            return None
        path = self.state_dir / POOL_HISTORY_FILE
        return path if path.is_file() else None
