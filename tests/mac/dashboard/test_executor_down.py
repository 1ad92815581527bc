"""The dashboard says "executor down" when the executor's heartbeat (shared_pool.json rewrites) stops."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from mac.dashboard.live import Memory, load_live
from mac.dashboard.sources import Sources
from mac.dashboard.view_models import DOWN, OK, FileHealth
from shared_schema.types import CST
from tests.mac.dashboard import fixtures as fx
from tests.mac.dashboard.test_app import page, texts


def _beat(shared: Path, at: datetime, heartbeat_s: float | None = 10.0) -> None:
    path = shared / "shared_pool.json"
    pool = json.loads(path.read_text())
    pool["updated_at"] = at.isoformat()
    pool["heartbeat_s"] = heartbeat_s
    path.write_text(json.dumps(pool))


def _pool_health(shared: Path, now: datetime) -> FileHealth:
    snap = load_live(Sources.resolve(shared), now, Memory())
    return next(h for h in snap.health if h.name == "shared_pool.json")


def test_a_pool_file_past_its_heartbeats_means_the_executor_is_down(tmp_path):
    shared = fx.build_run(tmp_path)
    now = datetime.now(CST)
    _beat(shared, now - timedelta(seconds=8))
    assert _pool_health(shared, now).status == OK
    _beat(shared, now - timedelta(seconds=26))  # 2.5 heartbeats of 10 s missed
    health = _pool_health(shared, now)
    assert health.status == DOWN and "executor down" in health.error


def test_the_page_shows_executor_down_as_an_error(monkeypatch, tmp_path):
    shared = fx.build_run(tmp_path)
    _beat(shared, datetime.now(CST) - timedelta(seconds=60))
    at = page(monkeypatch, shared)
    assert "Executor down" in texts(at.error)
