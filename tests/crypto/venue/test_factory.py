"""make_venue / make_exchange: the unmodified ccxt classes pointed at a local server; credentials model."""

from __future__ import annotations

import json
from pathlib import Path

import ccxt
import pytest

from core.oms.reasons import VenueReason
from crypto.venue.factory import VenueCredentials, make_exchange, make_venue, point_at
from crypto.venue.types import VenueError

SECRET = "s3cr3t-value-never-printed"


def test_okx_fake_rewrites_the_rest_host_only() -> None:
    exchange = make_exchange("okx-fake", "http://127.0.0.1:8123/ignored/path", None)
    assert type(exchange) is ccxt.okx  # the class itself, not a subclass
    assert exchange.urls["api"] == {"rest": "http://127.0.0.1:8123"}
    assert exchange.options["createOrder"] == "privatePostTradeOrder"
    assert exchange.options["fetchMarkets"]["types"] == ["spot", "swap"]


def test_binance_pm_fake_keeps_every_family_path() -> None:
    exchange = make_exchange("binance-pm-fake", "http://127.0.0.1:9000", None)
    assert type(exchange) is ccxt.binance
    api = exchange.urls["api"]
    assert api["papi"] == "http://127.0.0.1:9000/papi/v1"
    assert api["fapiPublic"] == "http://127.0.0.1:9000/fapi/v1"
    assert api["public"] == "http://127.0.0.1:9000/api/v3"
    assert api["sapi"] == "http://127.0.0.1:9000/sapi/v1"
    assert all(url.startswith("http://127.0.0.1:9000/") for url in api.values())
    assert exchange.options["portfolioMargin"] is True


def test_real_venues_keep_their_urls() -> None:
    okx = make_exchange("okx", None, None)
    assert okx.urls["api"]["rest"] == ccxt.okx().urls["api"]["rest"]
    binance = make_exchange("binance-pm", None, None)
    assert binance.urls["api"]["papi"] == "https://papi.binance.com/papi/v1"


@pytest.mark.parametrize(("name", "url"), [("kraken", None), ("okx-fake", None)])
def test_bad_venue_names_and_missing_urls_are_refused(name: str, url: str | None) -> None:
    with pytest.raises(ValueError):
        make_exchange(name, url, None)


def test_point_at_needs_an_absolute_url() -> None:
    with pytest.raises(ValueError):
        point_at(ccxt.okx(), "127.0.0.1:80")


def test_venue_names_are_the_ccxt_ids() -> None:
    assert make_venue("okx-fake", "http://127.0.0.1:1").name == "okx"
    venue = make_venue("binance-pm-fake", "http://127.0.0.1:1")
    assert venue.name == "binance" and venue.portfolio_margin


def test_credentials_from_env_reach_ccxt_and_never_the_repr() -> None:
    env = {"OKX_API_KEY": "key1", "OKX_SECRET": SECRET, "OKX_PASSPHRASE": "pass1"}
    creds = VenueCredentials.from_env("OKX", env)
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    exchange = make_exchange("okx-fake", "http://127.0.0.1:1", creds)
    assert (exchange.apiKey, exchange.secret, exchange.password) == ("key1", SECRET, "pass1")


def test_missing_secret_is_refused_naming_the_field_only() -> None:
    with pytest.raises(VenueError) as info:
        VenueCredentials.from_env("OKX", {"OKX_API_KEY": SECRET})
    assert info.value.reason is VenueReason.AUTH and "secret" in info.value.message
    assert SECRET not in str(info.value)


def test_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"api_key": "k", "secret": SECRET}), encoding="utf-8")
    creds = VenueCredentials.from_file(path)
    assert creds.passphrase is None and creds.ccxt_config() == {"apiKey": "k", "secret": SECRET}


@pytest.mark.parametrize("content", ["not json", json.dumps(["a"]), json.dumps({"api_key": "k", "secret": SECRET,
                                                                                 "extra": SECRET})])
def test_bad_credentials_file_refused_without_echo(tmp_path: Path, content: str) -> None:
    path = tmp_path / "creds.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VenueError) as info:
        VenueCredentials.from_file(path)
    assert info.value.reason is VenueReason.AUTH and info.value.venue_code == "CONFIG"
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_missing_credentials_file_refused(tmp_path: Path) -> None:
    with pytest.raises(VenueError) as info:
        VenueCredentials.from_file(tmp_path / "absent.json")
    assert info.value.reason is VenueReason.AUTH
