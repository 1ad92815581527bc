"""One field of an otherwise valid signal pushed to an extreme, run through the real executor loop.

The earlier fuzzing mutated everything at once, so nearly every entry failed early in the schema and the
two poison pills (``amount: 1e30``, ``expires_at`` in year 9999) that need an otherwise valid signal were never
tried. Each generator here takes a valid signal and changes exactly one field: huge, tiny, negative zero,
NaN, far dates, deep nesting, odd types, 35-digit and 5,000-digit numbers written as raw JSON text.

Every example writes ``ENTRIES_PER_FILE`` such entries into ``order_signal.json`` and runs
``Executor.run_once`` (paper broker, real files in a temp folder). 200 examples x 50 entries = 10,000 cases
per generator. After every turn: no exception escaped, every entry got exactly one journal verdict (a signal
with one result, or one input rejection), nothing invalid became an order, and the vault still balances.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema.models import SIGNAL_FILE, ResultStatus
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME
from windows.market_rules import price_limits

ENTRIES_PER_FILE = 50
EXAMPLES = 200  # x ENTRIES_PER_FILE = 10,000 cases per generator
EXTREMES = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FIELDS = ("signal_id", "client_order_id", "code", "direction", "price", "shares", "amount", "layer_index",
          "release_client_order_ids", "created_at", "expires_at", "source", "unexpected_key")
NUMERIC = ("price", "shares", "amount", "layer_index")
DATES = ("created_at", "expires_at")


class Raw:
    """A number written into the file as this exact JSON text (35 digits, 5,000 digits, 1e99999...)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r})"


# ------------------------------------------------------------------------------------------ generators

