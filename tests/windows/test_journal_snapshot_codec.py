"""The snapshot codec: exact round trips, shared objects stay shared, nothing foreign is written or built."""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from core.oms.order_fsm import OrderRecord, OrderState
from shared_schema.types import CST
from windows import snapshot
from windows.executor_state import LiveOrder


def roundtrip(value):
    return snapshot.decode(json.loads(json.dumps(snapshot.encode(value))))


def test_values_come_back_exactly():
    order = OrderRecord(client_order_id="c1", symbol="512890.SH", side="BUY", shares=100, price="1.100")
    live = LiveOrder(order, "s1", ("l1",), datetime(2026, 1, 5, 10, tzinfo=CST))
    value = {
        "state": OrderState.PARTIAL, "money": Decimal("0.10"), "when": datetime(2026, 1, 5, 10, 0, 0, 1, tzinfo=CST),
        "gap": timedelta(seconds=1.5), "ids": {"b", "a"}, "frozen": frozenset({1}), "pair": (1, "x"),
        "recent": deque([1, 2], maxlen=5), "by_int": {1: "one"}, "nan": math.nan, "live": live, "again": live,
    }
    back = roundtrip(value)
    assert back["state"] is OrderState.PARTIAL and back["money"] == Decimal("0.10")
    assert str(back["money"]) == "0.10" and back["when"] == value["when"] and back["gap"] == value["gap"]
    assert back["ids"] == {"a", "b"} and back["frozen"] == frozenset({1}) and back["pair"] == (1, "x")
    assert back["recent"] == deque([1, 2]) and back["recent"].maxlen == 5 and back["by_int"] == {1: "one"}
    assert math.isnan(back["nan"])
    assert back["live"] == live and back["live"] is back["again"]  # one object, as before


def test_foreign_objects_are_refused_both_ways():
    with pytest.raises(snapshot.SnapshotError):
        snapshot.encode({"lock": threading.Lock()})
    with pytest.raises(snapshot.SnapshotError):
        snapshot.encode({"f": print})
    with pytest.raises(snapshot.SnapshotError):
        snapshot.decode({"__obj__": "subprocess:Popen", "id": 0, "f": {"__d__": {}}})
