"""T+1 with a base position at the executor (issue 10, item 7): can_use_volume is the only T+1 truth."""

from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness, paper_config

CODE = "512890.SH"


def test_todays_lots_sell_against_the_base_and_one_batch_never_passes_can_use_volume(tmp_path):
    h = Harness(tmp_path, paper_config(initial_positions={CODE: 1000}))  # 1,000 base shares, sellable
    h.send(signal_id="b1", shares=1000)
    h.send(signal_id="b2", shares=1000)
    h.turn()
    assert h.result("b1").status is ResultStatus.FILLED and h.result("b2").status is ResultStatus.FILLED
    # both lots were bought today: only the base's 1,000 are sellable, so one lot may go today
    h.send(signal_id="s1", direction="SELL", shares=1000, price="1.099", release_client_order_ids=["b1"])
    h.send(signal_id="s2", direction="SELL", shares=1000, price="1.099", release_client_order_ids=["b2"])
    h.turn()
    assert h.result("s1").status is ResultStatus.FILLED
    second = h.result("s2")
    assert second.reason is Reason.NOT_SELLABLE_T1 and second.detail == "ABOVE_CAN_USE_VOLUME"
    h.executor.stop()
