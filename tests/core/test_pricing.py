"""Pricing rules: cost-plus never leaves the floor, the ceiling or the margin it may keep,
and charm rounding never crosses the floor (hypothesis); rule precedence; repricing
records each change with its reason, a dry run changes nothing, a sync reprices, and a
cost that breaks the minimum margin on a fixed price raises an alert."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from core.errors import InvalidInput
from core.models import Alert, AlertKind, AuditEvent, PriceChange, Product, ProviderOffer
from core.services import pricing
from core.services.audit import Actor
from core.services.pricing import RuleInput, charm_up, cost_plus_price, is_charm
from tests.factories import fresh, make_product

OWNER = Actor.operator("owner")
CURRENCIES = st.sampled_from(["EUR", "USD", "JPY", "KWD"])
AMOUNTS = st.integers(min_value=0, max_value=10**9)


@given(price=st.integers(min_value=0, max_value=10**9), currency=CURRENCIES)
def test_charm_up_is_the_nearest_charm_price_above(price, currency):
    up = charm_up(price, currency)
    assert up >= price and is_charm(up, currency)
    assert not any(is_charm(p, currency) for p in range(price, up))
    assert charm_up(up, currency) == up


@settings(max_examples=300)
@given(
    cost=AMOUNTS,
    margin_bp=st.integers(min_value=0, max_value=20_000),
    floor=st.none() | AMOUNTS,
    span=st.none() | st.integers(min_value=0, max_value=10**6),
    charm=st.booleans(),
    currency=CURRENCIES,
)
def test_cost_plus_never_leaves_floor_ceiling_or_margin(
    cost, margin_bp, floor, span, charm, currency
):
    ceiling = None if span is None else (floor or 0) + span
    price = cost_plus_price(
        cost_minor=cost,
        margin_bp=margin_bp,
        currency=currency,
        floor_minor=floor,
        ceiling_minor=ceiling,
        charm=charm,
    )
    if floor is not None:
        assert price >= floor  # charm rounding never crosses the floor
    if ceiling is not None:
        assert price <= ceiling
    margin_price = -(-cost * (10_000 + margin_bp) // 10_000)
    if ceiling is None or ceiling >= margin_price:
        assert price >= margin_price  # the margin is kept unless the ceiling forbids it
    if charm and ceiling is None:
        assert is_charm(price, currency)
    if not charm:
        expected = margin_price if ceiling is None else min(margin_price, ceiling)
        assert price == (expected if floor is None else max(expected, floor))


def test_charm_examples():
    assert cost_plus_price(cost_minor=1000, margin_bp=2000, currency="EUR") == 1299
    assert cost_plus_price(cost_minor=1000, margin_bp=2000, currency="JPY") == 1209
    assert cost_plus_price(cost_minor=10_000, margin_bp=0, currency="KWD") == 10_990
    # the ceiling caps; charm never rounds past it, nor down below the margin or floor
    assert (
        cost_plus_price(
            cost_minor=1000, margin_bp=2000, currency="EUR", floor_minor=1000, ceiling_minor=1250
        )
        == 1200
    )
    assert (
        cost_plus_price(
            cost_minor=1000, margin_bp=5000, currency="EUR", floor_minor=1420, ceiling_minor=1450
        )
        == 1450
    )


def test_bad_rules_are_refused():
    with pytest.raises(InvalidInput, match="floor is above"):
        pricing.check_rule(
            RuleInput("EUR", "cost_plus", margin_bp=100, floor_minor=500, ceiling_minor=400)
        )
    with pytest.raises(InvalidInput, match="needs a price"):
        pricing.check_rule(RuleInput("EUR", "fixed"))
    with pytest.raises(InvalidInput):
        pricing.check_rule(RuleInput("EUR", "magic"))


def offer(session, product, provider, cost, *, stock=5, external_id=None):
    row = ProviderOffer(
        provider=provider,
        external_id=external_id or f"{provider}-{product.id}",
        product_id=product.id,
        name=product.title,
        cost_minor=cost,
        currency=product.currency,
        stock=stock,
    )
    session.add(row)
    session.commit()
    return row


def test_precedence_product_then_most_specific_then_oldest(session):
    rpg = make_product(session, platform="Steam", region="EU", genre="RPG")
    other = make_product(session, platform="GOG", region="EU", genre="RPG")
    default = pricing.add_rule(rule=RuleInput("EUR", "fixed", fixed_price_minor=100), actor=OWNER)
    steam = pricing.add_rule(
        rule=RuleInput("EUR", "fixed", platform="steam", fixed_price_minor=200), actor=OWNER
    )
    steam_eu = pricing.add_rule(
        rule=RuleInput("EUR", "fixed", platform="Steam", region="EU", fixed_price_minor=300),
        actor=OWNER,
    )
    pricing.add_rule(rule=RuleInput("USD", "fixed", fixed_price_minor=1), actor=OWNER)
    rules = pricing.rules(session=fresh(session))
    assert pricing.rule_for(rpg, rules).id == steam_eu
    assert pricing.rule_for(other, rules).id == default
    own = pricing.add_rule(
        rule=RuleInput("EUR", "fixed", product_id=other.id, fixed_price_minor=400), actor=OWNER
    )
    assert pricing.rule_for(other, pricing.rules(session=fresh(session))).id == own
    assert steam  # a less specific rule loses to steam_eu


def test_reprice_records_reasons_and_a_dry_run_changes_nothing(session):
    game = make_product(session, slug="starfall", price_minor=999)
    cw = offer(session, game, "codeswholesale", 1240)
    offer(session, game, "kinguin", 1300)
    offer(session, game, "kinguin", 900, stock=0, external_id="sold-out")
    pricing.add_rule(
        rule=RuleInput("EUR", "cost_plus", margin_bp=2000, floor_minor=1000), actor=OWNER
    )

    [plan] = pricing.reprice(actor=OWNER, dry_run=True)
    assert (plan.old_minor, plan.new_minor) == (999, 1499)
    assert fresh(session).get(Product, game.id).price_minor == 999
    assert fresh(session).exec(select(PriceChange)).all() == []

    pricing.reprice(actor=OWNER)
    [change] = fresh(session).exec(select(PriceChange)).all()
    assert (change.old_minor, change.new_minor) == (999, 1499)
    assert change.reason.startswith("codeswholesale cost 12.40 EUR, +20 %, charm")
    product = fresh(session).get(Product, game.id)
    assert product.price_minor == 1499 and product.priced_at is not None
    [audit] = fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "product.price"))
    assert audit.data["from"] == 999 and audit.data["to"] == 1499

    # the provider's cost moves: the next change says from what to what
    row = fresh(session).get(ProviderOffer, cw.id)
    row.cost_minor = 1280
    session.add(row)
    session.commit()
    assert pricing.reprice(actor=OWNER, dry_run=False)[0].new_minor == 1599
    latest = pricing.price_history(session=fresh(session), product_id=game.id)[0]
    assert latest.reason.startswith("codeswholesale cost 12.40 → 12.80 EUR")
    # nothing changed: nothing recorded
    assert pricing.reprice(actor=OWNER) == []
    assert len(fresh(session).exec(select(PriceChange)).all()) == 2


def test_a_cost_above_the_minimum_margin_on_a_fixed_price_raises_an_alert(session):
    game = make_product(session, slug="fixed-game", price_minor=1000)
    offer(session, game, "kinguin", 980)
    pricing.add_rule(
        rule=RuleInput(
            "EUR", "fixed", product_id=game.id, fixed_price_minor=1000, min_margin_bp=500
        ),
        actor=OWNER,
    )
    pricing.reprice(actor=OWNER)
    [alert] = fresh(session).exec(select(Alert).where(Alert.kind == AlertKind.MARGIN)).all()
    assert "kinguin cost 9.80 EUR" in alert.message and "needs 10.29" in alert.message


def test_a_sync_reprices_the_products_it_touches(session, providers):
    from core.services.provider_sync import sync_offers

    client = providers["codeswholesale"]
    first = next(iter(client.list_offers(updated_since=None)))
    product = make_product(
        session,
        title=first.title or first.name,
        platform=first.platform or "Steam",
        region="GLOBAL",
        currency=first.currency,
        price_minor=1,
    )
    pricing.add_rule(rule=RuleInput(first.currency, "cost_plus", margin_bp=1000), actor=OWNER)
    offer(session, product, "codeswholesale", first.cost_minor, external_id=first.external_id)
    sync_offers(client=client)
    changes = (
        fresh(session).exec(select(PriceChange).where(PriceChange.product_id == product.id)).all()
    )
    assert changes and changes[-1].actor == "system:sync:codeswholesale"
    assert fresh(session).get(Product, product.id).price_minor > 1
