"""``gridbridge dry-run``: producer + executor (paper) + both nodes on generated data (``gridbridge.dryrun``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dry-run")
    p.add_argument("--shared-dir", help="default: a new temp folder")
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--speed", type=float, default=600.0, help="replay speed vs real time")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--config", help="gridbridge config to start from")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--pool", help="physical pool in CNY (default 300000; smaller shows the penalty sooner)")
    p.set_defaults(func=cmd_dry_run)


def cmd_dry_run(args: argparse.Namespace) -> int:
    from gridbridge.dryrun import DryRunError, DryRunOptions, print_summary, run_dry_run

    try:
        summary = run_dry_run(DryRunOptions(
            shared_dir=Path(args.shared_dir) if args.shared_dir else None, days=args.days, speed=args.speed,
            seed=args.seed, base_config=Path(args.config) if args.config else None, physical_pool=args.pool,
        ), progress=sys.stderr if args.json else sys.stdout)  # --json: stdout is the summary alone
    except DryRunError as exc:
        print(f"gridbridge dry-run: {exc}", file=sys.stderr)
        return 2
    print_summary(summary, as_json=args.json)
    return 0 if summary["ok"] else 1
