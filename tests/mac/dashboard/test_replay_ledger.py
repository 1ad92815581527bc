"""The dashboard shows the pool the executor booked: its published pool history (``pool_history.jsonl`` beside
the journal) carries the run's vault limits and fee model, so replayed pool figures equal what the executor
published, whatever config the dashboard is given (the config only sets the grid params of the ladders)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mac.dashboard.labels import CODES
from mac.dashboard.live import Memory, load_live
from mac.dashboard.parsing import cached_parse_key
from mac.dashboard.replay import load_replay
from mac.dashboard.sources import Sources
from mac.dashboard.view_models import INVALID, MISSING, PoolSummary
from settings.config import GridbridgeConfig
from shared_schema.models import ResultStatus, symbol_key
from shared_schema.pool_history import POOL_HISTORY_FILE
from shared_schema.types import CST
from tests.kit.harness import DEFAULT_POSITIONS, Harness
from tests.kit.stubs import SESSION_TIME

# The venue reports no commission, so every fee in the ledger is the executor's estimate: 0.03%, at least 5 yuan.
# The vault is small, so a third buy hits its nominal cap (with the default 200,000 caps it would pass).
CONFIG = {
    "paper": {"initial_cash": "1000000", "initial_positions": DEFAULT_POSITIONS, "commission_rate": "0"},
    "executor": {
        "poll_interval_s": 0.01,
        "publish_interval_s": 0,
        "commission_estimate_rate": "0.0003",
        "commission_estimate_min": "5",
    },
    "vault": {"physical_pool": "50000", "nominal_caps": {"512890.SH": "40000", "159201.SZ": "40000"}},
}


def run_executor(root: Path) -> PoolSummary:
    """A session on the real executor: a filled buy, a resting buy, a buy over the cap, a partial sell.
    Returns the pool the executor published last; ``root/config.json`` is the run's config."""
    config = GridbridgeConfig.model_validate(CONFIG)
    (root / "config.json").write_text(config.model_dump_json())
    h = Harness(root, config)
    h.send(signal_id="b1", price="1.100", shares=10000, layer_index=1)
    h.send(signal_id="b2", price="1.090", shares=10000, layer_index=2)
    h.send(signal_id="b3", price="1.100", shares=30000, layer_index=3)
    h.turn()
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=5), **{"512890_SH": 1.110})
    h.send(signal_id="s1", direction="SELL", price="1.109", shares=4000, release_client_order_ids=["b1"])
    h.turn()
    assert [h.result(s).status for s in ("b1", "b2", "b3", "s1")] == [
        ResultStatus.FILLED,
        ResultStatus.SENT,
        ResultStatus.REJECTED,
        ResultStatus.FILLED,
    ]
    assert h.result("b3").reason.value == "NOMINAL_CAP"
    h.executor.stop()
    return PoolSummary.of(h.pool())


def figures(pool: PoolSummary) -> tuple:
    return pool.physical_pool, pool.used, pool.frozen, pool.acc_alpha, pool.committed, pool.utilization


def figures_of(history) -> tuple:
    """The last point of a pool history as ``figures`` gives its first four."""
    last = history.frame.iloc[-1]
    per = {p: {c: Decimal(str(last[f"{p}_{symbol_key(c)}"])) for c in CODES} for p in ("used", "frozen", "alpha")}
    return history.physical_pool, per["used"], per["frozen"], per["alpha"]


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, PoolSummary]:
    return tmp_path, run_executor(tmp_path)


def test_replay_of_the_run_shows_the_pool_the_executor_published(run):
    root, published = run
    # the estimates are in the published figures: buy fee 5.00 on 11,000, sell fee 5.00 on 4,440
    assert published.frozen["512890.SH"] == Decimal("10905.00")  # 10,900 + its 5.00 fee reserve
    replay = load_replay(root, state_dir=root / "state")
    pool = replay._pool_at(len(replay.pool_history.frame) - 1)
    assert pool is not None and figures(pool) == figures(published)
    assert replay.pool_history.physical_pool == Decimal("50000")


