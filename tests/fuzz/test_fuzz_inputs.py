"""Property-based fuzzing of every file the system reads (>= 10,000 cases per file type).

The executor's decision on a signal entry, the signal-file parser, the quote-file reader, control-command
verification and config loading must never raise on bad input, never let an invalid signal become an
order, and always say why they refused.
"""

from __future__ import annotations

import json
import math
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.control.commands import ControlAction, InMemoryNonceStore, new_command, sign_command, verify_command
from settings.config import ConfigError, GridbridgeConfig, load_config
from shared_schema.atomic_io import ModelFileReader, ReadStatus
from shared_schema.models import CLIENT_ORDER_ID_PATTERN, Direction, QuoteFile, Reason, Signal
from shared_schema.signal_io import read_raw_entries
from tests.kit.stubs import SESSION_TIME, make_quote
from windows.executor import build_vault
from windows.executor_state import ExecutorState
from windows.market_rules import is_on_tick, price_limits
from windows.pipeline import MarketContext, decide

MANY = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SOME = settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)

CONFIG = GridbridgeConfig()
QUOTES = {c: make_quote(c, p, SESSION_TIME) for c, p in (("512890.SH", 1.1), ("159201.SZ", 1.3))}
CTX = MarketContext(now=SESSION_TIME, quotes=QUOTES, sellable={"512890.SH": 50_000, "159201.SZ": 50_000},
                    available_cash=Decimal("400000"))

weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../../etc/passwd", "..\\..\\boot.ini", "/abs/path", "a/b", "C:\\x", "\x00", "NUL", "名字",
                     "G9201B" * 10, "", " ", "S1", "ok-id", "x" * 200]),
)
numbers = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**6, max_value=10**6).map(str),
    st.sampled_from(["NaN", "Infinity", "-inf", "1e400", "0", "-0", "1.1", "1.100", "1.1005", 100, 150, 1e300]),
)
timestamps = st.one_of(
    st.just(SESSION_TIME.isoformat()),
    st.integers(-3600 * 30, 3600 * 30).map(lambda s: (SESSION_TIME + timedelta(seconds=s)).isoformat()),
    st.sampled_from(["yesterday", "2026-13-01T00:00:00", "", "2026-01-05T10:00:00"]),
    numbers,
)


@st.composite
def signal_entries(draw):
    base = {
        "signal_id": draw(st.one_of(st.just("S-1"), weird_text)),
        "code": draw(st.sampled_from(["512890.SH", "159201.SZ", "600000.SH", "", "512890", "../512890.SH"])),
        "direction": draw(st.sampled_from(["BUY", "SELL", "buy", "HOLD", "", None])),
        "price": draw(st.one_of(st.sampled_from(["1.100", "1.099", "1.3", "1.300", "0.99", "1.2101"]), numbers)),
        "shares": draw(st.one_of(st.sampled_from([100, 1000, 150, 0, -100, 10**9]), numbers)),
        "layer_index": draw(st.one_of(st.integers(-2, 70), numbers)),
        "created_at": draw(timestamps),
    }
    optional = {
        "client_order_id": st.one_of(weird_text, st.just("C1")),
        "amount": numbers,
        "expires_at": timestamps,
        "release_client_order_ids": st.lists(weird_text, max_size=70),
        "unexpected": st.text(max_size=5),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            base[key] = draw(strategy)
    drop = draw(st.lists(st.sampled_from(sorted(base)), max_size=2))
    for key in drop:
        base.pop(key, None)
    return draw(st.one_of(st.just(base), st.just(base), st.just(base), numbers, st.lists(st.integers(), max_size=3),
                          st.none(), weird_text))


def _independently_valid(raw) -> bool:
    """Would a careful human accept this as an order? (Written apart from the pipeline's own checks.)"""
    try:
        signal = Signal.model_validate(raw)
    except (ValidationError, ValueError, TypeError):
        return False
    if signal.code not in CONFIG.codes or signal.shares % 100 or not is_on_tick(signal.price, CONFIG.market):
        return False
    if not CLIENT_ORDER_ID_PATTERN.match(signal.client_order_id):
        return False
    low, high = price_limits(Decimal(str(QUOTES[signal.code].prev_close)), CONFIG.market)
    if not (low <= signal.price <= high) or signal.amount < signal.price * signal.shares:
        return False
    if signal.created_at > SESSION_TIME + timedelta(seconds=30) or signal.layer_index >= 64:
        return False
    if signal.expires_at is not None and signal.expires_at + timedelta(seconds=30) < SESSION_TIME:
        return False
    if signal.direction is Direction.SELL and (signal.shares > 50_000 or signal.release_client_order_ids):
        return False
    return True


@MANY
@given(entries=st.lists(signal_entries(), min_size=1, max_size=3))
def test_signal_entries_never_crash_and_never_order_invalid_signals(entries):
    state = ExecutorState(build_vault(CONFIG))
    seen: set[str] = set()
    for raw in entries:
        records = decide(state, raw, CTX, CONFIG, seen)
        for record in records:
            state.apply(record)
            if record["k"] == "input":
                seen.add(record["key"])
        kinds = [r["k"] for r in records]
        if "intent" in kinds:
            assert _independently_valid(raw), raw
        for record in records:
            if record["k"] in ("result", "input"):
                assert Reason(record["reason"]) and record["message"]
        if records and "intent" not in kinds:
            assert any(k in ("result", "input") for k in kinds), records
    assert state.vault.check_invariants() == []
    assert state.vault.committed() <= state.vault.limits.physical_pool


@MANY
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                              lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                              max_leaves=12).map(lambda o: json.dumps(o, allow_nan=True).encode())))
def test_signal_file_parser_accepts_or_refuses_cleanly(data):
    try:
        entries, seq = read_raw_entries(data)
    except ValueError:
        return
    assert isinstance(entries, list) and isinstance(seq, int)


