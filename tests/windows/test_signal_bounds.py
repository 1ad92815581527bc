"""Hostile signal input: poison pills, loose types, bounds before arithmetic, a maximum signal age.

Every pill is rejected once with a machine-readable reason, journaled so that a restart never meets it
again, and the executor carries on with the rest of the file.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared_schema.models import SIGNAL_FILE, Reason, ResultStatus
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME, signal_payload

PILLS = Path(__file__).resolve().parents[1] / "fuzz" / "pills"


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.executor.stop()


def write_pill_with_a_good_signal(h: Harness, pill: str) -> list[str]:
    """The pill file as it is, byte for byte, with one good signal spliced in after the pill."""
    text = (PILLS / pill).read_text()
    good = signal_payload(signal_id="good", shares=100, created_at=h.clock.now().isoformat())
    end = text.rindex("]")
    (h.shared / SIGNAL_FILE).write_text(text[:end] + "," + json.dumps(good) + text[end:])
    return [json.loads(text)["signals"][0]["signal_id"], "good"]


@pytest.mark.parametrize(
    "pill, detail",
    [
        ("amount_1e30.json", "BAD_AMOUNT"),
        ("expires_at_year_9999.json", "BAD_EXPIRES_AT"),
        ("price_35_digits.json", "BAD_PRICE"),
    ],
)
def test_a_poison_pill_is_rejected_once_and_the_loop_goes_on(h, pill, detail):
    pill_id, good_id = write_pill_with_a_good_signal(h, pill)
    h.turn()
    result = h.result(pill_id)
    assert result.status is ResultStatus.REJECTED
    assert result.reason is Reason.INVALID_SIGNAL and result.detail == detail and result.message
    assert h.result(good_id).status is ResultStatus.FILLED
    records = len(h.journal())
    h.restart()
    h.turn(2)
    assert len(h.journal()) == records  # the restart met the pill in the journal, not afresh
    assert h.result(pill_id).detail == detail
    assert [o["client_order_id"] for o in h.placed()] == [good_id]


def test_a_200k_deep_signal_file_is_refused_once_without_a_crash(h):
    (h.shared / SIGNAL_FILE).write_bytes((PILLS / "order_signal_200k_nested.json").read_bytes())
    h.turn(3)
    refusals = [r for r in h.results().input_rejections if r.detail == "JSON_TOO_DEEP"]
    assert len(refusals) == 1 and refusals[0].reason is Reason.INVALID_SIGNAL
    assert any("JSON_TOO_DEEP" in a for a in h.results().alerts)
    h.restart()
    h.turn(2)
    assert len([r for r in h.journal() if r.get("detail") == "JSON_TOO_DEEP"]) == 1
    # a good file afterwards is read as usual
    h.write_entries([signal_payload(signal_id="after", shares=100)])
    h.turn()
    assert h.result("after").status is ResultStatus.FILLED


def test_one_entry_that_raises_is_recorded_once_alerted_and_skipped(h, monkeypatch):
    """The fault barrier: an unexpected exception in one entry's decision never stops the loop."""
    import windows.intake as executor_module

    real_decide = executor_module.decide

    def decide_that_breaks_on_boom(state, raw, *args, **kwargs):
        if isinstance(raw, dict) and raw.get("signal_id") == "boom":
            raise ArithmeticError("simulated fault deep in the pipeline")
        return real_decide(state, raw, *args, **kwargs)

    monkeypatch.setattr(executor_module, "decide", decide_that_breaks_on_boom)
    h.send(signal_id="boom", shares=100)
    h.send(signal_id="next", shares=100)
    h.turn()
    boom = h.result("boom")
    assert boom.status is ResultStatus.REJECTED and boom.reason is Reason.INVALID_SIGNAL
    assert boom.detail == "ENTRY_FAULT" and "ArithmeticError" in boom.message
    assert h.result("next").status is ResultStatus.FILLED
    assert any("boom" in a and "ArithmeticError" in a for a in h.results().alerts)
    faults = [r for r in h.journal() if r.get("detail") == "ENTRY_FAULT"]
    assert len(faults) == 1
    h.restart()
    h.turn(2)
    assert len([r for r in h.journal() if r.get("detail") == "ENTRY_FAULT"]) == 1


def test_a_record_that_fails_to_apply_closes_its_signal_and_the_loop_goes_on(h, monkeypatch):
    real_apply = h.executor.state.apply

    def apply_that_breaks_on_boom_alloc(record):
        if record["k"] == "alloc" and record["coid"] == "boom2":
            raise ZeroDivisionError("simulated")
        real_apply(record)

    monkeypatch.setattr(h.executor.state, "apply", apply_that_breaks_on_boom_alloc)
    h.send(signal_id="boom2", shares=100)
    h.send(signal_id="next2", shares=100)
    h.turn()
    boom = h.result("boom2")
    assert (boom.status, boom.reason, boom.detail) == (ResultStatus.REJECTED, Reason.INVALID_SIGNAL, "ENTRY_FAULT")
    assert "ZeroDivisionError" in boom.message
    assert h.result("next2").status is ResultStatus.FILLED
    assert [o["client_order_id"] for o in h.placed()] == ["next2"]


