"""The same barrier for every reader: one bounded JSON loader (``shared_schema.safe_json``) used by the
executor, the node, ``gridbridge signal`` and the dashboard; and ``gridbridge signal`` sets an expiry."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from shared_schema.atomic_io import atomic_write_model, read_seq
from shared_schema.models import POOL_FILE, QUOTE_FILE, SIGNAL_FILE, Signal
from shared_schema.safe_json import JSON_TOO_DEEP, JSON_TOO_LARGE, JsonRefused, safe_loads
from shared_schema.signal_io import read_raw_entries
from tests.kit.stubs import SESSION_TIME, make_quote_file

DEEP = b"[" * 200_000


# ---------------------------------------------------------------------------------------------- safe_loads


def test_safe_loads_refuses_deep_nesting_as_a_value_error_not_a_recursion_error():
    with pytest.raises(JsonRefused) as info:
        safe_loads(DEEP)
    assert info.value.code == JSON_TOO_DEEP and isinstance(info.value, ValueError)
    with pytest.raises(JsonRefused, match="deeper"):
        safe_loads(b"[" * 65 + b"]" * 65)  # parses, but deeper than the bound
    assert safe_loads(b"[" * 64 + b"]" * 64) is not None


def test_safe_loads_refuses_a_document_over_the_size_bound():
    with pytest.raises(JsonRefused) as info:
        safe_loads(b"[" + b"1," * 600 + b"1]", max_bytes=1000)
    assert info.value.code == JSON_TOO_LARGE


def test_safe_loads_keeps_numbers_a_float_cannot_hold_exactly():
    doc = safe_loads(b'{"p": 1.10000000000000000000000000000000001, "q": 1.1, "n": ' + b"7" * 5000 + b', "i": 300}')
    assert doc["p"] == Decimal("1.10000000000000000000000000000000001")
    assert doc["q"] == 1.1 and isinstance(doc["q"], float)
    assert isinstance(doc["n"], Decimal)  # json.loads raises ValueError on a 5,000-digit integer
    assert doc["i"] == 300 and isinstance(doc["i"], int)


def test_the_signal_file_reader_refuses_the_deep_pill_cleanly():
    with pytest.raises(ValueError):
        read_raw_entries(DEEP)


# ------------------------------------------------------------------------------------------------ readers


def test_read_seq_survives_a_deep_file(tmp_path):
    """The executor and the producer read the seq of their own files at start: a junk file may not stop them."""
    (tmp_path / POOL_FILE).write_bytes(DEEP)
    assert read_seq(tmp_path / POOL_FILE) == 0


def test_gridbridge_signal_refuses_a_deep_signal_file_with_a_message(tmp_path, capsys):
    from gridbridge.cli import main

    (tmp_path / SIGNAL_FILE).write_bytes(DEEP)
    code = main(["signal", "--shared-dir", str(tmp_path), "--code", "512890.SH", "--direction", "BUY",
                 "--price", "1.100", "--shares", "100"])
    assert code == 2
    assert "deeper" in capsys.readouterr().err
    assert (tmp_path / SIGNAL_FILE).read_bytes() == DEEP  # never overwritten blindly


def test_the_dashboard_readers_survive_deep_files(tmp_path):
    from mac.dashboard.control import ACK_DIR, read_acks
    from mac.dashboard.parsing import parse_file

    (tmp_path / ACK_DIR).mkdir()
    (tmp_path / ACK_DIR / "c1.json").write_bytes(DEEP)
    acks = read_acks(tmp_path)
    assert acks[0]["accepted"] is None and "deeper" in acks[0]["reason"]
    for kind, name in (("signal", SIGNAL_FILE), ("node", "node_512890.json"), ("metrics", "metrics.json")):
        (tmp_path / name).write_bytes(DEEP)
        parsed = parse_file(kind, tmp_path / name)
        assert parsed.value is None and "deeper" in parsed.error, (kind, parsed.error)


def test_the_node_refuses_a_deep_state_file_with_a_clear_error(tmp_path):
    from mac.node import NodeSettings, StrategyNode, state_file
    from settings.grid import default_params

    state_file(tmp_path, "512890.SH").write_bytes(DEEP)
    with pytest.raises(RuntimeError, match="unreadable.*deeper"):
        StrategyNode(tmp_path, {"512890.SH": default_params("512890.SH")}, NodeSettings(), watch_mode="poll")


# ---------------------------------------------------------------------------------- gridbridge signal expiry


def _signal_in_file(tmp_path) -> Signal:
    entries = json.loads((tmp_path / SIGNAL_FILE).read_text())["signals"]
    return Signal.model_validate(entries[-1])


def test_gridbridge_signal_sets_an_expiry_by_default(tmp_path):
    from gridbridge.cli import main

    atomic_write_model(tmp_path / QUOTE_FILE, make_quote_file(when=SESSION_TIME))
    args = ["signal", "--shared-dir", str(tmp_path), "--code", "512890.SH", "--direction", "BUY",
            "--price", "1.100", "--shares", "100"]
    assert main(args) == 0
    signal = _signal_in_file(tmp_path)
    assert signal.created_at == SESSION_TIME
    assert signal.expires_at == SESSION_TIME + timedelta(seconds=120)
    assert main([*args, "--expires-in", "30", "--signal-id", "M2"]) == 0
    assert _signal_in_file(tmp_path).expires_at == SESSION_TIME + timedelta(seconds=30)


def test_gridbridge_signal_refuses_an_expiry_that_is_not_positive(tmp_path, capsys):
    from gridbridge.cli import main

    args = ["signal", "--shared-dir", str(tmp_path), "--code", "512890.SH", "--direction", "BUY",
            "--price", "1.100", "--shares", "100", "--expires-in", "0"]
    assert main(args) == 2
    assert "expires-in" in capsys.readouterr().err
    assert not (tmp_path / SIGNAL_FILE).exists()


def test_gridbridge_signal_takes_its_default_expiry_from_the_config(tmp_path):
    from gridbridge.cli import main

    atomic_write_model(tmp_path / QUOTE_FILE, make_quote_file(when=SESSION_TIME))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"executor": {"max_signal_age_s": 600}}))
    assert main(["signal", "--shared-dir", str(tmp_path), "--config", str(config), "--code", "512890.SH",
                 "--direction", "BUY", "--price", "1.100", "--shares", "100"]) == 0
    assert _signal_in_file(tmp_path).expires_at == SESSION_TIME + timedelta(seconds=600)
