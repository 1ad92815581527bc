"""Builds the broker named in the config or on the command line; the only place that knows them all."""

from __future__ import annotations

from pathlib import Path

from settings.config import GridbridgeConfig
from windows.brokers.paper import ACCOUNT_VIEW_FILE, PaperBroker
from windows.brokers.protocol import Broker


def make_broker(
    name: str, config: GridbridgeConfig, shared_dir: Path, state_dir: Path, xtquant_module: str | None = None
) -> Broker:
    """The broker called ``name``. ``xtquant_module`` (or ``$GRIDBRIDGE_XTQUANT_MODULE``) names the package
    that provides ``xttrader``/``xttype``/``xtconstant``: ``xtquant`` on the QMT machine, the fake
    ``tests.kit.fake_xtquant`` in tests. The real package is imported only here and only when asked for."""
    if name == "paper":
        return PaperBroker(Path(state_dir) / "paper", config.paper, account_view_path=Path(shared_dir) / ACCOUNT_VIEW_FILE)
    if name == "xtquant":
        from windows.brokers.xt_session import XtQuantUnavailable, load_xt_modules
        from windows.brokers.xtquant_broker import XtQuantBroker, settings_from_config

        x = config.xtquant
        if not x.userdata_path or not x.account_id:
            raise SystemExit("--broker xtquant needs xtquant.userdata_path and xtquant.account_id in the config "
                             "(see docs/windows.md)")
        try:
            modules = load_xt_modules(xtquant_module)
        except XtQuantUnavailable as exc:
            raise SystemExit(f"gridbridge: {exc}") from exc
        from windows.executor import JOURNAL_FILE

        # The journal names our client_order_ids: only those (or our id formats) are adopted at the venue.
        return XtQuantBroker(modules, settings_from_config(config, journal_path=str(Path(state_dir) / JOURNAL_FILE)))
    raise ValueError(f"unknown broker {name!r}")