def test_an_unkeyed_entry_that_raises_is_recorded_once_as_an_input(h, monkeypatch):
    import windows.intake as executor_module

    real_decide = executor_module.decide

    def decide_that_breaks_on_lists(state, raw, *args, **kwargs):
        if isinstance(raw, list):
            raise RecursionError("simulated")
        return real_decide(state, raw, *args, **kwargs)

    monkeypatch.setattr(executor_module, "decide", decide_that_breaks_on_lists)
    h.write_entries([[1, 2, 3], signal_payload(signal_id="ok", shares=100)])
    h.turn(3)
    faults = [r for r in h.results().input_rejections if r.detail == "ENTRY_FAULT"]
    assert len(faults) == 1 and "RecursionError" in faults[0].message
    assert h.result("ok").status is ResultStatus.FILLED


# ------------------------------------------------------------------------------------------ loose types


@pytest.mark.parametrize(
    "overrides, detail",
    [
        ({"shares": "300"}, "BAD_SHARES"),
        ({"shares": 200.0}, "BAD_SHARES"),
        ({"shares": True}, "BAD_SHARES"),
        ({"shares": 10**35}, "BAD_SHARES"),
        ({"price": " 1.001 "}, "BAD_PRICE"),
        ({"price": "1.100"}, "BAD_PRICE"),  # prices are JSON numbers, never strings
        ({"price": 1.1005}, "BAD_PRICE"),  # more than 3 decimals
        ({"price": 10**35}, "BAD_PRICE"),
        ({"amount": "110"}, "BAD_AMOUNT"),
        ({"amount": 1e26}, "BAD_AMOUNT"),
        ({"layer_index": "1"}, "BAD_LAYER_INDEX"),
        ({"created_at": "0001-01-01T00:00:00+08:00"}, "BAD_CREATED_AT"),
        ({"expires_at": "2300-01-01T00:00:00+08:00"}, "BAD_EXPIRES_AT"),
    ],
)
def test_loose_types_and_out_of_range_values_are_refused(h, overrides, detail):
    h.write_entries([{**signal_payload(signal_id="x1"), **overrides}])  # as written, no stub conversion
    h.turn()
    result = h.result("x1")
    assert result.status is ResultStatus.REJECTED
    assert (result.reason, result.detail) == (Reason.INVALID_SIGNAL, detail)
    assert h.placed() == []


def test_amount_may_not_pass_price_times_shares_plus_the_fee_margin(h):
    h.send(signal_id="fat", price=1.5, shares=100, amount=150_000)  # a 100-share order freezing 150,000
    h.send(signal_id="fee", price=1.1, shares=1000, amount=1100.11)  # notional 1,100 + 0.01% fee margin
    h.send(signal_id="over", price=1.1, shares=1000, amount=1100.12)
    h.turn()
    fat = h.result("fat")
    assert (fat.status, fat.reason, fat.detail) == (ResultStatus.REJECTED, Reason.INVALID_SIGNAL, "AMOUNT_ABOVE_NOTIONAL")
    assert h.result("fee").status is ResultStatus.FILLED
    assert h.result("over").detail == "AMOUNT_ABOVE_NOTIONAL"
    assert float(h.pool().frozen_512890) == 0


# --------------------------------------------------------------------------------------- signal age


def test_a_signal_without_expiry_older_than_the_maximum_age_expires(h):
    h.send(signal_id="old", shares=100, created_at=(SESSION_TIME - timedelta(seconds=121)).isoformat())
    h.send(signal_id="young", shares=100, created_at=(SESSION_TIME - timedelta(seconds=119)).isoformat())
    h.send(signal_id="1999", shares=100, created_at=SESSION_TIME.replace(year=1999).isoformat())
    h.send(signal_id="own-expiry", shares=100, created_at=(SESSION_TIME - timedelta(seconds=600)).isoformat(),
           expires_at=(SESSION_TIME + timedelta(seconds=60)).isoformat())
    h.turn()
    old = h.result("old")
    assert (old.status, old.reason, old.detail) == (ResultStatus.EXPIRED, Reason.ORDER_EXPIRED, "SIGNAL_TOO_OLD")
    assert h.result("1999").detail == "SIGNAL_TOO_OLD"
    assert h.result("young").status is ResultStatus.FILLED
    assert h.result("own-expiry").status is ResultStatus.FILLED  # an explicit expires_at governs


def test_the_maximum_signal_age_is_configurable_and_judged_on_market_time(tmp_path):
    base = paper_config()
    config = base.model_copy(update={"executor": base.executor.model_copy(update={"max_signal_age_s": 600.0})})
    h = Harness(tmp_path, config)
    h.send(signal_id="s5", shares=100, created_at=(SESSION_TIME - timedelta(seconds=500)).isoformat())
    h.turn()
    assert h.result("s5").status is ResultStatus.FILLED
    h.executor.stop()


