"""The checklist command end to end (a reduced order count; the full 500 is `gridbridge crypto e2e`), and
the status / control / close-all commands on real folders and a real local exchange."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from crypto.e2e import close_all_cli, control_cli, status_cli
from crypto.e2e.cli import main as e2e_main


@pytest.mark.slow
def test_checklist_passes_every_check_and_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = e2e_main(["--report", str(tmp_path), "--orders", "150", "--bars", "20", "--quiet"])
    report = json.loads((tmp_path / "report.json").read_text())
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["passed"]}
    assert failed == {}
    assert report["gate"]["verdict"] == "PASS", report["gate"]["fail_reasons"]
    assert code == 1 and report["verdict"] == "FAIL" and "under the floor" in report["notes"][0]  # 150 < 500
    pc = next(c for c in report["checks"] if c["name"] == "place_cancel")["figures"]
    assert pc["place_latency_ms"]["n"] >= 150 and pc["cancel_success_rate"] == 1.0
    kill = next(c for c in report["checks"] if c["name"] == "kill9_restart")["figures"]
    assert kill["exit_signal"] == 9 and kill["venue_orders_for_id"] == 1
    assert "# Crypto exchange checklist" in (tmp_path / "report.md").read_text()
    # The state folder the run leaves is what `crypto status` reads.
    assert status_cli.main(["--state", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "reconcile  clean" in out


def test_status_without_a_state_file_says_so(tmp_path: Path) -> None:
    assert status_cli.main(["--state", str(tmp_path)]) == 2


def test_control_needs_the_secret_and_waits_for_an_ack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDBRIDGE_CONTROL_SECRET", raising=False)
    assert control_cli.main(["halt", "--state", str(tmp_path)]) == 2
    monkeypatch.setenv("GRIDBRIDGE_CONTROL_SECRET", "k")
    assert control_cli.main(["unlock", "--state", str(tmp_path)]) == 2  # no symbol
    assert control_cli.main(["halt", "--state", str(tmp_path), "--wait", "0.2"]) == 3  # nobody answers
    assert len(list((tmp_path / "control").glob("*.json"))) == 1


def test_close_all_flattens_a_position_at_the_local_exchange(tmp_path: Path) -> None:
    from crypto.e2e.runtime import fake_credentials
    from crypto.fakex.server import FakeExchange
    from crypto.venue.factory import make_venue
    from crypto.venue.types import OrderRequest

    fx = FakeExchange.start(seed=3, balances={"trading": {"USDT": Decimal(100_000)}})
    try:
        venue = make_venue("okx-fake", fx.url, fake_credentials())  # type: ignore[arg-type]
        venue.set_leverage("BTC/USDT:USDT", Decimal(2), "isolated")
        venue.place_order(OrderRequest("BTC/USDT:USDT", "buy", Decimal("0.05"), "market", "seed1",
                                       margin_mode="isolated"))
        assert close_all_cli.main(["--state", str(tmp_path), "--url", fx.url]) == 0
        assert all(p.qty == 0 for p in venue.positions())
    finally:
        fx.stop()
