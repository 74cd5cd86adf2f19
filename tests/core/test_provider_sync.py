"""Offer sync through the real clients against the simulators."""

from sqlmodel import select

from core.models import ProviderOffer
from core.services.provider_sync import sync_offers
from keyshop.simulators.server import add_demo_catalogue, new_states
from tests.factories import fresh, make_product


def test_sync_stores_offers_and_maps_them_by_title_platform_and_region(
    session, providers, sim_server
):
    steam = make_product(session, title="Hollow Tide", platform="Steam", region="EU")
    xbox = make_product(session, title="Hollow Tide", platform="Xbox", region="EU")
    sim_server.add_product(
        "kinguin", name="Hollow Tide", platform="Steam", region="EUROPE", price="7.10", stock=12
    )
    sim_server.add_product(
        "kinguin", name="Hollow Tide", platform="Xbox", region="GLOBAL", price="7.30", stock=4
    )
    report = sync_offers(client=providers["kinguin"])
    assert report.seen >= 2 and report.created == report.seen
    offers = {
        o.external_id: o
        for o in fresh(session).exec(
            select(ProviderOffer).where(ProviderOffer.name.startswith("Hollow Tide"))
        )
    }
    mapped = {(o.product_id, o.cost_minor, o.stock) for o in offers.values()}
    # EUROPE is our EU: mapped; the GLOBAL Xbox offer is not our EU Xbox product: left for an operator
    assert (steam.id, 710, 12) in mapped and (None, 730, 4) in mapped
    assert xbox.id not in {o.product_id for o in offers.values()}
    again = sync_offers(client=providers["kinguin"])
    assert again.created == 0 and again.updated == again.seen


def test_the_demo_catalogue_is_offered_by_both_simulated_providers():
    states = new_states()
    before = {name: len(state.products) for name, state in states.items()}
    add_demo_catalogue(states)
    for name, state in states.items():
        assert len(state.products) > before[name] + 40
        state.reset()
        assert len(state.products) > before[name] + 40, "a reset keeps the demo titles"
        state.cancel_timers()


def test_a_failed_sync_raises_a_provider_down_alert_for_the_operators(session):
    """The provider cannot be reached (a real client against a closed loopback port): the
    sync fails as before (the task retries) and operators see an open alert."""
    import socket

    import pytest

    from core.models import Alert
    from core.providers.base import ProviderError
    from core.providers.kinguin import KinguinClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    client = KinguinClient(f"http://127.0.0.1:{closed_port}", "key", 0.5)
    with pytest.raises(ProviderError):
        sync_offers(client=client)
    [alert] = fresh(session).exec(select(Alert)).all()
    assert (alert.kind, alert.subject) == ("provider_down", "provider:kinguin")
    assert "catalogue sync of kinguin failed" in alert.message
    with pytest.raises(ProviderError):  # a second failure does not open a second alert
        sync_offers(client=client)
    assert len(fresh(session).exec(select(Alert)).all()) == 1


def test_kinguin_offers_are_mapped_by_original_name_not_the_suffixed_name(
    session, providers, sim_server
):
    """Kinguin's name is "<title> <platform> CD Key"; mapping reads originalName."""
    product = make_product(session, title="Copperline Express", platform="Steam", region="GLOBAL")
    report = sync_offers(client=providers["kinguin"])
    assert report.mapped >= 1
    offer = (
        fresh(session)
        .exec(select(ProviderOffer).where(ProviderOffer.product_id == product.id))
        .one()
    )
    assert offer.provider == "kinguin" and offer.name == "Copperline Express Steam CD Key"


def test_the_providers_cover_picture_is_kept_with_the_offer(session, providers, sim_server):
    for provider in ("kinguin", "codeswholesale"):
        sim_server.add_product(
            provider, name="Glass Orchard", platform="GOG", price="4.20", stock=3,
            cover_url=f"https://img.{provider}.example/glass-orchard.jpg",
        )  # fmt: skip
        sync_offers(client=providers[provider])
    covers = {
        o.provider: o.cover_url
        for o in fresh(session).exec(
            select(ProviderOffer).where(ProviderOffer.name.startswith("Glass Orchard"))
        )
    }
    assert covers == {
        "kinguin": "https://img.kinguin.example/glass-orchard.jpg",
        "codeswholesale": "https://img.codeswholesale.example/glass-orchard.jpg",
    }
