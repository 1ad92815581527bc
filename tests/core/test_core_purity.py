"""core/ is a functional core: no IO imports and no clock reads outside the shell modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
# The IO shell of the kernel: the audit writer/reader, the write-ahead journal, the control doors, the gate's file CLI,
# the HTTP server thread the doors and the crypto services share.
SHELL = {CORE / "audit.py", CORE / "gate_cli.py", CORE / "journal.py", CORE / "http_thread.py"}
SHELL_DIRS = {CORE / "control"}

IO_MODULES = {
    "os",
    "io",
    "pathlib",
    "socket",
    "shutil",
    "tempfile",
    "subprocess",
    "http",
    "urllib",
    "threading",
    "signal",
    "select",
    "asyncio",
    "sqlite3",
    "requests",
    "watchdog",
    "filelock",
    "logging",
    "random",
    "secrets",
    "shared_schema.atomic_io",
    "core.audit",
    "core.gate_cli",
}
FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "sleep"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("json", "load"),
    ("json", "dump"),
}
FORBIDDEN_NAMES = {"open", "input", "print"}


def pure_files() -> list[Path]:
    return sorted(
        p for p in CORE.rglob("*.py") if p not in SHELL and not any(d in p.parents for d in SHELL_DIRS)
    )


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            names = []
        for name in names:
            if name in IO_MODULES or name.split(".")[0] in IO_MODULES:
                found.append(f"import {name}")
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found.append("from time import ...")
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_NAMES:
                found.append(f"call {f.id}()")
            if isinstance(f, ast.Attribute):
                base = f.value
                base_name = (
                    base.id
                    if isinstance(base, ast.Name)
                    else (base.attr if isinstance(base, ast.Attribute) else None)
                )
                if (base_name, f.attr) in FORBIDDEN_CALLS:
                    found.append(f"call {base_name}.{f.attr}()")
    return found


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_pure_core_module_does_no_io(path: Path) -> None:
    assert _violations(path) == []


def test_scanner_catches_clock_and_file_reads(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom datetime import datetime\nx = datetime.now()\nopen('f')\n")
    assert len(_violations(bad)) == 3


def test_scan_covers_the_kernel() -> None:
    names = {p.name for p in pure_files()}
    risk = {"evaluate.py", "transitions.py", "manual.py", "replay.py", "snapshot.py", "checks.py"}
    assert risk | {"account.py", "reconcile.py", "gate.py", "events.py"} <= names
