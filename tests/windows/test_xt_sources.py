"""The QMT producer sources and ``fetch-bars`` on the fake terminal's synthetic market."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from gridbridge.cli import main
from shared_schema.clock import ManualClock
from shared_schema.models import QUOTE_FILE, QuoteFile
from tests.kit.fake_xtquant import FakeTerminal, xtdata
from tests.kit.stubs import SESSION_TIME
from tests.kit.venues import ACCOUNT, FAKE_MODULE
from windows.brokers.xt_session import load_xt_modules
from windows.brokers.xtquant_broker import XtBrokerSettings
from windows.producer import Producer
from windows.xt_sources import XtDataQuoteSource, XtTraderAccountSource

CODES = ["159201.SZ", "512890.SH"]
SYNTH = {"codes": CODES, "days": 2, "seed": 5, "start": "2026-01-05"}


@pytest.fixture
def terminal(tmp_path):
    term = FakeTerminal.create(tmp_path / "qmt", positions={"512890.SH": 5000}, account_id=ACCOUNT, synth=SYNTH)
    xtdata.set_terminal_dir(term.folder)
    yield term
    xtdata.set_terminal_dir(None)


def test_quote_source_publishes_ticks_and_completed_bars(terminal):
    for _ in range(5):
        now = terminal.replay_step()
    source = XtDataQuoteSource(xtdata, CODES, bars_count=3)

    quotes = source.next_quotes()

    q = quotes["512890.SH"]
    assert q.quote_time == now
    assert [b.t for b in q.bars][-1] == int(now.timestamp() * 1000)
    assert len(q.bars) == 3
    assert q.ask1 - q.bid1 == pytest.approx(0.001)
    assert ("subscribe_quote", ("512890.SH", "1m", 3)) in xtdata.calls


def test_quote_source_keeps_the_last_snapshot_when_xtdata_fails(terminal):
    terminal.replay_step()
    source = XtDataQuoteSource(xtdata, CODES)
    first = source.next_quotes()

    class Broken:
        def subscribe_quote(self, *a, **k):
            return 1

        def get_full_tick(self, codes):
            raise ConnectionError("MiniQMT restarting")

    source.xtdata = Broken()
    assert source.next_quotes() == first


def test_account_source_reads_positions_and_cash_and_survives_a_drop(terminal):
    clock = ManualClock(SESSION_TIME)
    source = XtTraderAccountSource(load_xt_modules(FAKE_MODULE), XtBrokerSettings(
        str(terminal.folder), ACCOUNT, reconnect_backoff_s=(1.0,)), clock)
    source.start()
    try:
        positions, account, ok = source.read_account()
        assert ok and positions["512890.SH"].can_use_volume == 5000 and account.cash == 1_000_000
        terminal.drop_connections()
        source.conn.trader.wait_delivered()
        assert source.read_account()[2] is False
        clock.advance(1.0)
        assert source.read_account()[2] is True
    finally:
        source.stop()


def test_producer_on_xt_sources_marks_the_file_source(terminal, tmp_path):
    terminal.replay_step()
    source = XtTraderAccountSource(load_xt_modules(FAKE_MODULE), XtBrokerSettings(str(terminal.folder), ACCOUNT))
    source.start()
    try:
        producer = Producer(tmp_path / "shared", XtDataQuoteSource(xtdata, CODES), source, source="xtquant")
        producer.publish_once()
    finally:
        source.stop()
    model = QuoteFile.model_validate_json((tmp_path / "shared" / QUOTE_FILE).read_bytes())
    assert model.source == "xtquant" and set(model.quotes) == set(CODES) and model.positions_ok


def test_fetch_bars_appends_only_new_bars(terminal, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRIDBRIDGE_XTQUANT_MODULE", FAKE_MODULE)
    out = tmp_path / "bars" / "512890.csv"
    args = ["fetch-bars", "--code", "512890.SH", "--period", "1m", "--start", "20260105", "--out", str(out)]

    assert main([*args, "--end", "20260105"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*args, "--end", "20260106"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert main([*args, "--end", "20260106"]) == 0
    third = json.loads(capsys.readouterr().out)

    frame = pd.read_csv(out)
    assert (first["appended"], second["appended"], third["appended"]) == (240, 240, 0)
    assert list(frame.columns) == ["time", "open", "high", "low", "close", "volume"]
    assert frame["time"].is_monotonic_increasing and frame["time"].is_unique and len(frame) == 480
    assert pd.Timestamp(int(frame["time"].iloc[0]), unit="ms", tz="Asia/Shanghai") == pd.Timestamp(
        "2026-01-05 09:31", tz="Asia/Shanghai")
    assert timedelta(milliseconds=int(frame["time"].iloc[-1] - frame["time"].iloc[0])) > timedelta(days=1)


def test_producer_xtquant_off_windows_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GRIDBRIDGE_XTQUANT_MODULE", raising=False)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"xtquant": {"userdata_path": str(tmp_path), "account_id": ACCOUNT}}))

    code = main(["producer", "--broker", "xtquant", "--shared-dir", str(tmp_path / "s"), "--config", str(cfg)])

    assert code == 2 and "Windows" in capsys.readouterr().err
