"""End to end: ``hedge run`` through the real ccxt.binance (portfolio margin) against the local exchange."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from crypto.fakex.server import FakeExchange
from crypto.hedge import cli
from crypto.hedge.rules import HedgeFilters
from crypto.hedge.snapshot import restore_snapshot

D = Decimal


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc = cli.main(["run", "--venue", "binance-pm-fake", "--json", *args])
    out = capsys.readouterr().out
    return rc, json.loads(out)


@pytest.mark.parametrize("exec_mode", ["MT", "MM"])
def test_open_then_close_through_ccxt(exec_mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, opened = run(capsys, "--mode", "open", "--exec", exec_mode, "--qty", "1.2", "--state-dir", str(tmp_path))
    assert rc == 0 and opened["outcome"] == "done"
    assert D(opened["filled"]) == D("1.2") and D(opened["hedged"]) == -D(opened["um_position"])
    # The buy paid its fee in BTC: the hedge covers the coins held (1.2 less the fee), to within the bound.
    assert D(opened["spot"]) < D("1.2")
    assert 0 <= D(opened["spot"]) - D(opened["hedged"]) < D(opened["residual_bound"])
    assert D(opened["um_from_orders"]) == D(opened["um_position"])  # the helper agrees with the venue
    assert len(opened["hedge_orders"]) >= 2  # the margin order filled in pieces, hedged fill by fill
    kinds = {o["kind"] for o in opened["hedge_orders"]}
    assert kinds == ({"market"} if exec_mode == "MT" else {"gtx"})
    rc, closed = run(capsys, "--mode", "close", "--exec", exec_mode, "--state-dir", str(tmp_path))
    assert rc == 0 and closed["outcome"] == "done" and closed["audit"]["HEDGE_CLOSE_PLANNED"] == 1
    assert D(closed["um_position"]) == 0 and D(closed["spot"]) == 0  # both legs flat, no flip
    assert all(re.fullmatch(r"hedge1[a-z0-9]{4}c\d+", o["client_order_id"]) for o in closed["hedge_orders"])


def test_mm_crossing_gtx_repriced_then_market_with_channel_down(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, res = run(capsys, "--mode", "open", "--exec", "MM", "--qty", "0.7", "--cross-first", "10",
                  "--max-reprices", "2", "--channel-down", "--state-dir", str(tmp_path))
    assert rc == 0 and res["outcome"] == "done"
    assert res["audit"]["HEDGE_REPRICED"] >= 2 and res["audit"]["HEDGE_MARKET_FALLBACK"] >= 1
    assert res["audit"]["HEDGE_DIRECT_SEND"] == res["direct_sends"] == len(res["hedge_orders"])
    rejected = [o for o in res["hedge_orders"] if o["state"] == "REJECTED"]
    assert rejected and all(o["reason"] == "POST_ONLY_WOULD_TAKE" for o in rejected)
    assert D(res["hedged"]) == -D(res["um_position"])
    assert 0 <= D(res["spot"]) - D(res["hedged"]) < D(res["residual_bound"])  # net of the BTC fee


def test_restart_resumes_without_a_second_margin_order_or_hedge(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # MM margin legs rest and fill over several steps: stop after 2 steps, then run again on the same folder.
    rc, first = run(capsys, "--mode", "open", "--exec", "MT", "--qty", "1.2", "--max-steps", "1",
                    "--state-dir", str(tmp_path))
    assert rc == 4 and first["outcome"] == "timeout" and D(first["filled"]) < D("1.2")
    assert D(first["hedged"]) == -D(first["um_position"])
    rc, second = run(capsys, "--mode", "open", "--exec", "MT", "--qty", "1.2", "--state-dir", str(tmp_path))
    assert rc == 0 and second["restored"] and second["audit"]["HEDGE_RESTORED"] == 1
    assert D(second["hedged"]) == -D(second["um_position"])
    assert D(second["filled"]) == D("1.2") and 0 <= D(second["spot"]) - D(second["hedged"]) < D(second["residual_bound"])
    snapshot = (tmp_path / "hedge1-open.json").read_text()
    book, _ = restore_snapshot(snapshot, HedgeFilters(D("0.001"), D("0.001"), D("100")))
    [margin_id] = book.margin_order_ids
    assert re.fullmatch(r"hedge1[a-z0-9]{4}m0", margin_id)  # the run tag of this book, kept across the restart
    with FakeExchange.start(state_file=tmp_path / "fakex-state.json", dialects=("binance",)) as fx:
        margin_orders = [o for o in fx.exchange.orders("BTC-USDT") if o.cl_ord_id == margin_id]
        assert len(margin_orders) == 1


def test_close_with_nothing_open_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, res = run(capsys, "--mode", "close", "--exec", "MT", "--state-dir", str(tmp_path))
    assert rc == 3 and res["outcome"] == "refused:NOTHING_TO_CLOSE"


def test_margin_order_refused_by_the_venue_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, res = run(capsys, "--mode", "open", "--exec", "MT", "--qty", "50", "--state-dir", str(tmp_path))
    assert rc == 3 and res["outcome"] == "refused:MARGIN_INSUFFICIENT_FUNDS"  # 50 BTC > 200,000 USDT
    assert res["hedge_orders"] == [] and res["audit"]["ORDER_REJECTED"] == 1
