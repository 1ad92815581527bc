"""Attacks on the crypto commands and the engine's state folder (two of a kind, the filesystem, the
operator): each was a test first, and failed before its fix."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from crypto.e2e import cli as e2e_cli
from crypto.e2e import close_all_cli
from crypto.execution.config import ExecConfig
from crypto.execution.engine import JOURNAL_FILE, LOCK_FILE, AlreadyRunning, CryptoEngine, StateDirError
from crypto.execution.statedir import claim
from shared_schema.clock import ManualClock
from tests.crypto.execution.memvenue import MemVenue

T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


def engine(state: Path) -> CryptoEngine:
    return CryptoEngine(MemVenue(), state, ExecConfig(), clock=ManualClock(T0), fsync=False)


def test_a_second_engine_on_the_folder_is_refused_also_by_another_path(tmp_path: Path) -> None:
    first = engine(tmp_path / "state")
    first.start()
    (tmp_path / "other").mkdir()
    for path in (tmp_path / "state", tmp_path / "other" / ".." / "state"):
        with pytest.raises(AlreadyRunning, match=r"pid \d+"):
            engine(path).start()
    first.close()
    second = engine(tmp_path / "other" / ".." / "state")
    second.start()  # the first has let go: the folder is free
    second.close()


def test_state_folder_that_is_a_link_is_refused_and_nothing_written_through_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(StateDirError, match="symbolic link"):
        engine(tmp_path / "link").start()
    assert list(real.iterdir()) == []


def test_a_file_where_the_folder_should_be_or_a_folder_where_the_journal_should_be(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a folder")
    with pytest.raises(StateDirError, match="not a folder"):
        engine(tmp_path / "state").start()
    (tmp_path / "s2" / JOURNAL_FILE).mkdir(parents=True)
    with pytest.raises(StateDirError, match="folder where the engine keeps a file"):
        engine(tmp_path / "s2").start()
    (tmp_path / "s3").mkdir()
    (tmp_path / "elsewhere.txt").write_text("precious")
    (tmp_path / "s3" / JOURNAL_FILE).symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(StateDirError, match="symbolic link"):
        engine(tmp_path / "s3").start()
    assert (tmp_path / "elsewhere.txt").read_text() == "precious"


def test_e2e_twice_on_one_folder_the_second_refuses_with_its_own_code_and_deletes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report, state = tmp_path / "report", tmp_path / "state"
    state.mkdir()
    (state / JOURNAL_FILE).write_text('{"k":"halt","on":false,"t":0}\n')
    held = claim(state, e2e_cli.RUN_LOCK)  # a first run holds the state folder
    try:
        assert e2e_cli.main(["--report", str(report), "--state", str(state), "--quiet"]) == e2e_cli.EXIT_BUSY
    finally:
        held.release()
    assert "one checklist run per folder" in capsys.readouterr().err
    assert (state / JOURNAL_FILE).exists()  # before: the second run emptied the first one's folder
    held = claim(report, e2e_cli.RUN_LOCK)  # a first run holds the report folder (default state inside)
    try:
        assert e2e_cli.main(["--report", str(report), "--quiet"]) == e2e_cli.EXIT_BUSY
    finally:
        held.release()


def test_e2e_refuses_to_empty_a_folder_an_engine_holds(tmp_path: Path) -> None:
    state = tmp_path / "state"
    eng = engine(state)
    eng.start()  # say, close-all at work on that folder
    try:
        code = e2e_cli.main(["--report", str(tmp_path / "r"), "--state", str(state), "--quiet"])
        assert code == e2e_cli.EXIT_BUSY
        assert (state / JOURNAL_FILE).exists() and (state / LOCK_FILE).exists()
    finally:
        eng.close()


def test_e2e_never_empties_through_a_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / JOURNAL_FILE).write_text("{}\n")
    (target / "audit.jsonl").write_text("{}\n")
    (tmp_path / "link").symlink_to(target)
    assert e2e_cli.main(["--report", str(tmp_path / "r"), "--state", str(tmp_path / "link"), "--quiet"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["audit.jsonl", JOURNAL_FILE]


def test_close_all_on_a_held_folder_exits_3_and_bad_credentials_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    eng = engine(tmp_path / "state")
    eng.start()
    try:
        monkeypatch.setattr(close_all_cli, "venue_from_args", lambda _a: MemVenue())
        assert close_all_cli.main(["--state", str(tmp_path / "state"), "--url", "http://127.0.0.1:9"]) == 3
        assert "control reduce" in capsys.readouterr().err
    finally:
        eng.close()
    monkeypatch.undo()
    bad = tmp_path / "creds.json"
    bad.write_text('{"api_key": "k"}')  # the secret is missing
    code = close_all_cli.main(["--state", str(tmp_path / "s2"), "--url", "http://127.0.0.1:9",
                               "--credentials", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "secret" in err and "k\"" not in err
    assert not os.path.exists(tmp_path / "s2" / JOURNAL_FILE)


def test_status_of_a_garbled_or_huge_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crypto.e2e import status_cli
    from crypto.execution.engine import STATUS_FILE

    (tmp_path / STATUS_FILE).write_text("[1, 2]")  # JSON, but not the engine's object (before: AttributeError)
    assert status_cli.main(["--state", str(tmp_path)]) == 2
    with open(tmp_path / STATUS_FILE, "wb") as f:
        f.truncate(status_cli.MAX_STATUS_BYTES + 1)  # sparse: a huge file without the disk
    assert status_cli.main(["--state", str(tmp_path)]) == 2
    assert "not the engine's status" in capsys.readouterr().err


def test_status_shows_the_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from crypto.e2e import status_cli
    from crypto.trend.strategy import TargetPosition

    venue = MemVenue()
    eng = CryptoEngine(venue, tmp_path, ExecConfig(limit_offset_bps=Decimal("-5"), min_interval_ms=0),
                       clock=ManualClock(T0), fsync=False)
    eng.start()
    eng.cycle({"BTC/USDT:USDT": TargetPosition("BTC/USDT:USDT", Decimal("0.1"))})
    eng.cycle()
    eng.close()
    assert status_cli.main(["--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ledger     BTC/USDT:USDT 0.100 @ 50000.1 realised 0" in out and "fees 2.50000500 funding 0" in out


@pytest.mark.parametrize("argv", [["--orders", "10000000000"], ["--orders", "0"], ["--bars", "-1"],
                                  ["--orders", "1e30"], ["--orders", "NaN"]])
def test_e2e_refuses_an_extreme_count_before_touching_anything(tmp_path: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        e2e_cli.main(["--report", str(tmp_path / "r"), *argv])
    assert exit_.value.code == 2 and not (tmp_path / "r").exists()


def test_a_damaged_journal_stops_the_start_loudly_and_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    body = b'{"k":"halt","on":false,"t":0}\n{bit flip\n{"k":"halt","on":true,"t":1}\n'
    (state / JOURNAL_FILE).write_bytes(body)
    with pytest.raises(StateDirError, match="damaged journal"):
        engine(state).start()
    monkeypatch.setattr(close_all_cli, "venue_from_args", lambda _a: MemVenue())
    assert close_all_cli.main(["--state", str(state), "--url", "http://127.0.0.1:9"]) == 2
    assert "garbled record" in capsys.readouterr().err
    assert (state / JOURNAL_FILE).read_bytes() == body  # before: cut after the bad line, the halt record lost


@pytest.mark.parametrize("symbols", ["BTC/USDT:USDT,BTC/USDT:USDT", "", "NOPE/USDT:USDT"])
def test_close_all_with_bad_symbols_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, symbols: str) -> None:
    monkeypatch.setattr(close_all_cli, "venue_from_args", lambda _a: MemVenue())
    assert close_all_cli.main(["--state", str(tmp_path / "s"), "--url", "http://127.0.0.1:9",
                               "--symbols", symbols]) == 2
