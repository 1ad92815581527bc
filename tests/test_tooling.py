"""House tooling as tests: ruff over the tree, mypy --strict over the pure cores (core/ and mac/grid)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (pip install -e .[test])")
def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    out = _run(ruff, "check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_on_the_pure_cores():
    pytest.importorskip("mypy")
    out = _run(sys.executable, "-m", "mypy", "--strict", "core", "mac/grid")
    assert out.returncode == 0, out.stdout + out.stderr
