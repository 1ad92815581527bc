"""Imports run down the layers, never up (docs/architecture.md).

    5  gridbridge                         the CLI and the whole-system jobs (dry run, deploy)
    4  mac.node  mac.dashboard  backtest  processes: each stands alone, none imports another
    3  mac.grid  windows  crypto          a market's decision and execution code; siblings never meet
    2  settings  marketdata               config models of every layer; bars and their loaders
    1  core                               the market-agnostic risk and OMS kernel
    0  shared_schema                      the file contract and its IO; imports nothing of ours

A module may import its own unit and any unit on a lower layer, and nothing under ``mac`` imports
``windows`` (or the reverse): the two machines meet only in the shared folder. Everything else is an arrow that runs up
(or sideways) and fails here, with the file and line that draws it. Imports inside functions count: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Longest prefix wins: "mac.grid" before "mac".
UNITS: dict[str, int] = {
    "shared_schema": 0,
    "core": 1,
    "settings": 2,
    "marketdata": 2,
    "mac": 4,
    "mac.grid": 3,
    "windows": 3,
    "crypto": 3,
    "mac.node": 4,
    "mac.state_codec": 4,
    "mac.dashboard": 4,
    "backtest": 4,
    "gridbridge": 5,
}
# mac.state_codec is the node's durable-state codec: part of the node process.
SAME_UNIT = {"mac.state_codec": "mac.node"}
# The two machines meet only in the shared folder: nothing on the Mac imports the Windows side, whatever the
# layer numbers say (the dashboard reads the pool history the executor publishes, not its classes).
NEVER = {("mac", "windows"), ("windows", "mac")}


def unit_of(module: str) -> str | None:
    best = None
    for unit in UNITS:
        if module == unit or module.startswith(unit + "."):
            if best is None or len(unit) > len(best):
                best = unit
    return best


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from mac import node" imports mac.node: name the most specific unit it reaches.
            found.extend((node.lineno, f"{stem}.{a.name}") for a in node.names)
    return found


def arrows_up(path: Path) -> list[str]:
    source = unit_of(_module_name(path))
    if source is None:
        return []
    source_home = SAME_UNIT.get(source, source)
    bad = []
    for line, target_module in _imports(path):
        target = unit_of(target_module)
        if target is None:
            continue
        target_home = SAME_UNIT.get(target, target)
        crosses = (source.split(".")[0], target.split(".")[0]) in NEVER
        if not crosses and (target_home == source_home or UNITS[target] < UNITS[source]):
            continue
        bad.append(f"{path.relative_to(ROOT)}:{line}: {source} (layer {UNITS[source]}) imports "
                   f"{target_module} ({target}, layer {UNITS[target]})")
    return bad


def production_files() -> list[Path]:
    tops = {u.split(".")[0] for u in UNITS}
    return sorted(p for top in tops if (ROOT / top).is_dir() for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", production_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_down_the_layers(path: Path) -> None:
    assert arrows_up(path) == []


def test_every_production_package_has_a_layer() -> None:
    top = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert top <= {u.split(".")[0] for u in UNITS}, top - {u.split(".")[0] for u in UNITS}
    unplaced = [str(p.relative_to(ROOT)) for p in production_files() if unit_of(_module_name(p)) is None]
    assert unplaced == []


# The four arrows the architecture review found (issue 12). Each, written back, must fail the check.
UPWARD = [
    ("shared_schema/config.py", "from core.gate import GateConfig\n"),
    ("windows/producer.py", "from backtest.data import Bars\n"),
    ("mac/dashboard/data.py", "from windows.executor_state import ExecutorState\n"),
    ("backtest/cli.py", "def f():\n    from mac.node import node_settings_from_config\n"),
    ("core/gate.py", "import windows.vault\n"),
    ("mac/grid/core.py", "from windows.vault import GlobalVault\n"),
    ("settings/config.py", "from mac.grid.params import GridParams\n"),
    ("marketdata/bars.py", "from mac.grid.core import BarTuple\n"),
]


@pytest.mark.parametrize("where,source", UPWARD, ids=[w for w, _ in UPWARD])
def test_the_check_catches_an_arrow_that_runs_up(tmp_path: Path, where: str, source: str) -> None:
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    globals()["ROOT"] = tmp_path
    try:
        assert len(arrows_up(target)) == 1
    finally:
        globals()["ROOT"] = Path(__file__).resolve().parents[1]


def test_a_relative_import_is_resolved_before_it_is_judged(tmp_path: Path) -> None:
    target = tmp_path / "core" / "risk" / "x.py"
    target.parent.mkdir(parents=True)
    target.write_text("from ...windows import vault\nfrom . import engine\n")
    globals()["ROOT"] = tmp_path
    try:
        assert arrows_up(target) == [f"{Path('core/risk/x.py')}:1: core (layer 1) imports windows.vault "
                                     "(windows, layer 3)"]
    finally:
        globals()["ROOT"] = Path(__file__).resolve().parents[1]
