"""``gridbridge dashboard --carry-dir/--pm-dir`` reaches the page; any bytes in a status file give a page (the
last good view, or a plain error), never an exception."""

from __future__ import annotations

import argparse
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.carry.status_file import CARRY_STATUS_FILE, CarryStatusReader
from crypto.pm.status_file import PM_STATUS_FILE, PmStatusReader
from mac.dashboard.crypto_view_models import carry_page, pm_page
from mac.dashboard.launch import cmd_dashboard, register, streamlit_command
from shared_schema.atomic_io import ReadStatus, atomic_write_model
from tests.mac.dashboard_crypto import fixtures as fx


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    return p.parse_args(["dashboard", *argv])


def test_crypto_folders_travel_to_the_page_as_environment(tmp_path: Path) -> None:
    args = parse(["--carry-dir", str(tmp_path / "carry"), "--pm-dir", str(tmp_path / "pm")])
    _, env = streamlit_command(args)
    assert env["GRIDBRIDGE_DASHBOARD_CARRY_DIR"] == str((tmp_path / "carry").resolve())
    assert env["GRIDBRIDGE_DASHBOARD_PM_DIR"] == str((tmp_path / "pm").resolve())
    assert "GRIDBRIDGE_DASHBOARD_SHARED_DIR" not in env


def test_a_crypto_folder_alone_starts_the_dashboard_and_none_at_all_is_refused(tmp_path, capsys,
                                                                              monkeypatch) -> None:
    import mac.dashboard.launch as launch

    calls: list[dict[str, str]] = []
    monkeypatch.setattr(launch.subprocess, "call", lambda argv, env: calls.append(env) or 0)
    assert cmd_dashboard(parse(["--carry-dir", str(tmp_path)])) == 0
    assert calls[0]["GRIDBRIDGE_DASHBOARD_CARRY_DIR"] == str(tmp_path.resolve())
    assert cmd_dashboard(parse([])) == 2
    assert "--carry-dir DIR, --pm-dir DIR" in capsys.readouterr().err
    assert len(calls) == 1


GOOD_CARRY = fx.carry_status()
GOOD_PM = fx.pm_status()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=400),
                      st.just(GOOD_CARRY.model_dump_json().encode()[:-1]),
                      st.just(GOOD_PM.model_dump_json().encode().replace(b'"seq":4', b'"seq":-1.5')),
                      st.just(b"[" * 100_000)))
def test_any_bytes_give_a_page_and_keep_the_last_good_view(tmp_path: Path, data: bytes) -> None:
    for name, good, reader_of, page_of in ((CARRY_STATUS_FILE, GOOD_CARRY, CarryStatusReader, carry_page),
                                           (PM_STATUS_FILE, GOOD_PM, PmStatusReader, pm_page)):
        reader = reader_of(tmp_path)
        atomic_write_model(tmp_path / name, good)
        assert reader.read().model == good
        (tmp_path / name).write_bytes(data)
        outcome = reader.read()
        view = page_of(outcome, fx.NOW, str(tmp_path))
        assert view.status == good
        assert outcome.status == ReadStatus.INVALID or data == good.model_dump_json(indent=1).encode()
        assert [b.level for b in view.banners] == ["warning"]
