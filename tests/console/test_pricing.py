"""The pricing screen: the rules, a dry run of what they would change, apply (audited)."""

from __future__ import annotations

from sqlmodel import select
from textual.widgets import DataTable

from core.models import PriceChange, Product, ProviderOffer
from core.services import pricing
from core.services.audit import Actor
from tests.console.conftest import OPERATOR, audit, run, settle, show
from tests.factories import fresh, make_product


def test_dry_run_then_apply(session, console_app):
    game = make_product(session, slug="game", price_minor=999)
    session.add(
        ProviderOffer(
            provider="codeswholesale", external_id="cw-1", product_id=game.id, name="Game",
            cost_minor=1000, currency="EUR", stock=3,
        )
    )  # fmt: skip
    session.commit()
    pricing.add_rule(
        rule=pricing.RuleInput("EUR", "cost_plus", margin_bp=2000), actor=Actor.system()
    )

    async def scenario(pilot):
        await show(pilot, "f3")
        screen = pilot.app.screen
        assert screen.query_one("#rules-table", DataTable).row_count == 1
        plan = screen.query_one("#plan-table", DataTable)
        assert [str(c) for c in plan.get_row("game")[:3]] == ["game", "9.99 EUR", "12.99 EUR"]
        assert fresh(session).get(Product, game.id).price_minor == 999  # a dry run
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert plan.row_count == 0

    run(console_app, scenario)
    assert fresh(session).get(Product, game.id).price_minor == 1299
    [change] = fresh(session).exec(select(PriceChange)).all()
    assert change.actor == f"operator:{OPERATOR}"
    assert audit(session, "product.price")[0].actor_id == OPERATOR


def test_a_product_rule_names_the_product(session, console_app):
    """Issue #17 defect 13: the rule said "product #33", an internal id."""
    game = make_product(session, slug="starfall-vanguard", price_minor=999)
    pricing.add_rule(
        rule=pricing.RuleInput("EUR", "fixed", fixed_price_minor=1499, product_id=game.id),
        actor=Actor.system(),
    )

    async def scenario(pilot):
        await show(pilot, "f3")
        rules = pilot.app.screen.query_one("#rules-table", DataTable)
        assert [str(c) for c in rules.get_row_at(0)[2:]] == [
            "product starfall-vanguard",
            "fixed 14.99 EUR",
        ]

    run(console_app, scenario)
