"""``gridbridge deploy`` and ``gridbridge rollback``: config bundles as versions (``gridbridge.deploy``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy")
    p.add_argument("--deploy-dir", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--strategy-version")
    p.add_argument("--git")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("rollback")
    p.add_argument("--deploy-dir", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--observe-hours", type=float, default=24.0)
    p.add_argument("--observe-as", choices=["DEGRADED", "COOLDOWN"], default="DEGRADED")
    p.add_argument("--drill", action="store_true", help="a rehearsal: recorded as a drill")
    p.set_defaults(func=cmd_rollback)


def cmd_deploy(args: argparse.Namespace) -> int:
    from gridbridge.deploy import deploy

    record = deploy(Path(args.deploy_dir), Path(args.config), args.version, args.strategy_version or "", args.git or "")
    print(json.dumps({"deployed": record.config_version}))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gridbridge.deploy import rollback
    from shared_schema.clock import SystemClock

    try:
        plan = rollback(Path(args.deploy_dir), Path(args.state_dir), args.reason, SystemClock().now(),
                        timedelta(hours=args.observe_hours), args.observe_as, args.drill)
    except (RuntimeError, ValueError) as exc:
        print(f"gridbridge rollback: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"from": plan.from_version.config_version, "to": plan.to_version.config_version,
                      "risk_state": plan.snapshot.state.value}))
    return 0