# ------------------------------------------- values of a refused signal that reached the state (fuzz finds)


def compacting(tmp_path: Path) -> Harness:
    """An executor that compacts its journal every 10 records (snapshot + forget run on every few turns)."""
    base = paper_config()
    config = base.model_copy(update={"executor": base.executor.model_copy(
        update={"journal_compact_records": 10, "result_retention": 10})})
    return Harness(tmp_path, config)


def write_with_literal(h: Harness, entries: list[dict], field_literals: dict[int, tuple[str, str]]) -> None:
    """Entries written as JSON, entry ``i``'s field set to the raw number text ``literal`` (not a JSON string)."""
    entries = [dict(e) for e in entries]
    for i, (field, _literal) in field_literals.items():
        entries[i][field] = f"@@{i}@@"
    text = json.dumps({"schema_version": 1, "seq": 1, "updated_at": h.clock.now().isoformat(), "signals": entries})
    for i, (_field, literal) in field_literals.items():
        text = text.replace(f'"@@{i}@@"', literal)
    (h.shared / SIGNAL_FILE).write_text(text)


@pytest.mark.parametrize("literal", ["1e99999", "-1e99999", "1" + "0" * 5000])
def test_a_refused_share_count_too_large_for_any_int_never_reaches_the_state(tmp_path, literal):
    """Shrunk from test_numbers_pushed_to_extremes_never_escape_the_executor_loop: ``"shares": 1e99999`` was
    refused (BAD_SHARES) but copied into the result's ``requested_shares`` as a 100,000-digit int, which the
    journal's snapshot could not serialise: the compaction raised out of the executor loop on every turn."""
    h = compacting(tmp_path)
    write_with_literal(h, [signal_payload(signal_id="pill", shares=100)], {0: ("shares", literal)})
    h.turn()
    for i in range(3):  # enough records for a compaction (the pill stays in the file)
        ok = [signal_payload(signal_id=f"ok{j}", shares=100, created_at=h.clock.now().isoformat()) for j in range(i + 1)]
        write_with_literal(h, [signal_payload(signal_id="pill", shares=100), *ok], {0: ("shares", literal)})
        h.turn()
    pill = h.result("pill")
    assert (pill.status, pill.reason, pill.detail) == (ResultStatus.REJECTED, Reason.INVALID_SIGNAL, "BAD_SHARES")
    assert pill.requested_shares == 0  # only a share count within the schema's bounds is echoed
    assert h.journal()[0]["k"] == "snapshot"  # the compaction ran
    h.restart()
    h.turn()
    assert h.result("pill").requested_shares == 0 and h.result("ok2").status is ResultStatus.FILLED


@pytest.mark.parametrize("far", ["9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59+08:00", "0001-01-01T00:00:00+14:00"])
def test_a_refused_far_expiry_never_reaches_date_arithmetic(tmp_path, far):
    """Shrunk from test_far_and_malformed_dates_never_escape_the_executor_loop: ``expires_at`` in year 9999
    was refused (BAD_EXPIRES_AT) but kept as the entry's expiry; once the junk had left the published view,
    the compaction's ``expires_at + skew`` overflowed out of the executor loop."""
    h = compacting(tmp_path)
    h.write_entries([signal_payload(signal_id="pill", shares=100, expires_at=far)])
    h.turn()
    assert h.result("pill").detail == "BAD_EXPIRES_AT"
    # 200 newer junk entries, once they have left the file too, push the pill out of the published input
    # rejections: the next compaction judges whether it may be forgotten
    h.write_entries([{**signal_payload(signal_id=f"j{i}"), "shares": "1"} for i in range(200)])
    h.turn()
    h.write_entries([])
    h.turn()
    for i in range(3):  # enough records for another compaction
        h.send(signal_id=f"after{i}", shares=100)
        h.turn()
    assert h.journal()[0]["k"] == "snapshot"
    assert h.result("after2").status is ResultStatus.FILLED
    h.restart()
    h.turn()
    assert h.result("after2").status is ResultStatus.FILLED


def test_applying_a_signal_record_keeps_only_a_sane_expiry_and_share_count():
    """The record-apply path bounds what it copies from a refused signal's raw payload (live and at replay)."""
    from windows.executor import build_vault
    from windows.executor_state import ExecutorState

    state = ExecutorState(build_vault(paper_config()), result_retention=0)
    t = SESSION_TIME.isoformat()
    raw = {"expires_at": "9999-12-31T23:59:59+08:00", "shares": 10**35, "created_at": t}
    state.apply({"k": "signal", "id": "x", "h": "h", "sig": raw, "t": t})
    state.apply({"k": "result", "id": "x", "status": "EXPIRED", "reason": "ORDER_EXPIRED", "detail": "D", "t": t})
    entry = state.signals["x"]
    assert entry.expires_at is None and entry.result.requested_shares == 0
    later = SESSION_TIME + timedelta(days=1)
    assert state.forgettable((), later, 120.0, 30.0)["ids"] == ["x"]  # no OverflowError; it may go
