"""The dashboard's loaders: penalty walk, pool history, joins, and parsing that never raises."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mac.dashboard.analysis import analyse_penalty
from mac.dashboard.control import write_control
from mac.dashboard.history import downsample, history_from_trades, journal_signals
from mac.dashboard.live import Memory, load_live
from mac.dashboard.orders import filter_orders, join_orders
from mac.dashboard.params import load_params
from mac.dashboard.parsing import parse_file
from mac.dashboard.sources import Sources
from mac.dashboard.view_models import FRESH, INVALID
from mac.grid.core import penalty_after
from shared_schema.types import CST
from tests.mac.dashboard import fixtures as fx


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200))
def test_penalty_walk_equals_folding_penalty_after(utils):
    hist = pd.DataFrame({"t": range(len(utils)), "utilization": utils})
    a = analyse_penalty("159201.SZ", hist, 0.90, 0.85)
    on = False
    for i, u in enumerate(utils):
        on = penalty_after(on, u, 0.90, 0.85)
        assert bool(a.series["penalty"].iloc[i]) is on
    assert a.on is on
    assert all(prev != sw[1] for prev, sw in zip([False] + [s[1] for s in a.switches], a.switches, strict=False))


def test_penalty_walk_reproduces_the_nodes_flags(tmp_path: Path):
    fx.build_run(tmp_path)
    node = parse_file("node", tmp_path / "shared" / "dashboard_state_512890.json").value
    a = analyse_penalty("512890.SH", node.history, 0.90, 0.85, node.penalty_on)
    assert list(a.series["penalty"]) == list(node.history["penalty_on"])
    assert [sw[1] for sw in a.switches] == [True, False] and a.agrees_with_node


def test_downsample_keeps_shape_and_requested_rows():
    df = pd.DataFrame({"t": range(100_000), "v": [float(i % 977) for i in range(100_000)]})
    thin = downsample(df, "v", 2000, keep=[12_345])
    assert len(thin) <= 2100 and 12_345 in thin.index
    assert thin["v"].max() == df["v"].max() and thin["v"].min() == df["v"].min()


def test_pool_history_gives_exact_alpha_and_lots(tmp_path: Path):
    fx.build_run(tmp_path)
    state = tmp_path / "shared_executor_state"
    hist = parse_file("pool_history", state / "pool_history.jsonl").value
    assert hist.frame["alpha_159201"].iloc[-1] == float(fx.JOURNAL_ALPHA_159201)
    assert hist.frame["used_159201"].max() == 13001.3  # used is cash out: 13,000 + 1.30 buy commission
    assert [lot.client_order_id for lot in hist.lots[1]["159201.SZ"]] == ["JB1"]
    assert journal_signals(state / "executor_journal.jsonl")["JS1"]["release_client_order_ids"] == ["JB1"]


def test_pool_history_ignores_a_torn_tail_and_never_writes(tmp_path: Path):
    fx.build_run(tmp_path)
    path = tmp_path / "shared_executor_state" / "pool_history.jsonl"
    path.write_bytes(path.read_bytes() + b'{"t": "2026-01-06T14:')
    before = path.read_bytes()
    hist = parse_file("pool_history", path).value
    assert len(hist.frame) == 3 and hist.skipped == 0 and path.read_bytes() == before


def test_invalid_pool_history_lines_are_skipped_and_reported(tmp_path: Path):
    shared = fx.build_run(tmp_path)
    path = tmp_path / "shared_executor_state" / "pool_history.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b'{"t": "2026-01-06T10:01:30+08:00", "committed": 5}\n' + b"".join(lines[1:]))
    snap = load_live(Sources.resolve(shared), datetime.now(CST), Memory())
    assert len(snap.pool_history.frame) == 3 and snap.pool_history.skipped == 1
    health = next(h for h in snap.health if h.name == "pool_history.jsonl")
    assert health.status == INVALID and "1 invalid line" in health.error and not health.is_problem


def test_backtest_trades_rebuild_the_pool_and_alpha(tmp_path: Path):
    folder = fx.build_backtest(tmp_path / "bt")
    hist = history_from_trades(pd.read_csv(folder / "trades.csv"), load_params(None))
    last = hist.frame.iloc[-1]
    assert last["used_159201"] == 0.0 and last["alpha_159201"] == float(fx.JOURNAL_ALPHA_159201)
    assert hist.frame["utilization"].max() == (13000 + 23000) / 300000


def test_orders_join_keeps_input_rejections_and_labels(tmp_path: Path):
    fx.build_run(tmp_path)
    results = parse_file("result", tmp_path / "shared" / "order_result.json").value
    df = join_orders(None, results)
    row = df.set_index("signal_id").loc["G2890BDUP#input0"]
    assert row["status"] == "REJECTED" and "重复编号冲突" in row["reason_label"] and "signal_id reused" in row["reason_label"]
    assert len(filter_orders(df, codes=["159201.SZ"], statuses=["EXPIRED"])) == 1


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(["quote", "pool", "result", "signal", "node", "metrics"]), blob=st.binary(max_size=300))
def test_parse_file_never_raises(tmp_path_factory, kind, blob):
    path = tmp_path_factory.mktemp("fuzz") / "f.json"
    path.write_bytes(blob)
    out = parse_file(kind, path)
    assert out.status in (FRESH, INVALID)


def test_live_snapshot_on_fixture(tmp_path: Path):
    shared = fx.build_run(tmp_path)
    snap = load_live(Sources.resolve(shared), datetime.now(CST), Memory())
    assert snap.pool.committed == sum(fx.USED.values()) + sum(fx.FROZEN.values())
    assert snap.pool.reserve_line == Decimal("255000.00")
    assert snap.penalty["159201.SZ"].on and not snap.penalty["512890.SH"].on
    assert snap.ladders["512890.SH"].breaker_on and snap.drawdown == 0.08
    assert [a["command_id"] for a in snap.acks] == ["20260106T100000-old"]


def test_write_control_refuses_without_secret(tmp_path: Path):
    import pytest

    with pytest.raises(ValueError):
        write_control(tmp_path, "FORCE_HALT", None, datetime.now(CST))
    command_id, path = write_control(tmp_path, "FORCE_HALT", b"s", datetime.now(CST))
    assert path == tmp_path / "control" / f"{command_id}.json"


def test_grid_params_come_from_the_one_resolver_and_honour_the_vault(tmp_path: Path):
    config = tmp_path / "config.json"
    config.write_text('{"vault": {"physical_pool": "120000"}, "grid": {"layers": 5, "weights": [1, 1, 1, 1, 1]}}')
    params = load_params(config)
    assert all(cp.source.physical_pool == Decimal("120000") and cp.source.layers == 5 for cp in params.values())
    config.write_text('{"grid": "not a section"}')  # unreadable: the page reports it; the ladders use the defaults
    assert all(cp.source.physical_pool == Decimal("300000") for cp in load_params(config).values())
