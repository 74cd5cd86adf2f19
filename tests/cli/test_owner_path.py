"""The README's owner path, as far as it runs without a terminal: from an empty database
to three products on sale, one from own stock, one from a CodesWholesale offer with a
cost-plus rule, one mapped to a Kinguin offer, using only ``keyshop`` commands against
the provider simulators."""

from __future__ import annotations

import pytest
from PIL import Image
from sqlmodel import select

from core.models import Product, ProviderOffer
from core.services.provider_sync import sync_offers
from tests.factories import fresh
from tests.support.cli import invoke


@pytest.fixture
def run(test_settings, monkeypatch):
    def call(*args):
        result = invoke(monkeypatch, test_settings, *args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result.stdout

    return call


def offer_id(listing: str, name: str, region: str) -> str:
    for line in listing.splitlines():
        if line.startswith("\t"):  # the closest products of the offer above
            continue
        _, external_id, offer_name, _, offer_region, *_ = line.split("\t")
        if offer_name == name and offer_region == region:
            return external_id
    raise AssertionError(f"{name} not offered:\n{listing}")


@pytest.fixture
def demo_providers(test_settings):
    """Clients of simulators of their own offering the demo titles, as ``keyshop run``'s
    simulators do (the suite's shared simulator does not, and stays as it is)."""
    from core.providers.codeswholesale import CodesWholesaleClient
    from core.providers.kinguin import KinguinClient
    from core.providers.registry import (
        SIMULATOR_CODESWHOLESALE_CLIENT_ID,
        SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
        SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
        SIMULATOR_KINGUIN_API_KEY,
    )
    from keyshop.simulators import SimulatorServer
    from keyshop.simulators.server import add_demo_catalogue

    server = SimulatorServer()
    add_demo_catalogue(server.states)
    with server:
        clients = [
            CodesWholesaleClient(
                server.provider_url("codeswholesale"),
                SIMULATOR_CODESWHOLESALE_CLIENT_ID,
                SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
                SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
                2.0,
            ),
            KinguinClient(server.provider_url("kinguin"), SIMULATOR_KINGUIN_API_KEY, 2.0),
        ]
        yield clients
        for client in clients:
            client.close()


def test_empty_database_to_three_products_on_sale(session, demo_providers, tmp_path, run):
    keys = tmp_path / "keys.txt"
    keys.write_text("PAPER-COMET-0001\nPAPER-COMET-0002\nPAPER-COMET-0003\n")
    cover = tmp_path / "paper-comet.jpg"
    Image.new("RGB", (600, 800), "teal").save(cover, format="JPEG")
    run("products", "add", "paper-comet-steam-global", "--title", "Paper Comet",
        "--platform", "Steam", "--genre", "Puzzle", "--price", "14.99",
        "--price-usd", "15.99", "--cover", str(cover))  # fmt: skip
    run("import-keys", "--product", "paper-comet-steam-global", str(keys))
    for client in demo_providers:
        sync_offers(client=client)

    emberwake = offer_id(
        run("offers", "list", "--unmapped", "--provider", "codeswholesale", "-q", "emberwake"),
        "Emberwake Chronicles",
        "EU",
    )
    run("offers", "create-product", "codeswholesale", emberwake)
    run("pricing", "add", "--product", "emberwake-chronicles-steam-eu", "--margin", "25",
        "--floor", "19.99", "--ceiling", "49.99")  # fmt: skip
    assert "cost" in run("pricing", "apply", "--dry-run")
    run("pricing", "apply")

    run("products", "add", "hollow-tide-gog-global", "--title", "Hollow Tide",
        "--platform", "GOG", "--genre", "Adventure", "--price", "19.99")  # fmt: skip
    hollow = offer_id(
        run("offers", "list", "--unmapped", "--provider", "kinguin", "-q", "hollow"),
        "Hollow Tide GOG CD Key",
        "GLOBAL",
    )
    run("offers", "map", "kinguin", hollow, "hollow-tide-gog-global")

    check = run("products", "check")
    assert "unsellable" not in check
    products = {p.slug: p for p in fresh(session).exec(select(Product))}
    assert set(products) == {
        "paper-comet-steam-global",
        "emberwake-chronicles-steam-eu",
        "hollow-tide-gog-global",
    }
    assert all(p.active and p.in_stock for p in products.values())
    assert products["paper-comet-steam-global"].cover_image is not None
    ember = products["emberwake-chronicles-steam-eu"]
    assert ember.price_minor % 100 == 99 and 1999 <= ember.price_minor <= 4999
    mapped = {
        (o.provider, o.product_id)
        for o in fresh(session).exec(
            select(ProviderOffer).where(ProviderOffer.product_id.is_not(None))
        )
    }
    assert ("codeswholesale", ember.id) in mapped
    assert ("kinguin", products["hollow-tide-gog-global"].id) in mapped
