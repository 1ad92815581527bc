"""Config + strategy bundles on disk, and the rollback drill (``gridbridge deploy`` / ``gridbridge rollback``).

A deploy folder holds ``versions/<version>/config.json`` (the whole gridbridge config, strategy settings
included), ``history.json`` (oldest first, the active bundle last) and ``active/config.json`` (what the
executor and nodes are started with). Rollback puts the previous bundle back in ``active/``, forces the
risk state into DEGRADED (or COOLDOWN) for an observation window and records why in the audit log, using
``core.rollback.plan_rollback``. It runs with the executor stopped: the audit log has one writer.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

from filelock import FileLock, Timeout

from core.audit import AuditWriter, replay_risk_file
from core.risk import RiskTrigger
from core.rollback import RollbackPlan, VersionRecord, plan_rollback
from settings.config import load_config
from shared_schema.atomic_io import atomic_write_json
from windows.executor import LOCK_FILE
from windows.risk_shell import AUDIT_FILE

HISTORY = "history.json"


def read_history(deploy_dir: Path) -> list[VersionRecord]:
    path = Path(deploy_dir) / HISTORY
    if not path.exists():
        return []
    return [VersionRecord(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def _write_history(deploy_dir: Path, history: list[VersionRecord]) -> None:
    atomic_write_json(Path(deploy_dir) / HISTORY, [asdict(v) for v in history])


def deploy(deploy_dir: Path, config_file: Path, version: str, strategy_version: str = "", git: str = "") -> VersionRecord:
    """Validate ``config_file``, store it as ``version`` and make it the active bundle."""
    load_config(config_file)  # refuses an invalid bundle before anything moves
    deploy_dir = Path(deploy_dir)
    target = deploy_dir / "versions" / version
    if target.exists():
        raise FileExistsError(f"version {version} is already deployed in {deploy_dir}")
    target.mkdir(parents=True)
    shutil.copyfile(config_file, target / "config.json")
    record = VersionRecord(config_version=version, strategy_version=strategy_version or version, git=git)
    _activate(deploy_dir, version)
    _write_history(deploy_dir, [*read_history(deploy_dir), record])
    return record


def _activate(deploy_dir: Path, version: str) -> None:
    active = Path(deploy_dir) / "active"
    active.mkdir(parents=True, exist_ok=True)
    data = (Path(deploy_dir) / "versions" / version / "config.json").read_bytes()
    from shared_schema.atomic_io import atomic_write_bytes

    atomic_write_bytes(active / "config.json", data)
    atomic_write_json(active / "VERSION.json", {"config_version": version})


def rollback(
    deploy_dir: Path,
    state_dir: Path,
    reason: str,
    now: datetime,
    observe_for: timedelta = timedelta(hours=24),
    observe_as: str = "DEGRADED",
    drill: bool = False,
) -> RollbackPlan:
    """Switch back to the previous bundle and hold the observation state; refuses while an executor runs."""
    state_dir = Path(state_dir)
    lock = FileLock(str(state_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RuntimeError("the executor is running on this state dir; stop it before rolling back") from None
    try:
        history = read_history(deploy_dir)
        audit_path = state_dir / AUDIT_FILE
        snapshot = replay_risk_file(audit_path) if audit_path.exists() else None
        active_config = load_config(Path(deploy_dir) / "active" / "config.json")
        trigger = RiskTrigger.FORCED_COOLDOWN if observe_as == "COOLDOWN" else RiskTrigger.FORCED_DEGRADE
        from core.risk import initial_snapshot

        plan = plan_rollback(history, snapshot or initial_snapshot(), now, active_config.risk, reason,
                             observe_for, trigger, drill)
        _activate(deploy_dir, plan.to_version.config_version)
        _write_history(deploy_dir, list(plan.history))
        writer = AuditWriter(audit_path)
        writer.extend(plan.events)
        writer.close()
        return plan
    finally:
        lock.release()
