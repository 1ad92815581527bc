"""The executor pipeline on a paper broker: every rejection code, the order of checks, the vault flow."""

from datetime import timedelta

import pytest

from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.executor.stop()


def test_buy_fills_and_moves_frozen_to_used(h):
    h.send(signal_id="b1", price="1.100", shares=1000, layer_index=1)
    h.turn()
    assert h.result("b1").status is ResultStatus.FILLED
    pool = h.pool()
    assert float(pool.used_512890) == 1100.11  # fill value + 0.11 commission: used is cash out, fees included
    assert float(pool.frozen_512890) == 0
    assert pool.allocations_512890[0].client_order_id == "b1"


def test_buy_rests_frozen_until_the_market_reaches_it(h):
    h.send(signal_id="b1", price="1.090", shares=1000, layer_index=1)
    h.turn()
    assert h.result("b1").status is ResultStatus.SENT
    assert float(h.pool().frozen_512890) == 1090.11  # amount + the fee estimate
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=1), **{"512890_SH": 1.089})
    h.turn()
    assert h.result("b1").status is ResultStatus.FILLED
    assert float(h.pool().used_512890) == pytest.approx(1089.11)
    assert float(h.pool().frozen_512890) == 0


def test_sell_releases_the_lot_and_books_alpha(h):
    h.send(signal_id="b1", price="1.100", shares=10000, layer_index=1)
    h.turn()
    h.publish_quotes(when=SESSION_TIME + timedelta(minutes=5), **{"512890_SH": 1.110})
    h.send(signal_id="s1", direction="SELL", price="1.109", shares=10000, release_client_order_ids=["b1"])
    h.turn()
    assert h.result("s1").status is ResultStatus.FILLED
    pool = h.pool()
    assert float(pool.used_512890) == 0
    # proceeds 11090 - cost 11000 - buy fee 1.10 - sell fee 1.11
    assert float(pool.acc_alpha_512890) == pytest.approx(87.79)


def test_same_signal_twice_is_acted_on_once(h):
    h.send(signal_id="b1", shares=1000)
    h.turn()
    h.write_entries(h.entries() + h.entries())
    h.turn(3)
    assert len(h.placed()) == 1


@pytest.mark.parametrize(
    "overrides, reason, detail",
    [
        ({"shares": 150}, Reason.INVALID_SIGNAL, "LOT_SIZE"),
        ({"price": "1.1005"}, Reason.INVALID_SIGNAL, "BAD_PRICE"),  # more than 3 decimals: refused by the schema
        ({"code": "600000.SH"}, Reason.INVALID_SIGNAL, "UNKNOWN_CODE"),
        ({"price": "-1"}, Reason.INVALID_SIGNAL, "BAD_PRICE"),
        ({"shares": "many"}, Reason.INVALID_SIGNAL, "BAD_SHARES"),
        ({"direction": "HOLD"}, Reason.INVALID_SIGNAL, "BAD_DIRECTION"),
        ({"client_order_id": "x" * 30}, Reason.INVALID_SIGNAL, None),
        ({"price": "1.300"}, Reason.PRICE_LIMIT, "OUTSIDE_DAILY_LIMIT"),
        ({"price": "0.980"}, Reason.PRICE_LIMIT, "OUTSIDE_DAILY_LIMIT"),
        ({"direction": "SELL", "shares": 200_000}, Reason.NOT_SELLABLE_T1, "ABOVE_CAN_USE_VOLUME"),
        (
            {"direction": "SELL", "release_client_order_ids": ["nope"]},
            Reason.INVALID_SIGNAL,
            "RELEASE_UNKNOWN",
        ),
        ({"shares": 1_000_000, "price": "1.100"}, Reason.INSUFFICIENT_CASH, "BROKER_CASH"),
        ({"shares": 190_000, "price": "1.100"}, Reason.NOMINAL_CAP, "NOMINAL_CAP"),
    ],
)
def test_rejections_carry_stable_codes_and_place_nothing(h, overrides, reason, detail):
    h.send(signal_id="x1", **overrides)
    h.turn()
    result = h.result("x1")
    assert result.status is ResultStatus.REJECTED
    assert result.reason is reason
    if detail:
        assert result.detail == detail
    assert result.message
    assert h.placed() == []


