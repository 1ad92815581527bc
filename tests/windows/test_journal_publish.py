"""Publishing: the pool heartbeat, immediate publishes on risk/halt changes, each file failing on its own."""

from __future__ import annotations

import logging
import shutil

from shared_schema.models import POOL_FILE, RESULT_FILE, ResultStatus
from tests.kit.harness import Harness


def _pool_seq(h: Harness) -> int:
    return h.pool().seq


def test_the_pool_file_is_rewritten_on_the_heartbeat_in_a_quiet_market(tmp_path):
    h = Harness(tmp_path)
    h.turn()
    first = h.pool()
    assert first.heartbeat_s == h.config.executor.heartbeat_s
    h.clock.advance(h.config.executor.heartbeat_s / 2)
    h.turn()
    assert _pool_seq(h) == first.seq  # nothing changed, no heartbeat due yet
    h.clock.advance(h.config.executor.heartbeat_s / 2 + 0.01)
    h.turn()
    beat = h.pool()
    assert beat.seq == first.seq + 1
    assert (beat.updated_at - first.updated_at).total_seconds() >= h.config.executor.heartbeat_s
    h.executor.stop()


def test_a_halt_is_published_at_once_even_inside_the_publish_interval(tmp_path):
    from tests.kit.harness import paper_config
    cfg = paper_config()
    cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"publish_interval_s": 3600.0})})
    h = Harness(tmp_path, cfg)
    h.turn()
    before = h.pool()
    # A control change that flips the halt switch (however it arrives) must reach the pool file now.
    h.executor._commit({"k": "halt", "on": True, "why": "FORCE_HALT", "t": h.clock.now().isoformat()})
    h.executor._dirty = False  # even a door that forgets to mark the view dirty
    h.turn()
    assert h.pool().halted is True and h.pool().seq > before.seq
    h.executor.stop()


def test_a_risk_state_change_is_published_at_once(tmp_path, monkeypatch):
    from tests.kit.harness import paper_config
    cfg = paper_config()
    cfg = cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"publish_interval_s": 3600.0})})
    h = Harness(tmp_path, cfg)
    h.turn()
    assert h.pool().risk_state == "NORMAL"
    monkeypatch.setattr(type(h.executor.risk), "state_name", property(lambda self: "REDUCE_ONLY"))
    h.turn()
    assert h.pool().risk_state == "REDUCE_ONLY"
    h.executor.stop()


def test_a_directory_in_place_of_the_pool_file_does_not_stop_the_results(tmp_path, caplog):
    h = Harness(tmp_path)
    h.turn()
    (h.shared / POOL_FILE).unlink()
    (h.shared / POOL_FILE).mkdir()
    caplog.set_level(logging.WARNING, logger="gridbridge.executor")
    for i in range(20):
        h.send(signal_id=f"d{i}", shares=100)
        h.turn()
    assert h.result("d19").status is ResultStatus.FILLED  # order_result.json kept being published
    pool_alerts = [a for a in h.results().alerts if POOL_FILE in a]
    assert len(pool_alerts) == 1, pool_alerts  # one alert for the one condition
    assert len([r for r in caplog.records if POOL_FILE in r.getMessage()]) == 1  # and one log line
    shutil.rmtree(h.shared / POOL_FILE)
    h.turn()
    assert h.pool().seq > 0
    pool_alerts = [a for a in h.results().alerts if POOL_FILE in a]
    assert len(pool_alerts) == 1 and "cleared" in pool_alerts[0]
    assert not h.executor.active_alerts()
    h.executor.stop()


def test_a_directory_in_place_of_the_result_file_does_not_stop_the_pool(tmp_path):
    h = Harness(tmp_path)
    h.turn()
    (h.shared / RESULT_FILE).unlink()
    (h.shared / RESULT_FILE).mkdir()
    seq = h.pool().seq
    h.send(signal_id="p1", shares=1000)
    h.turn()
    assert h.pool().seq > seq and float(h.pool().used_512890) >= 1100.0  # fees may be counted in used
    assert [k for k in h.executor.active_alerts() if RESULT_FILE in k]
    h.executor.stop()
