"""build_clients from settings, and the simulators' control API over HTTP."""

from __future__ import annotations

import httpx
import pytest

from core.config import load_settings
from core.errors import ConfigError
from core.providers.codeswholesale import CodesWholesaleClient
from core.providers.kinguin import KinguinClient
from core.providers.registry import (
    SIMULATOR_KINGUIN_WEBHOOK_SECRET,
    build_clients,
    codeswholesale_postback_credentials,
    kinguin_webhook_secret,
)
from keyshop.simulators import SimulatorServer, default_knobs, parse_knob_assignments

BLANK = {
    "CODESWHOLESALE_BASE_URL": "",
    "CODESWHOLESALE_CLIENT_ID": "",
    "CODESWHOLESALE_CLIENT_SECRET": "",
    "CODESWHOLESALE_CLIENT_SIGNATURE": "",
    "KINGUIN_BASE_URL": "",
    "KINGUIN_API_KEY": "",
    "KINGUIN_WEBHOOK_SECRET": "",
}


def test_embedded_default_uses_the_simulators(tmp_path) -> None:
    settings = load_settings(KEYSHOP_VAR_DIR=str(tmp_path), KEYSHOP_SIMULATOR_PORT=8799, **BLANK)
    clients = build_clients(settings)
    assert list(clients) == ["codeswholesale", "kinguin"]
    cw, kg = clients["codeswholesale"], clients["kinguin"]
    assert (
        isinstance(cw, CodesWholesaleClient)
        and cw.base_url == "http://127.0.0.1:8799/codeswholesale"
    )
    assert isinstance(kg, KinguinClient) and kg.base_url == "http://127.0.0.1:8799/kinguin"
    assert kinguin_webhook_secret(settings) == SIMULATOR_KINGUIN_WEBHOOK_SECRET
    knobs = default_knobs(settings)
    assert knobs["kinguin"]["webhook_target"].endswith("/api/webhooks/kinguin")
    for client in clients.values():
        client.close()


def test_configured_providers_and_chain_order(tmp_path) -> None:
    settings = load_settings(
        KEYSHOP_VAR_DIR=str(tmp_path),
        **{
            **BLANK,
            "KEYSHOP_PROVIDER_CHAIN": "kinguin,codeswholesale",
            "KINGUIN_BASE_URL": "https://gateway.sandbox.kinguin.net/esa/api",
            "KINGUIN_API_KEY": "k",
            "KINGUIN_WEBHOOK_SECRET": "w",
            "CODESWHOLESALE_BASE_URL": "https://sandbox.codeswholesale.com",
            "CODESWHOLESALE_CLIENT_ID": "id",
            "CODESWHOLESALE_CLIENT_SECRET": "secret",
            "CODESWHOLESALE_CLIENT_SIGNATURE": "sig",
        },
    )
    clients = build_clients(settings)
    assert list(clients) == ["kinguin", "codeswholesale"]
    assert clients["kinguin"].base_url == "https://gateway.sandbox.kinguin.net/esa/api"  # type: ignore[attr-defined]
    assert codeswholesale_postback_credentials(settings) == ("id", "sig")
    assert kinguin_webhook_secret(settings) == "w"


def test_base_url_without_credentials_names_the_setting(tmp_path) -> None:
    settings = load_settings(
        KEYSHOP_VAR_DIR=str(tmp_path), **{**BLANK, "KINGUIN_BASE_URL": "https://kg.example"}
    )
    with pytest.raises(ConfigError) as info:
        build_clients(settings)
    assert info.value.setting == "KINGUIN_API_KEY"


def test_control_api_over_http(sim: SimulatorServer) -> None:
    with httpx.Client(base_url=sim.url + "/_control", timeout=2) as http:
        assert set(http.get("/").json()) == {"codeswholesale", "kinguin"}
        state = http.post(
            "/kinguin", json={"latency_ms": 1, "out_of_stock": "abc", "balance": "12.34"}
        ).json()
        assert state["knobs"]["latency_ms"] == 1 and state["knobs"]["out_of_stock"] == ["abc"]
        assert state["balance"] == "12.34"
        bad = http.post("/kinguin", json={"no_such_knob": 1})
        assert bad.status_code == 400 and "no_such_knob" in bad.json()["error"]
        assert http.post("/nowhere", json={}).status_code == 404
        made = http.post(
            "/codeswholesale/products",
            json={"external_id": "new-1", "name": "New", "price": "4.20", "stock": 2},
        )
        assert made.status_code == 201
        assert any(p["external_id"] == "new-1" for p in http.get("/codeswholesale/products").json())
        assert http.get("/codeswholesale/orders").json() == []
        assert http.post("/kinguin/reset").json()["balance"] == "1000.00"


def test_knob_assignments_from_the_command_line() -> None:
    knobs = parse_knob_assignments(
        ["latency_ms=20", "kinguin.out_of_stock=a,b", "codeswholesale.crash_after_charge=true"]
    )
    assert knobs["kinguin"] == {"latency_ms": 20, "out_of_stock": ["a", "b"]}
    assert knobs["codeswholesale"] == {"latency_ms": 20, "crash_after_charge": True}
    with pytest.raises(ValueError):
        parse_knob_assignments(["kinguin.nope=1"])
    with pytest.raises(ValueError):
        parse_knob_assignments(["steam.latency_ms=1"])


def test_nowpayments_knobs_from_the_command_line() -> None:
    knobs = parse_knob_assignments(["nowpayments.partial=0.5", "nowpayments.duplicates=3"])
    assert knobs["nowpayments"] == {"partial": 0.5, "duplicates": 3}
    for bad in ("nowpayments.nope=1", "nowpayments.partial=2", "nowpayments.duplicates=0"):
        with pytest.raises(ValueError):
            parse_knob_assignments([bad])


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("https://img.example/c.jpg", True),
        ("http://img.example/c.jpg", False),  # the storefront loads images over https
        ("javascript:alert(1)", False),
        ("data:image/png;base64,AAAA", False),
        ("https://img.example/a b.jpg", False),
        ('https://img.example/"onerror=x', False),
        ("https://img.example/" + "x" * 1000, False),
        (None, False),
        (42, False),
    ],
)
def test_only_plain_web_addresses_are_kept_as_provider_covers(value, kept) -> None:
    from core.providers.base import cover_url_or_none

    assert (cover_url_or_none(value) is not None) is kept
