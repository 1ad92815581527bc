"""``gridbridge crypto control ACTION [SYMBOL] --state DIR``: the kill-switch doors of the ETF side.

The same signed command files (``core.control``: HMAC-SHA256 with ``GRIDBRIDGE_CONTROL_SECRET``, nonce,
expiry) dropped into the engine's state folder, handled by the same ``core.control.killswitch`` code, and
acknowledged in ``control_ack/``. Exit 0 accepted, 1 refused, 2 bad arguments, 3 not acknowledged in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.control.commands import ControlAction, new_command, secret_from_env, sign_command
from core.control.file_door import read_ack, write_command_file
from crypto.e2e.runtime import STATE_HELP

ACTIONS = {"halt": ControlAction.FORCE_HALT, "reduce": ControlAction.FORCE_REDUCE,
           "reset-fuse": ControlAction.RESET_FUSE, "unlock": ControlAction.FORCE_UNLOCK_SYMBOL,
           "resume": ControlAction.RESUME}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbridge crypto control", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=sorted(ACTIONS))
    p.add_argument("symbol", nargs="?")
    p.add_argument("--state", type=Path, required=True, help=STATE_HELP)
    p.add_argument("--issuer", default="cli")
    p.add_argument("--ttl", type=float, default=600.0, help="seconds the command stays valid (at most 600)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the acknowledgement (0: none)")
    args = p.parse_args(argv)
    secret = secret_from_env(os.environ)
    if secret is None:
        print("gridbridge crypto control: set GRIDBRIDGE_CONTROL_SECRET (the secret the engine shares)",
              file=sys.stderr)
        return 2
    if args.action == "unlock" and not args.symbol:
        print("gridbridge crypto control unlock: a SYMBOL is required", file=sys.stderr)
        return 2
    if not 0 < args.ttl <= 600:
        print("gridbridge crypto control: --ttl must be in (0, 600] seconds", file=sys.stderr)
        return 2
    command = new_command(ACTIONS[args.action], args.issuer, datetime.now(timezone.utc),
                          ttl=timedelta(seconds=args.ttl), symbol=args.symbol)
    try:
        path = write_command_file(args.state, sign_command(command, secret))
    except OSError as exc:
        print(f"gridbridge crypto control: could not write the command: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"command_id": command.command_id, "action": command.action.value, "file": str(path)}))
    if args.wait <= 0:
        return 0
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        ack = read_ack(args.state, command.command_id)
        if ack is not None:
            print(json.dumps(ack))
            if ack.get("accepted") is True:
                return 0
            print(f"gridbridge crypto control: REFUSED: {ack.get('reason')} {ack.get('detail') or ''}".rstrip(),
                  file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"gridbridge crypto control: not acknowledged within {args.wait:g} s (is the engine running on "
          f"{args.state}?); the command stays in control/ until it expires", file=sys.stderr)
    return 3