def test_expired_signal_is_expired_not_sent(h):
    h.send(signal_id="e1", expires_at=(SESSION_TIME - timedelta(minutes=5)).isoformat())
    h.turn()
    assert h.result("e1").status is ResultStatus.EXPIRED
    assert h.result("e1").reason is Reason.ORDER_EXPIRED
    assert h.placed() == []


def test_signal_from_the_future_is_refused(h):
    h.send(signal_id="f1", created_at=(SESSION_TIME + timedelta(hours=1)).isoformat())
    h.turn()
    assert h.result("f1").detail == "FUTURE_TIMESTAMP"


def test_outside_session_is_refused(tmp_path):
    h = Harness(tmp_path, when=SESSION_TIME.replace(hour=12))
    h.send(signal_id="o1")
    h.turn()
    assert h.result("o1").reason is Reason.OUTSIDE_SESSION
    h.executor.stop()


def test_reserve_and_pool_rules_refuse_through_the_executor(tmp_path):
    h = Harness(tmp_path, paper_config(initial_cash="5000000"))
    h.send(signal_id="a1", code="159201.SZ", price="1.300", shares=150_000, layer_index=2)  # 195,000
    h.send(signal_id="a2", code="512890.SH", price="1.100", shares=50_000, layer_index=2)  # 55,000 -> 250,000
    h.turn()
    h.send(
        signal_id="r0", code="512890.SH", price="1.100", shares=5_000, layer_index=0
    )  # 5,500 -> 255,500 > 255,000
    h.send(
        signal_id="r1", code="512890.SH", price="1.100", shares=45_000, layer_index=3
    )  # 49,500 -> 299,500 ok
    h.send(
        signal_id="r2", code="512890.SH", price="1.100", shares=1_000, layer_index=4
    )  # 1,100 -> over 300,000
    h.turn()
    assert h.result("r0").reason is Reason.POOL_RESERVE_15
    assert h.result("r1").status is ResultStatus.FILLED
    assert h.result("r2").reason is Reason.POOL_EXHAUSTED
    h.executor.stop()


def test_cash_precheck_comes_before_the_vault(tmp_path):
    h = Harness(tmp_path, paper_config(initial_cash="1000"))
    h.send(signal_id="c1", shares=190_000)  # breaks both the cash and the nominal cap
    h.turn()
    assert h.result("c1").reason is Reason.INSUFFICIENT_CASH
    h.executor.stop()


def test_validation_comes_before_cash(tmp_path):
    h = Harness(tmp_path, paper_config(initial_cash="1000"))
    h.send(signal_id="c1", shares=190_050)
    h.turn()
    assert h.result("c1").reason is Reason.INVALID_SIGNAL
    h.executor.stop()


def test_duplicate_signal_id_with_other_payload_is_a_conflict(h):
    h.send(signal_id="d1", shares=1000)
    h.turn()
    entries = h.entries()
    changed = dict(entries[0], shares=2000)
    h.write_entries([changed])
    h.turn()
    rejections = h.results().input_rejections
    assert [r.reason for r in rejections] == [Reason.DUPLICATE_ID_CONFLICT]
    assert h.result("d1").status is ResultStatus.FILLED
    assert len(h.placed()) == 1


def test_reused_client_order_id_is_a_conflict(h):
    h.send(signal_id="d1", client_order_id="C1", shares=1000)
    h.send(signal_id="d2", client_order_id="C1", shares=1000)
    h.turn()
    assert h.result("d2").reason is Reason.DUPLICATE_ID_CONFLICT
    assert len(h.placed()) == 1


def test_broker_rejection_releases_the_frozen_amount(tmp_path):
    h = Harness(tmp_path, paper_config(reject_ratio=1.0))
    h.send(signal_id="j1", shares=1000)
    h.turn()
    assert h.result("j1").reason is Reason.BROKER_REJECT
    assert float(h.pool().frozen_512890) == 0
    assert h.executor.state.vault.committed() == 0
    h.executor.stop()


