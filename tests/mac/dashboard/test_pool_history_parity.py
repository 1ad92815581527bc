"""The pool history the executor publishes shows what the dashboard's old journal replay showed.

The dashboard used to rebuild the pool over time by replaying the executor's journal through the
executor's own state and vault (``journal_oracle.replay_journal``, moved here as the oracle). It now
reads ``pool_history.jsonl``, which the executor appends whenever the pool it publishes changes. On real
executor runs, the pool (used, frozen, acc_alpha per code, utilisation) and the open lots of the ladder
must be the same at every market time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mac.dashboard.params import load_params
from mac.dashboard.parsing import parse_file
from mac.dashboard.replay import load_replay
from mac.dashboard.view_models import POOL_HISTORY_COLUMNS, PoolHistory
from settings.config import GridbridgeConfig
from shared_schema.pool_history import POOL_HISTORY_FILE, read_pool_history
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME
from tests.mac.dashboard.journal_oracle import replay_journal
from tests.mac.dashboard.test_replay_ledger import CONFIG, run_executor
from windows.executor import JOURNAL_FILE


def state_at(history: PoolHistory, t: pd.Timestamp) -> tuple[Any, ...]:
    """The pool and the lots as they stood at ``t`` (the last row at or before it); an empty pool before
    the first row."""
    i = history.at(t)
    if i is None:
        return tuple(0.0 for _ in POOL_HISTORY_COLUMNS[1:]), None
    row = history.frame.iloc[i]
    lots = {code: lots for code, lots in history.lots[i].items() if lots}
    return tuple(float(row[c]) for c in POOL_HISTORY_COLUMNS[1:]), lots or None


def assert_same_history(new: PoolHistory, old: PoolHistory) -> None:
    assert len(old.frame), "the oracle saw no change: the scenario proves nothing"
    times = sorted(set(old.frame["t"]) | set(new.frame["t"]))
    mismatches = [(t, state_at(old, t), state_at(new, t)) for t in times if state_at(old, t) != state_at(new, t)]
    assert mismatches == []
    assert new.physical_pool == old.physical_pool


def histories(root: Path, config: GridbridgeConfig) -> tuple[PoolHistory, PoolHistory]:
    config_path = root / "config.json"
    config_path.write_text(config.model_dump_json())
    params = load_params(config_path)
    new = parse_file("pool_history", root / "state" / POOL_HISTORY_FILE, config_path).value
    old = replay_journal(root / "state" / JOURNAL_FILE, config, params)
    return new, old


def test_the_ledger_run_shows_the_same_pool_and_lots_at_every_time(tmp_path: Path):
    run_executor(tmp_path)  # fills, a resting buy, a refusal over the cap, a partial sell, the run's fee model
    new, old = histories(tmp_path, GridbridgeConfig.model_validate(CONFIG))
    assert_same_history(new, old)


def test_a_session_with_restarts_cancels_and_both_codes_shows_the_same_history(tmp_path: Path):
    config = paper_config()
    h = Harness(tmp_path, config)
    minute = 0

    def later(**prices: float) -> None:
        nonlocal minute
        minute += 3
        h.publish_quotes(when=SESSION_TIME + timedelta(minutes=minute), **prices)

    h.send(signal_id="a1", price="1.100", shares=2000, layer_index=0)
    h.send(signal_id="c1", code="159201.SZ", price="1.300", shares=1000, layer_index=0)
    h.turn()
    later(**{"512890_SH": 1.098})
    h.send(signal_id="a2", price="1.090", shares=3000, layer_index=1)  # rests below the market
    h.turn()
    later(**{"512890_SH": 1.104})
    h.send(signal_id="s1", direction="SELL", price="1.103", shares=1000, release_client_order_ids=["a1"])
    h.turn()
    h.restart()
    later(**{"159201_SZ": 1.31})
    h.send(signal_id="s2", code="159201.SZ", direction="SELL", price="1.309", shares=1000,
           release_client_order_ids=["c1"])
    h.turn(2)
    later()
    h.clock.advance(3600)  # the resting buy's signal expires: its frozen cash goes back to the pool
    h.publish_quotes()
    h.turn(2)
    h.executor.stop()
    new, old = histories(tmp_path, config)
    assert_same_history(new, old)


def test_the_dry_run_replay_page_reads_the_published_history(tmp_path: Path):
    published = run_executor(tmp_path)
    replay = load_replay(tmp_path, state_dir=tmp_path / "state")
    assert replay.pool_history.source.startswith("executor pool history")
    end = replay.snapshot_at(None)
    assert end.pool is not None and end.pool.committed == published.committed


def test_a_history_that_cannot_be_written_is_one_alert_and_never_stops_the_pool_file(tmp_path: Path):
    h = Harness(tmp_path, paper_config())
    history = h.state / POOL_HISTORY_FILE
    history.unlink()
    history.mkdir()  # a directory where the file belongs
    h.send(signal_id="b1", price="1.100", shares=1000)
    h.turn(2)
    assert h.pool().used_512890 > 0  # the shared pool file is still published
    assert len([a for a in h.results().alerts if "pool history not appended" in a]) == 1
    history.rmdir()
    h.send(signal_id="b2", price="1.100", shares=1000)
    h.turn()
    assert "publish:pool_history" not in h.executor.active_alerts()  # cleared once the append works again
    assert read_pool_history(history).points[-1].used["512890.SH"] == h.pool().used_512890
    h.executor.stop()


def test_no_point_is_stamped_before_the_market_clock_exists(tmp_path: Path):
    h = Harness(tmp_path, paper_config())
    h.executor.stop()
    (h.shared / "shared_quote.json").unlink()
    (h.state / POOL_HISTORY_FILE).unlink()
    h.executor = h.make_executor()
    h.executor.start()  # publishes the pool at once, with no quote yet: no market time
    h.turn()
    assert not (h.state / POOL_HISTORY_FILE).exists()
    h.publish_quotes()
    h.send(signal_id="b1", price="1.100", shares=1000)
    h.turn()
    points = read_pool_history(h.state / POOL_HISTORY_FILE).points
    assert points and all(p.t == SESSION_TIME for p in points)
    h.executor.stop()