huge_and_tiny = st.one_of(
    st.sampled_from([1e30, -1e30, 1e26, 1e300, -1e300, 1.7976931348623157e308, 1e-30, 5e-324, -5e-324, -0.0, 0.0, 0,
                     -1, 1, 10**35, -(10**35), 2**63, 2**64 + 1, 10**18, 1.0999999999999999, 1.1005, 0.0005,
                     float("nan"), float("inf"), float("-inf")]),
    st.sampled_from([Raw("1.10000000000000000000000000000000001"), Raw("9" * 35), Raw("1" + "0" * 5000),
                     Raw("1e99999"), Raw("-1e99999"), Raw("-0"), Raw("-0.0"), Raw("1E+30"),
                     Raw("0.00000000000000000000000000000001"), Raw("1" * 35 + ".5")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False, places=35).map(lambda d: Raw(str(d))),
)

far_dates = st.one_of(
    st.sampled_from(["9999-12-31T23:59:59+08:00", "0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-12:00", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00+08:00",
                     "2199-12-31T23:59:59+08:00", "2200-01-01T00:00:00+08:00", "1999-01-01T10:00:00+08:00",
                     "2026-01-05T10:00:00+14:00", "2026-01-05T10:00:00-12:00", "2026-02-30T10:00:00",
                     "2026-01-05T25:00:00", "+275760-09-13T00:00:00Z", "2026-01-05", "10:00:00", "", "now"]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([1e300, -1e300, float("nan"), 0, 253402300799, 253402300800]),
)


def nested(depth: int, leaf: Any, kind: str) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


deep_values = st.builds(nested, st.integers(min_value=1, max_value=55),
                        st.sampled_from([1, "x", None, 1.1, [], {}]), st.sampled_from(["list", "dict"]))

odd_types = st.one_of(
    st.sampled_from([None, True, False, [], {}, "", " ", "NaN", "1e30", "-0", " 1.001 ", "300", "1_000", "0x10",
                     "１００", "\x00", "名字", "x" * 10_000, {"$gt": 1}, [1, 2], [None], {"": ""}, 12, -1, 1.5]),
    st.text(max_size=30),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def field_for(family: str) -> st.SearchStrategy[str]:
    return st.sampled_from({"numbers": NUMERIC, "dates": DATES}.get(family, FIELDS))


@st.composite
def one_extreme_field(draw: Any, family: str) -> tuple[str, Any]:
    field = draw(field_for(family))
    values = {"numbers": huge_and_tiny, "dates": far_dates, "nesting": deep_values, "types": odd_types}[family]
    return field, draw(values)


def files_of(family: str) -> st.SearchStrategy[list[tuple[str, Any]]]:
    return st.lists(one_extreme_field(family), min_size=ENTRIES_PER_FILE, max_size=ENTRIES_PER_FILE)


# ----------------------------------------------------------------------------------------- the harness


class Loop:
    """One executor on temp folders, shared by the examples of one generator (state accumulates)."""

    def __init__(self, root: Path) -> None:
        config = paper_config(initial_cash="100000000")
        config = config.model_copy(update={"executor": config.executor.model_copy(
            update={"max_orders_per_s": 1e9, "order_burst": 10**9})})
        self.h = Harness(root, config)
        self.example = 0
        self.broken = False

    def valid_base(self, i: int) -> dict[str, Any]:
        code, price = (("512890.SH", 1.1), ("159201.SZ", 1.3))[i % 2]
        sid = f"F{self.example}-{i}"
        return {"signal_id": sid, "client_order_id": sid, "code": code, "direction": "BUY", "price": price,
                "shares": 100, "layer_index": 1 + i % 8, "created_at": SESSION_TIME.isoformat()}

    def write(self, mutations: list[tuple[str, Any]]) -> int:
        self.example += 1
        raws: dict[str, str] = {}
        entries = []
        for i, (field, value) in enumerate(mutations):
            entry = self.valid_base(i)
            if isinstance(value, Raw):
                marker = f"@@RAW{i}@@"
                raws[f'"{marker}"'] = value.text
                value = marker
            entry[field] = value
            entries.append(entry)
        text = json.dumps({"schema_version": 1, "seq": self.example, "updated_at": SESSION_TIME.isoformat(),
                           "signals": entries}, allow_nan=True)
        for marker, literal in raws.items():
            text = text.replace(marker, literal)
        (self.h.shared / SIGNAL_FILE).write_text(text)
        return len(entries)

    def run_and_check(self, mutations: list[tuple[str, Any]]) -> None:
        executor = self.h.executor
        state = executor.state
        signals_before, inputs_before = set(state.signals), set(executor.seen_inputs)
        count = self.write(mutations)
        try:
            executor.run_once()  # no exception may escape
        except BaseException:
            self.broken = True  # the next example starts on a fresh executor, so the report shows this error
            raise
        new_signals = set(state.signals) - signals_before
        new_inputs = set(executor.seen_inputs) - inputs_before
        # exactly one verdict per entry: the payloads are all distinct (unique client_order_id)
        assert len(new_signals) + len(new_inputs) == count, (len(new_signals), len(new_inputs), mutations)
        for sid in new_signals:
            result = state.signals[sid].result
            if result.status in (ResultStatus.REJECTED, ResultStatus.EXPIRED):
                assert result.reason is not None and result.detail and result.message, result
        # nothing invalid became an order
        for order in state.orders.values():
            if order.signal_id not in new_signals:
                continue
            price = Decimal(order.record.price)
            prev_close = Decimal(str({"512890.SH": 1.1, "159201.SZ": 1.3}[order.record.symbol]))
            low, high = price_limits(prev_close, self.h.config.market)
            assert low <= price <= high and price == price.quantize(Decimal("0.001")), order
            assert order.record.shares > 0 and order.record.shares % 100 == 0, order
        # the vault still balances, and the published pool says the same
        vault = state.vault
        assert vault.check_invariants() == []
        assert 0 <= vault.committed() <= vault.limits.physical_pool
        pool = self.h.pool()
        for key in ("159201", "512890"):
            allocations = getattr(pool, f"allocations_{key}")
            assert getattr(pool, f"used_{key}") == sum((a.used for a in allocations), Decimal(0))
            assert getattr(pool, f"frozen_{key}") == sum((a.frozen for a in allocations), Decimal(0))


@pytest.fixture(scope="module")
def loops() -> Iterator[dict[str, Loop]]:
    made: dict[str, Loop] = {}
    root = Path(tempfile.mkdtemp(prefix="gridbridge-extremes-"))

    def get(family: str) -> Loop:
        if family not in made or made[family].broken:
            made[family] = Loop(Path(tempfile.mkdtemp(prefix=family + "-", dir=root)))
        return made[family]

    yield get  # type: ignore[misc]
    for loop in made.values():
        if not loop.broken:
            loop.h.executor.stop()


@EXTREMES
@given(mutations=files_of("numbers"))
def test_numbers_pushed_to_extremes_never_escape_the_executor_loop(loops, mutations):
    loops("numbers").run_and_check(mutations)


@EXTREMES
@given(mutations=files_of("dates"))
def test_far_and_malformed_dates_never_escape_the_executor_loop(loops, mutations):
    loops("dates").run_and_check(mutations)


@EXTREMES
@given(mutations=files_of("nesting"))
def test_deep_nesting_in_one_field_never_escapes_the_executor_loop(loops, mutations):
    loops("nesting").run_and_check(mutations)


@EXTREMES
@given(mutations=files_of("types"))
def test_odd_types_in_one_field_never_escape_the_executor_loop(loops, mutations):
    loops("types").run_and_check(mutations)


def test_the_generators_reach_the_pills(loops):
    """The two pills that need an otherwise valid signal are among the cases, and are refused."""
    loop = loops("pills")
    loop.run_and_check([("amount", 1e30), ("expires_at", "9999-12-31T23:59:59+08:00"),
                        ("price", Raw("1.10000000000000000000000000000000001")), ("shares", Raw("1" + "0" * 5000))])
    details = {sid: e.result.detail for sid, e in loop.h.executor.state.signals.items()}
    assert details == {"F1-0": "BAD_AMOUNT", "F1-1": "BAD_EXPIRES_AT", "F1-2": "BAD_PRICE", "F1-3": "BAD_SHARES"}
