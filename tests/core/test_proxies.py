"""The client's address behind trusted proxies (core.proxies): forwarding headers are
believed only from the proxies KEYSHOP_TRUSTED_PROXIES names."""

from __future__ import annotations

import pytest

from core.config import load_settings
from core.errors import ConfigError
from core.proxies import TrustedProxies, client_address, parse_trusted_proxies

NONE = TrustedProxies()
ONE_HOP = parse_trusted_proxies("1")
TWO_HOPS = parse_trusted_proxies("2")
NETS = parse_trusted_proxies("10.0.0.0/8, 2001:db8:ffff::/48")


def addr(peer, trusted, **headers):
    return client_address(
        peer=peer, headers={k.replace("_", "-"): v for k, v in headers.items()}, trusted=trusted
    )


def test_without_a_proxy_forwarding_headers_are_ignored():
    assert addr("198.51.100.9", NONE, x_forwarded_for="203.0.113.1") == "198.51.100.9"
    assert addr("198.51.100.9", NONE, forwarded="for=203.0.113.1") == "198.51.100.9"


@pytest.mark.parametrize(
    "xff, client",
    [
        ("203.0.113.1", "203.0.113.1"),
        ("6.6.6.6, 203.0.113.1", "203.0.113.1"),  # the client's own forged entry: ignored
        ("garbage, 203.0.113.1", "203.0.113.1"),
        ("203.0.113.1:5123", "203.0.113.1"),
    ],
)
def test_one_hop_takes_the_entry_the_proxy_appended(xff, client):
    assert addr("10.1.1.1", ONE_HOP, x_forwarded_for=xff) == client


def test_one_hop_without_the_header_is_the_peer():
    assert addr("198.51.100.9", ONE_HOP) == "198.51.100.9"


def test_two_hops():
    assert (
        addr("10.0.0.2", TWO_HOPS, x_forwarded_for="6.6.6.6, 203.0.113.1, 10.0.0.1")
        == "203.0.113.1"
    )
    assert addr("10.0.0.2", TWO_HOPS, x_forwarded_for="203.0.113.1") == "203.0.113.1"


def test_an_unparsable_entry_stops_the_walk():
    assert addr("10.0.0.2", ONE_HOP, x_forwarded_for="unknown") == "10.0.0.2"


def test_networks_believe_only_trusted_peers():
    # from a trusted proxy: the right-most untrusted address
    assert addr("10.0.0.1", NETS, x_forwarded_for="6.6.6.6, 203.0.113.1, 10.2.3.4") == "203.0.113.1"
    # straight from the internet: its headers are the client's own words
    assert addr("198.51.100.9", NETS, x_forwarded_for="203.0.113.1") == "198.51.100.9"
    # every hop trusted: the left-most
    assert addr("10.0.0.1", NETS, x_forwarded_for="10.9.9.9") == "10.9.9.9"


def test_forwarded_header_rfc_7239():
    assert (
        addr("10.0.0.1", NETS, forwarded='for=6.6.6.6, for="[2001:db8::7]:4711";proto=https')
        == "2001:db8::7"
    )
    assert (
        addr("10.0.0.1", ONE_HOP, forwarded="for=192.0.2.60;proto=http;by=203.0.113.43")
        == "192.0.2.60"
    )
    assert addr("10.0.0.1", ONE_HOP, forwarded="for=_hidden") == "10.0.0.1"
    # X-Forwarded-For wins when both are present
    assert (
        addr("10.0.0.1", ONE_HOP, forwarded="for=192.0.2.60", x_forwarded_for="192.0.2.61")
        == "192.0.2.61"
    )


@pytest.mark.parametrize("value", ["abc", "10.0.0.0/33", "17", "10.0.0.1, nonsense"])
def test_a_bad_setting_is_named(monkeypatch, tmp_path, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEYSHOP_TRUSTED_PROXIES", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "KEYSHOP_TRUSTED_PROXIES"


def test_the_setting_in_force(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert not load_settings().proxies.enabled
    monkeypatch.setenv("KEYSHOP_TRUSTED_PROXIES", "1")
    assert load_settings().proxies.hops == 1
    monkeypatch.setenv("KEYSHOP_TRUSTED_PROXIES", "172.16.0.0/12,127.0.0.1")
    assert len(load_settings().proxies.networks) == 2
    assert "KEYSHOP_TRUSTED_PROXIES" in repr(load_settings().describe())