@st.composite
def quote_documents(draw):
    quote = {"code": "512890.SH", "last": draw(numbers), "bid1": draw(numbers), "ask1": draw(numbers),
             "quote_time": draw(timestamps), "prev_close": draw(numbers),
             "bars": draw(st.lists(st.fixed_dictionaries({"t": numbers, "o": numbers, "h": numbers,
                                                          "l": numbers, "c": numbers}), max_size=3))}
    doc = {"seq": draw(numbers), "updated_at": draw(timestamps), "quotes": {"512890.SH": quote},
           "positions": draw(st.dictionaries(st.sampled_from(["512890.SH", "x"]), st.fixed_dictionaries(
               {"code": st.just("512890.SH"), "volume": numbers, "can_use_volume": numbers, "avg_cost": numbers,
                "market_value": numbers}), max_size=1))}
    return json.dumps(doc, allow_nan=True, default=str).encode()


SCRATCH = Path(tempfile.mkdtemp(prefix="gridbridge-fuzz-"))


@MANY
@given(quote_documents())
def test_quote_file_reader_never_raises_and_never_keeps_nan(data):
    path = SCRATCH / "shared_quote.json"
    path.write_bytes(data)
    outcome = ModelFileReader(path, QuoteFile, retries=0).read()
    if outcome.status is ReadStatus.FRESH:
        quote = outcome.model.quotes["512890.SH"]
        assert all(math.isfinite(v) and v >= 0 for v in (quote.last, quote.bid1, quote.ask1, quote.prev_close))
        assert all(p.volume >= 0 and p.can_use_volume >= 0 for p in outcome.model.positions.values())
    else:
        assert outcome.error


SECRET = b"fuzz-secret"


@st.composite
def control_payloads(draw):
    now = SESSION_TIME
    command = new_command(draw(st.sampled_from(list(ControlAction))), "fuzz", now, symbol="512890.SH")
    signed = json.loads(sign_command(command, SECRET).model_dump_json())
    mutation = draw(st.sampled_from(["none", "body", "sig", "drop-sig", "garbage", "secret"]))
    if mutation == "body":
        key = draw(st.sampled_from(sorted(signed["body"])))
        signed["body"][key] = draw(st.one_of(weird_text, numbers))
    elif mutation == "sig":
        signed["signature"] = draw(st.text(max_size=70))
    elif mutation == "drop-sig":
        signed.pop("signature", None)
    elif mutation == "garbage":
        return draw(st.binary(max_size=100)), mutation
    elif mutation == "secret":
        signed = json.loads(sign_command(command, b"other").model_dump_json())
    return json.dumps(signed, default=str).encode(), mutation


@MANY
@given(control_payloads())
def test_control_commands_only_verify_when_signed_intact_and_fresh(payload):
    raw, mutation = payload
    result = verify_command(raw, SECRET, InMemoryNonceStore(), SESSION_TIME)
    if mutation == "none":
        assert result.ok
    elif mutation in ("sig", "drop-sig", "garbage", "secret"):
        assert not result.ok and result.reason is not None
    elif not result.ok:
        assert result.reason is not None


@st.composite
def config_documents(draw):
    sections = {
        "vault": st.fixed_dictionaries({}, optional={"physical_pool": numbers, "reserve_ratio": numbers,
                                                     "nominal_caps": st.dictionaries(weird_text, numbers, max_size=3)}),
        "executor": st.fixed_dictionaries({}, optional={"max_order_age_s": numbers, "poll_interval_s": numbers,
                                                        "result_retention": numbers}),
        "paper": st.fixed_dictionaries({}, optional={"initial_cash": numbers, "reject_ratio": numbers}),
        "market": st.fixed_dictionaries({}, optional={"lot_size": numbers, "tick": numbers}),
        "grid": st.dictionaries(weird_text, st.one_of(numbers, st.dictionaries(weird_text, numbers, max_size=2)),
                                max_size=3),
        "bogus": numbers,
    }
    doc = {k: draw(v) for k, v in sections.items() if draw(st.booleans())}
    return json.dumps(doc, allow_nan=True, default=str)


@MANY
@given(config_documents())
def test_config_is_valid_or_refused_with_config_error(text):
    path = SCRATCH / "config.json"
    path.write_text(text)
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(exc)
        return
    assert config.vault.physical_pool > 0 and Decimal(0) <= config.vault.reserve_ratio < 1
    assert config.executor.max_order_age_s > 0