def test_live_view_shows_the_pool_history_the_executor_published(run):
    root, published = run
    snap = load_live(
        Sources.resolve(root / "shared", root / "state"), datetime.now(CST), Memory()
    )
    assert snap.pool_history is not None
    last = snap.pool_history.frame.iloc[-1]
    for code in CODES:
        k = symbol_key(code)
        assert Decimal(str(last[f"used_{k}"])) == published.used[code]
        assert Decimal(str(last[f"frozen_{k}"])) == published.frozen[code]
        assert Decimal(str(last[f"alpha_{k}"])) == published.acc_alpha[code]


def test_a_config_that_cannot_be_read_is_reported_and_the_pool_stays_the_executors(run):
    root, published = run
    (root / "config.json").write_text('{"executor": {"commission_estimate_rate": "lots"}}')
    snap = load_live(
        Sources.resolve(root / "shared", root / "state"), datetime.now(CST), Memory()
    )
    config = next(h for h in snap.health if h.name == "config.json")
    assert config.status == INVALID and "default grid params" in config.error
    last = snap.pool_history.frame.iloc[-1]
    assert Decimal(str(last["frozen_512890"])) == published.frozen["512890.SH"]


def replay_page(monkeypatch: pytest.MonkeyPatch, root: Path, config: Path | None = None):
    from streamlit.testing.v1 import AppTest

    from tests.mac.dashboard.test_app import APP

    settings = {
        "REPLAY": str(root),
        "STATE_DIR": str(root / "state"),
        "REFRESH_S": "0",
        "CONFIG": str(config or ""),
    }
    for key, value in settings.items():
        monkeypatch.setenv(f"GRIDBRIDGE_DASHBOARD_{key}", value)
    monkeypatch.delenv("GRIDBRIDGE_DASHBOARD_SHARED_DIR", raising=False)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_replay_page_shows_the_committed_the_executor_published(monkeypatch, run):
    from tests.mac.dashboard.test_app import metrics

    root, published = run
    at = replay_page(monkeypatch, root)
    assert metrics(at)["committed 已占用 (used+frozen)"] == [f"{published.committed:,.2f}"]


def test_a_config_kept_elsewhere_is_given_with_config(monkeypatch, run):
    from tests.mac.dashboard.test_app import metrics

    root, published = run
    elsewhere = root / "deploy" / "run.json"
    elsewhere.parent.mkdir()
    (root / "config.json").rename(elsewhere)
    at = replay_page(monkeypatch, root, config=elsewhere)
    assert metrics(at)["committed 已占用 (used+frozen)"] == [f"{published.committed:,.2f}"]


def test_dashboard_command_passes_config_to_the_page(tmp_path):
    import argparse

    from mac.dashboard.launch import streamlit_command

    config = tmp_path / "run.json"
    args = argparse.Namespace(
        shared_dir=str(tmp_path),
        replay=None,
        state_dir=None,
        config=str(config),
        port=1,
        address="127.0.0.1",
        refresh=1.0,
        stale_after=120.0,
    )
    _, env = streamlit_command(args)
    assert env["GRIDBRIDGE_DASHBOARD_CONFIG"] == str(config.resolve())


def test_the_pool_history_is_parsed_again_when_its_config_changes(run):
    root, _ = run
    history, config = root / "state" / POOL_HISTORY_FILE, root / "config.json"
    before = cached_parse_key("pool_history", history, config)
    raw = json.loads(config.read_text())
    raw["executor"]["commission_estimate_rate"] = "0.00025"
    config.write_text(json.dumps(raw))
    assert cached_parse_key("pool_history", history, config) != before


def test_a_config_given_but_missing_is_reported(run):
    root, published = run
    sources = Sources.resolve(root / "shared", root / "state", root / "no-such.json")
    snap = load_live(sources, datetime.now(CST), Memory())
    config = next(h for h in snap.health if h.name == "no-such.json")
    assert config.status == MISSING and "no-such.json" in config.error and not config.is_problem
    assert figures_of(snap.pool_history) == figures(published)[:4]
