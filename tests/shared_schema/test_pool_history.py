"""``pool_history.jsonl``: the executor appends, the dashboard reads; torn, junk and growth are survived."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared_schema.ledger_math import utilization
from shared_schema.pool_history import (
    POOL_HISTORY_FILE,
    PoolHistoryPoint,
    PoolHistoryWriter,
    PoolLot,
    read_pool_history,
)
from shared_schema.types import CST

T0 = datetime(2026, 1, 6, 9, 31, tzinfo=CST)
POOL = Decimal("300000")


def point(i: int, used: str = "0", frozen: str = "0", alpha: str = "0", lots: int = 0) -> PoolHistoryPoint:
    u, f = Decimal(used), Decimal(frozen)
    committed = u + f
    return PoolHistoryPoint(
        t=T0 + timedelta(minutes=i), physical_pool=POOL,
        used={"159201.SZ": u, "512890.SH": Decimal(0)}, frozen={"159201.SZ": f, "512890.SH": Decimal(0)},
        acc_alpha={"159201.SZ": Decimal(alpha), "512890.SH": Decimal(0)}, committed=committed,
        utilization=utilization(committed, POOL),
        lots={"159201.SZ": [PoolLot(client_order_id=f"B{k}", layer_index=k, shares=100, avg_price=1.3,
                                    status="OPEN") for k in range(lots)]},
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / POOL_HISTORY_FILE


def test_appended_points_read_back_exactly(path: Path):
    writer = PoolHistoryWriter(path, fsync=False)
    points = [point(0, frozen="13000"), point(1, used="13001.30", lots=1), point(2, alpha="97.39")]
    assert all(writer.append(p) for p in points)
    read = read_pool_history(path)
    assert read.points == tuple(points) and read.skipped == 0 and not read.torn_tail


def test_a_point_equal_but_for_its_time_is_not_appended_even_after_a_restart(path: Path):
    writer = PoolHistoryWriter(path, fsync=False)
    assert writer.append(point(0, used="5"))
    assert not writer.append(point(1, used="5"))
    again = PoolHistoryWriter(path, fsync=False)  # a restarted executor learns the last point from the file
    assert not again.append(point(2, used="5"))
    assert again.append(point(3, used="6"))
    assert [p.t for p in read_pool_history(path).points] == [point(0).t, point(3).t]


def test_a_torn_last_line_is_dropped_by_the_reader_and_cut_by_the_writer(path: Path):
    writer = PoolHistoryWriter(path, fsync=False)
    writer.append(point(0, used="1"))
    path.write_bytes(path.read_bytes() + b'{"t": "2026-01-06T09:40:00+08:00", "physical_p')
    read = read_pool_history(path)
    assert len(read.points) == 1 and read.torn_tail and read.skipped == 0
    writer = PoolHistoryWriter(path, fsync=False)
    writer.append(point(1, used="2"))
    read = read_pool_history(path)
    assert [p.used["159201.SZ"] for p in read.points] == [Decimal(1), Decimal(2)] and not read.torn_tail


def test_invalid_lines_are_skipped_and_counted(path: Path):
    good = point(0, used="1").model_dump_json()
    wrong_sum = json.dumps(point(1, used="1").model_dump(mode="json") | {"committed": 2.0})
    wrong_ratio = json.dumps(point(2, used="1").model_dump(mode="json") | {"utilization": 0.5})
    path.write_text("\n".join([good, "not json", "[" * 100_000, wrong_sum, '{"t": 1}', "", wrong_ratio,
                               "x" * 2_000]) + "\n")
    read = read_pool_history(path, max_line_bytes=1_000)
    assert read.points == (point(0, used="1"),)
    assert read.skipped == 6  # the blank line is not a point and not an error


def test_a_point_whose_figures_do_not_add_up_is_refused():
    with pytest.raises(ValidationError):
        PoolHistoryPoint.model_validate(point(0, used="1").model_dump() | {"committed": Decimal(2)})
    with pytest.raises(ValidationError):
        PoolHistoryPoint.model_validate(point(0, used="1").model_dump() | {"utilization": 0.5})


def test_the_file_stays_bounded_and_keeps_the_newest_points(path: Path):
    writer = PoolHistoryWriter(path, max_points=10, fsync=False)
    for i in range(100):
        writer.append(point(i, used=str(i + 1)))
        assert len(path.read_bytes().splitlines()) <= writer.compact_at
    assert writer.compactions > 0
    read = read_pool_history(path)
    assert read.points[-1].used["159201.SZ"] == Decimal(100) and read.skipped == 0
    assert [p.used["159201.SZ"] for p in read.points] == [Decimal(i) for i in range(101 - len(read.points), 101)]


def test_a_temp_file_left_by_a_killed_compaction_is_removed(path: Path):
    stale = path.parent / f".tmp-{POOL_HISTORY_FILE}.abc"
    stale.write_text("half")
    writer = PoolHistoryWriter(path, fsync=False)
    writer.append(point(0, used="1"))
    assert not stale.exists()


def test_the_reader_keeps_at_most_max_points(path: Path):
    writer = PoolHistoryWriter(path, max_points=1000, fsync=False)
    for i in range(30):
        writer.append(point(i, used=str(i + 1)))
    read = read_pool_history(path, max_points=5)
    assert [p.used["159201.SZ"] for p in read.points] == [Decimal(i) for i in range(26, 31)]


def test_a_missing_file_raises_file_not_found(path: Path):
    with pytest.raises(FileNotFoundError):
        read_pool_history(path)


@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=400))
def test_the_reader_never_raises_on_junk(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("ph") / POOL_HISTORY_FILE
    path.write_bytes(point(0, used="1").model_dump_json().encode() + b"\n" + blob)
    read = read_pool_history(path)
    assert read.points[0] == point(0, used="1")


def test_a_link_where_the_history_belongs_is_never_written_through(path: Path, tmp_path: Path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    path.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        PoolHistoryWriter(path, fsync=False).append(point(0, used="1"))
    assert target.read_text() == "keep\n"