def test_open_order_older_than_max_age_is_cancelled_and_released(h):
    h.send(signal_id="b1", price="1.000", shares=1000)
    h.turn()
    assert float(h.pool().frozen_512890) == 1000.1  # amount + the fee estimate
    h.publish_quotes(when=SESSION_TIME + timedelta(seconds=h.config.executor.max_order_age_s + 1))
    h.turn(2)
    result = h.result("b1")
    assert result.status is ResultStatus.CANCELLED
    assert result.reason is Reason.ORDER_EXPIRED
    assert float(h.pool().frozen_512890) == 0


def test_halted_executor_refuses_new_signals(h):
    h.executor._commit({"k": "halt", "on": True, "why": "test", "t": SESSION_TIME.isoformat()})
    h.send(signal_id="h1")
    h.turn()
    assert h.result("h1").reason is Reason.HALTED


def test_unparsable_entries_are_recorded_not_dropped(h):
    h.write_entries([42, {"no_id": True}, {"signal_id": "ok-but-bad", "price": "NaN"}])
    h.turn()
    results = h.results()
    assert len(results.input_rejections) == 2
    assert results.results["ok-but-bad"].reason is Reason.INVALID_SIGNAL
    h.turn()
    assert len(h.results().input_rejections) == 2  # recorded once


def test_partial_fills_then_cancel_leave_the_filled_part_used(tmp_path):
    h = Harness(tmp_path, paper_config(partial_fill_ratio=1.0))
    h.send(signal_id="p1", price="1.100", shares=4000, layer_index=1)
    h.turn()
    assert h.result("p1").status is ResultStatus.PARTIAL
    assert h.result("p1").filled_shares == 2000
    pool = h.pool()
    assert float(pool.used_512890) == 2200.22  # fill value + commission
    assert float(pool.frozen_512890) == 2200.22  # half the grant (amount + fee estimate)
    h.publish_quotes(
        when=SESSION_TIME + timedelta(seconds=h.config.executor.max_order_age_s + 1), **{"512890_SH": 1.2}
    )
    h.turn(2)
    assert h.result("p1").status is ResultStatus.CANCELLED
    pool = h.pool()
    assert float(pool.frozen_512890) == 0
    assert float(pool.used_512890) == 2200.22
    h.executor.stop()


def test_t_plus_one_blocks_selling_todays_buy(tmp_path):
    h = Harness(tmp_path, paper_config(initial_positions={}))
    h.send(signal_id="b1", shares=1000)
    h.turn()
    h.send(signal_id="s1", direction="SELL", shares=1000, price="1.099", release_client_order_ids=["b1"])
    h.turn()
    assert h.result("s1").reason is Reason.NOT_SELLABLE_T1
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1))
    h.send(signal_id="s2", direction="SELL", shares=1000, price="1.099", release_client_order_ids=["b1"])
    h.turn()
    assert h.result("s2").status is ResultStatus.FILLED
    h.executor.stop()


def test_restart_replays_the_journal_to_the_same_state(h):
    h.send(signal_id="b1", shares=1000)
    h.send(signal_id="b2", shares=1000, price="1.000")
    h.send(signal_id="bad", shares=7)
    h.turn()
    before_pool = h.pool().model_dump(exclude={"seq", "updated_at"})
    before_results = {k: v.status for k, v in h.results().results.items()}
    h.restart()
    h.turn()
    assert h.pool().model_dump(exclude={"seq", "updated_at"}) == before_pool
    assert {k: v.status for k, v in h.results().results.items()} == before_results
    assert len(h.placed()) == 2


