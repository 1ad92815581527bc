"""``gridbridge control``: write a signed kill-switch command for the executor and wait for its answer."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gridbridge.commands.shell import config_of

CONTROL_ACTIONS = {"halt": "FORCE_HALT", "reduce": "FORCE_REDUCE", "reset-fuse": "RESET_FUSE",
                   "unlock": "FORCE_UNLOCK_SYMBOL", "resume": "RESUME"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("control")
    p.add_argument("action", choices=sorted(CONTROL_ACTIONS))
    p.add_argument("symbol", nargs="?")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--issuer", default="cli")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait for the executor's acknowledgement (0: do not wait)")
    p.add_argument("--ttl", type=float, default=600.0, help="seconds the command stays valid")
    p.add_argument("--config", help="to read executor.control_max_ttl_s")
    p.set_defaults(func=cmd_control)


def cmd_control(args: argparse.Namespace) -> int:
    import os
    from datetime import timedelta

    from core.control.commands import ControlAction, new_command, secret_from_env, sign_command
    from core.control.file_door import write_command_file
    from shared_schema.clock import SystemClock

    secret = secret_from_env(os.environ)
    if secret is None:
        print("gridbridge control: set GRIDBRIDGE_CONTROL_SECRET (the secret the executor shares)", file=sys.stderr)
        return 2
    if args.action == "unlock" and not args.symbol:
        print("gridbridge control unlock: a SYMBOL is required", file=sys.stderr)
        return 2
    cap = config_of(args).executor.control_max_ttl_s
    if not 0 < args.ttl <= cap:
        print(f"gridbridge control: --ttl {args.ttl:g} s is outside (0, {cap:g}] (executor.control_max_ttl_s); "
              "the executor would refuse it (CONTROL_TTL_TOO_LONG)", file=sys.stderr)
        return 2
    clock = SystemClock()
    command = new_command(ControlAction(CONTROL_ACTIONS[args.action]), args.issuer, clock.now(),
                          ttl=timedelta(seconds=args.ttl), symbol=args.symbol)
    shared = Path(args.shared_dir)
    try:
        path = write_command_file(shared, sign_command(command, secret))
    except OSError as exc:
        print(f"gridbridge control: could not write the command: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"command_id": command.command_id, "action": command.action.value, "file": str(path)}))
    if args.wait <= 0:
        print("gridbridge control: not waiting for the acknowledgement (--wait 0)", file=sys.stderr)
        return 0
    return _wait_for_ack(shared, command.command_id, args.wait, clock)


def _wait_for_ack(shared: Path, command_id: str, wait_s: float, clock: Any) -> int:
    """Poll ``control_ack/`` for the executor's answer: 0 accepted, 1 refused, 3 not acknowledged in time."""
    import time

    from core.control.file_door import read_ack
    from shared_schema.lease import lease_view

    deadline = time.monotonic() + wait_s
    while True:
        ack = read_ack(shared, command_id)
        if ack is not None:
            print(json.dumps(ack))
            if ack.get("accepted") is True:
                return 0
            print(f"gridbridge control: REFUSED by the executor: {ack.get('reason')} {ack.get('detail') or ''}".rstrip(),
                  file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    owner = lease_view(shared, clock.now())
    why = owner.text if owner.state == "LIVE" else f"no executor is running on this folder? ({owner.text})"
    print(f"gridbridge control: not acknowledged within {wait_s:g} s; {why}. The command file stays in control/ "
          "and is handled if an executor picks it up before it expires.", file=sys.stderr)
    return 3
