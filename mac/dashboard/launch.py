"""``gridbridge dashboard --shared-dir DIR [--carry-dir DIR] [--pm-dir DIR] [--port N]``: runs ``streamlit run`` on
``mac/dashboard/app.py``.

``register(subparsers)`` adds the subcommand (``gridbridge.cli.COMMANDS`` lists it); the settings travel to the page as environment variables
(``GRIDBRIDGE_DASHBOARD_*``), so the page also runs under ``streamlit.testing`` without a command line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")
ENV = "GRIDBRIDGE_DASHBOARD_"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("dashboard")  # its line in `gridbridge --help`: gridbridge.cli.COMMANDS
    p.add_argument("--shared-dir", help="the shared folder to watch (live)")
    p.add_argument("--replay", metavar="DIR", help="a dry-run folder or a backtest output folder to replay")
    p.add_argument("--state-dir", help="the executor's state dir (its journal gives full pool/alpha history)")
    p.add_argument("--config", help="the executor's config file (its vault limits and fee model replay the journal; "
                                    "default: config.json beside the shared folder)")
    p.add_argument("--carry-dir", help="the carry engine's state dir (its carry_status.json: the Carry page)")
    p.add_argument("--pm-dir", help="the position manager's store folder (its pm_status.json: the PM page)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--refresh", type=float, default=2.0, help="seconds between live refreshes (0: off)")
    p.add_argument("--stale-after", type=float, default=120.0, help="seconds after which a file counts as stale")
    p.set_defaults(func=cmd_dashboard)
    return p


def streamlit_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and the environment carrying the page's settings."""
    argv = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(args.port), "--server.address", args.address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    env = dict(os.environ)
    values = {"SHARED_DIR": args.shared_dir, "REPLAY": args.replay, "STATE_DIR": args.state_dir,
              "CONFIG": getattr(args, "config", None), "REFRESH_S": args.refresh, "STALE_S": args.stale_after,
              "CARRY_DIR": getattr(args, "carry_dir", None), "PM_DIR": getattr(args, "pm_dir", None)}
    for key, value in values.items():
        if value is None or value == "":
            env.pop(ENV + key, None)
        else:
            is_path = key.endswith("DIR") or key in ("REPLAY", "CONFIG")
            env[ENV + key] = str(Path(value).resolve()) if is_path else str(value)
    # The page imports the project's packages; make sure they resolve from any working directory.
    root = str(APP.resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return argv, env


def cmd_dashboard(args: argparse.Namespace) -> int:
    if not (args.shared_dir or args.replay or getattr(args, "carry_dir", None) or getattr(args, "pm_dir", None)):
        print("gridbridge dashboard: give --shared-dir DIR (live) or --replay DIR, and/or --carry-dir DIR, "
              "--pm-dir DIR (the crypto pages)", file=sys.stderr)
        return 2
    argv, env = streamlit_command(args)
    print(f"gridbridge dashboard on http://{args.address}:{args.port}", file=sys.stderr)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 0