def test_crash_between_intent_and_send_is_never_resent(h):
    # Simulate the crash: the intent is journaled, the broker never saw the order.
    h.send(signal_id="b1", shares=1000)
    real_send = h.executor._send
    h.executor._send = lambda coid: None
    h.turn()
    h.executor._send = real_send
    h.restart()
    h.turn()
    assert h.result("b1").status is ResultStatus.ACCEPTED  # unknown until the spaced lookups agree
    for _ in range(2):
        h.clock.advance(h.config.executor.unknown_outcome_lookup_s / 3 + 0.1)
        h.turn()
    assert h.placed() == []
    result = h.result("b1")
    assert result.status is ResultStatus.REJECTED
    assert h.executor.state.vault.committed() == 0


def test_crash_after_send_before_the_sent_record_adopts_the_live_order(h):
    h.send(signal_id="b1", shares=1000)
    real_commit = h.executor._commit

    def drop_sent(record):
        if record["k"] == "sent":
            raise KeyboardInterrupt  # the process dies right after the broker call
        real_commit(record)

    h.executor._commit = drop_sent
    with pytest.raises(KeyboardInterrupt):
        h.turn()
    h.restart()
    h.turn(2)
    assert len(h.placed()) == 1
    assert h.result("b1").status is ResultStatus.FILLED
    assert float(h.pool().used_512890) == 1100.11


def test_second_executor_on_the_same_state_dir_refuses(h):
    from windows.executor import AlreadyRunning

    other = h.make_executor()
    with pytest.raises(AlreadyRunning, match="already running"):
        other.start()


def test_the_order_rate_limit_defers_signals_instead_of_dropping_them(tmp_path):
    from tests.kit.harness import paper_config

    config = paper_config().model_copy(update={"executor": paper_config().executor.model_copy(
        update={"max_orders_per_s": 1.0, "order_burst": 2})})
    h = Harness(tmp_path, config)
    for i in range(5):
        h.send(signal_id=f"r{i}", shares=100)
    h.turn()
    assert len(h.placed()) == 2  # the burst
    assert h.executor.stats.rate_limited == 1
    assert "r4" not in h.results().results  # not consumed yet, not rejected
    h.clock.advance(3)  # the bucket refills on the wall clock
    h.turn()
    h.clock.advance(3)
    h.turn()
    assert len(h.placed()) == 5
    assert all(h.result(f"r{i}").status is ResultStatus.FILLED for i in range(5))
    h.executor.stop()


def test_unknown_outcome_is_looked_up_spaced_in_time_before_it_counts_as_lost(h):
    from windows.brokers.protocol import TemporaryBrokerError

    def timeout(request):
        raise TemporaryBrokerError("no answer within the deadline")

    h.broker.place_limit_order = timeout
    h.send(signal_id="u1", shares=1000)
    h.turn(5)
    assert h.result("u1").status is ResultStatus.ACCEPTED  # unknown: neither sent nor lost yet
    assert float(h.pool().frozen_512890) == 1100.11  # the money stays frozen while we do not know
    for _ in range(3):
        h.clock.advance(h.config.executor.unknown_outcome_lookup_s / 3 + 0.1)
        h.turn()
    result = h.result("u1")
    assert result.status is ResultStatus.REJECTED and "never reached the venue" in result.message
    assert float(h.pool().frozen_512890) == 0
    assert h.placed() == []


def test_an_order_left_open_at_the_close_is_settled_when_the_venue_no_longer_lists_it(h):
    h.send(signal_id="rest", price="1.000", shares=1000)
    h.turn()
    assert h.result("rest").status is ResultStatus.SENT
    del h.broker.book.orders["rest"]  # QMT lists only today's orders, and sends nothing overnight
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1))
    for _ in range(4):
        h.clock.advance(h.config.executor.unknown_outcome_lookup_s / 3 + 0.1)
        h.turn()
    result = h.result("rest")
    assert result.status is ResultStatus.CANCELLED and result.reason is Reason.ORDER_EXPIRED
    assert float(h.pool().frozen_512890) == 0


def test_the_paper_venue_ends_open_orders_at_the_close_itself(h):
    h.send(signal_id="rest", price="1.000", shares=1000)
    h.turn()
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1))
    h.turn()
    assert h.result("rest").status is ResultStatus.CANCELLED
    assert float(h.pool().frozen_512890) == 0
