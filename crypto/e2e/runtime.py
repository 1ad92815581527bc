"""Shared plumbing of the ``gridbridge crypto`` commands: the venue from command-line arguments, the
engine's clock over the venue, and the state folder's files."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from crypto.venue.protocol import Venue

STATE_HELP = "the engine's state folder (journal, audit.jsonl, status.json, control/)"


def add_venue_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", default="okx-fake", choices=["okx-fake", "okx"],
                   help="okx-fake: the local exchange at --url; okx: the real venue (credentials needed)")
    p.add_argument("--url", help="the local exchange's URL (http://127.0.0.1:PORT)")
    p.add_argument("--credentials", type=Path, help="JSON file {api_key, secret, passphrase}; "
                   "default: GRIDBRIDGE_OKX_* from the environment, or the local exchange's own keys")


def venue_from_args(args: argparse.Namespace) -> Venue:
    """Build the ccxt-backed venue the arguments name (``VenueError`` for bad credentials)."""
    import os

    from crypto.venue.factory import VenueCredentials, make_venue

    if args.credentials is not None:
        creds = VenueCredentials.from_file(args.credentials)
    elif os.environ.get("GRIDBRIDGE_OKX_API_KEY"):
        creds = VenueCredentials.from_env("GRIDBRIDGE_OKX")
    elif args.venue == "okx-fake":
        creds = fake_credentials()
    else:
        raise SystemExit("gridbridge crypto: --venue okx needs --credentials or GRIDBRIDGE_OKX_* variables")
    if args.venue == "okx-fake" and not args.url:
        raise SystemExit("gridbridge crypto: --venue okx-fake needs --url of the local exchange")
    return make_venue(args.venue, args.url, creds)


def fake_credentials() -> object:
    """The local exchange's default keys as venue credentials."""
    from crypto.fakex.server import Credentials
    from crypto.venue.factory import VenueCredentials

    c = Credentials()
    return VenueCredentials.model_validate({"api_key": c.api_key, "secret": c.secret, "passphrase": c.passphrase})


class VenueClock:
    """The engine's clock read from the venue's server time (the local exchange's model clock in tests)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.venue.now_ms() / 1000, tz=timezone.utc)


class MsClock:
    """A clock over any epoch-milliseconds function."""

    def __init__(self, now_ms: object) -> None:
        self._now_ms = now_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now_ms() / 1000, tz=timezone.utc)  # type: ignore[operator]
