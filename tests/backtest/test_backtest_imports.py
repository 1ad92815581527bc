"""A reference backtest loads neither pandas nor the realistic-only modules until it needs them."""

from __future__ import annotations

import subprocess
import sys

# the realistic-only risk machine and its policy, the fee model, the vault; the report, the progress bar; the
# generator (``data synth``) and pandas (read only when a CSV is)
LAZY = ("pandas", "backtest.risk", "mac.grid.risk_policy", "windows.pipeline", "windows.vault", "plotly", "tqdm",
        "backtest.synth")


def test_importing_the_backtest_cli_loads_nothing_it_may_not_need() -> None:
    code = f"import sys, backtest.cli; print(' '.join(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
