"""The CLI registers every command one way (``gridbridge.cli.COMMANDS``) and loads a command's module only
when that command runs."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from gridbridge.cli import COMMANDS, build_parser, command_named, main
from tests.kit.procs import ROOT, env

HEAVY = ("pandas", "numpy", "plotly", "streamlit", "xtquant", "windows.executor", "backtest.engine", "mac.node")


def _loaded_after(*argv: str) -> set[str]:
    """The heavy modules a fresh interpreter holds after ``gridbridge argv`` (run in-process, then listed)."""
    script = (
        "import sys\nfrom gridbridge.cli import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        f"import json\nprint('LOADED=' + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), cwd=ROOT,
                         timeout=120).stdout
    line = next(x for x in out.splitlines() if x.startswith("LOADED="))
    return set(json.loads(line.removeprefix("LOADED=")))


def test_help_lists_every_command_with_its_line():
    out = subprocess.run([sys.executable, "-m", "gridbridge.cli", "--help"], capture_output=True, text=True,
                         env=env(), cwd=ROOT, timeout=60)
    assert out.returncode == 0
    for name, command in COMMANDS.items():
        assert name in out.stdout
        assert command.help.split()[0] in out.stdout


def test_help_and_status_load_no_heavy_package(tmp_path):
    assert _loaded_after("--help") == set()
    assert _loaded_after("status", "--shared-dir", str(tmp_path)) == set()


def test_a_heavy_command_loads_its_packages_only_when_it_runs(tmp_path):
    assert {"pandas", "numpy"} <= _loaded_after("data", "synth", "--code", "159201.SZ", "--days", "1",
                                                "--out", str(tmp_path / "bars.csv"))


@pytest.mark.parametrize("name", sorted(n for n, c in COMMANDS.items() if not c.owns_argv))
def test_each_module_registers_the_commands_the_table_gives_it(name):
    parser = build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)  # every command still listed, none twice
    own = [n for n, c in COMMANDS.items() if c.module == COMMANDS[name].module]
    for n in own:
        defaults = sub.choices[n]
        # A command runs a handler; one with subcommands ("schema", "data") has them under it.
        nested = [a for a in defaults._actions if isinstance(a, argparse._SubParsersAction)]
        assert defaults.get_default("func") is not None or nested, n


def test_the_gate_gets_its_arguments_untouched(tmp_path, capsys):
    gate = importlib.import_module(COMMANDS["gate"].module)
    assert callable(gate.main)
    with pytest.raises(SystemExit):
        main(["gate", "--help"])
    assert "--audit" in capsys.readouterr().out


@pytest.mark.parametrize("argv,expected", [
    (["status", "--shared-dir", "x"], "status"),
    (["-v", "node", "--symbol", "all"], "node"),
    (["--help", "status"], None),
    ([], None),
])
def test_command_named(argv, expected):
    assert command_named(argv) == expected


def test_status_runs_through_the_table(tmp_path, capsys):
    assert main(["status", "--shared-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pool_problem"]
