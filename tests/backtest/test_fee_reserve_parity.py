"""The backtest asks the vault for a BUY exactly as the executor does: amount plus the configured fee
estimate (``windows.pipeline.fee_model``), so a BUY at the pool edge gets the same verdict in both."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtest.engine import make_vault, run_realistic
from backtest.synth import generate
from settings.grid import default_params
from shared_schema.models import ResultStatus
from tests.kit.harness import Harness, paper_config
from windows.pipeline import fee_model
from windows.vault import GlobalVault

CODE = "512890.SH"


class FirstBuy(GlobalVault):
    """The real vault, remembering the first BUY it was asked for and its verdict."""

    def __init__(self, limits):
        super().__init__(limits)
        self.first: tuple[int, int, str, int | None, int] | None = None
        self.verdict: str | None = None

    def request_allocation(self, symbol, amount_fen, layer_index, client_order_id, requested_shares=None,
                           fee_fen=0):
        decision = super().request_allocation(symbol, amount_fen, layer_index, client_order_id, requested_shares,
                                              fee_fen)
        if self.first is None:
            self.first = (amount_fen, layer_index, client_order_id, requested_shares, fee_fen)
            self.verdict = decision.value
        return decision


@pytest.fixture(scope="module")
def bars():
    return {CODE: generate(CODE, 5, seed=7)}


def _backtest_first_buy(bars, pool: Decimal | None = None):
    params = default_params(CODE)
    if pool is not None:
        params = params.model_copy(update={"physical_pool": pool, "reserve_ratio": Decimal(0)})
    vault = FirstBuy(make_vault({CODE: params}).limits)
    res = run_realistic(bars, {CODE: params}, vault=vault, risk=None)
    assert vault.first is not None
    first = next(s for s in res.symbols[CODE].signals if s.client_order_id == vault.first[2])
    return vault, first


def _executor_verdict(tmp_path, signal, pool: Decimal) -> str:
    cfg = paper_config()
    cfg = cfg.model_copy(update={"vault": cfg.vault.model_copy(update={"physical_pool": pool,
                                                                       "reserve_ratio": Decimal(0)})})
    h = Harness(tmp_path, cfg)
    h.prev_close[CODE] = float(signal.price)
    h.publish_quotes(**{CODE.replace(".", "_"): float(signal.price)})
    h.send(signal_id="edge", code=CODE, price=str(signal.price), shares=signal.shares,
           amount=str(Decimal(signal.amount_fen) / 100), layer_index=signal.layer_index)
    h.turn()
    result = h.result("edge")
    h.executor.stop()
    return "APPROVED" if result.status is not ResultStatus.REJECTED else result.detail


def test_the_backtest_reserves_the_executors_fee_estimate(bars):
    vault, first = _backtest_first_buy(bars)
    expected = fee_model(paper_config()).estimate_fen(first.amount_fen)
    assert expected > 0
    assert vault.first[4] == expected


@pytest.mark.parametrize("fee_room", [False, True])
def test_a_buy_at_the_pool_edge_gets_the_same_verdict_in_backtest_and_executor(bars, tmp_path, fee_room):
    _, first = _backtest_first_buy(bars)
    fee = fee_model(paper_config()).estimate_fen(first.amount_fen)
    # The pool holds exactly the BUY's amount (no room for its fee), or the amount and the fee.
    pool = Decimal(first.amount_fen + (fee if fee_room else 0)) / 100
    vault, edge = _backtest_first_buy(bars, pool)
    assert (edge.amount_fen, edge.layer_index) == (first.amount_fen, first.layer_index)
    executor = _executor_verdict(tmp_path, edge, pool)
    assert vault.verdict == executor
    assert executor == ("APPROVED" if fee_room else "POOL_EXHAUSTED")
