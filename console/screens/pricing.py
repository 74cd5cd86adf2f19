"""Pricing: the rules in force and, below them, what applying them would change now (a
dry run of :func:`core.services.pricing.reprice`, with each change's reason). ``a``
applies them (confirmed; each change recorded and audited), ``d`` removes the selected
rule (confirmed, audited). Rules are added with ``keyshop pricing add``."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import money, short
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.services import pricing


class PricingLoaded(Message):
    def __init__(self, rules: list[tuple[Any, ...]], plans: list[pricing.PricePlan]) -> None:
        super().__init__()
        self.rules = rules
        self.plans = plans


def describe(rule: Any, slugs: dict[int, str]) -> tuple[str, str]:
    """(what the rule is for, how it sets the price); a product by its slug."""
    scope = (
        f"product {slugs.get(rule.product_id, '?')}"
        if rule.product_id
        else ", ".join(
            f"{k}={v}"
            for k, v in (
                ("platform", rule.platform),
                ("region", rule.region),
                ("genre", rule.genre),
            )
            if v
        )
        or "default"
    )
    if rule.mode == pricing.FIXED:
        return scope, f"fixed {money(rule.fixed_price_minor or 0, rule.currency)}"
    how = f"cost + {(rule.margin_bp or 0) / 100:g} %"
    if rule.floor_minor is not None:
        how += f", floor {money(rule.floor_minor, rule.currency)}"
    if rule.ceiling_minor is not None:
        how += f", ceiling {money(rule.ceiling_minor, rule.currency)}"
    return scope, how + (", charm" if rule.charm else "")


class PricingScreen(ConsoleScreen):
    NAME = "pricing"
    AUTO_FOCUS = "#rules-table"
    BINDINGS = [
        Binding("a", "apply", "Apply the rules", id="pricing.apply"),
        Binding("d", "remove", "Remove rule", id="pricing.remove"),
    ]
    PALETTE = [
        ("Apply the pricing rules now", "apply", "each change recorded with its reason"),
        ("Remove the selected pricing rule", "remove", "audited"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="rules-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="plan-summary")
        yield DataTable(id="plan-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#rules-table", DataTable).add_columns("Rule", "Currency", "For", "Price")
        self.query_one("#plan-table", DataTable).add_columns("Product", "Now", "Rule", "Why")

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            found = pricing.rules(session=session)
            slugs = pricing.rule_product_slugs(session=session, found=found)
            rules = [(r.id, r.currency, *describe(r, slugs)) for r in found]
            plans = [p for p in pricing.plan_prices(session=session) if p.changes]
        self.post_message(PricingLoaded(rules, plans))

    @on(PricingLoaded)
    def show(self, message: PricingLoaded) -> None:
        rules = self.query_one("#rules-table", DataTable)
        rules.clear()
        for rule_id, currency, scope, how in message.rules:
            rules.add_row(f"#{rule_id}", currency, scope, how, key=str(rule_id))
        plan = self.query_one("#plan-table", DataTable)
        plan.clear()
        for p in message.plans:
            plan.add_row(
                p.slug,
                Text(money(p.old_minor, p.currency), justify="right"),
                Text(money(p.new_minor, p.currency), justify="right"),
                short(p.reason, 70),
                key=p.slug,
            )
        self.query_one("#plan-summary", Static).update(
            f"applying the rules now would change {len(message.plans)} price(s) (dry run):"
        )
        self.sub_title = f"{len(message.rules)} rule(s)"

    def action_apply(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_operator_action(
                    "apply pricing",
                    lambda: f"{len(pricing.reprice(actor=self.actor))} price(s) changed",
                )

        self.app.push_screen(
            ConfirmScreen("Apply the pricing rules now?", "Each change is recorded with why."),
            confirmed,
        )

    def action_remove(self) -> None:
        key = self.selected_key(self.query_one("#rules-table", DataTable))
        if key is None:
            return
        rule_id = int(key)

        def confirmed(yes: bool | None) -> None:
            if yes:

                def call() -> str:
                    pricing.remove_rule(rule_id=rule_id, actor=self.actor)
                    return f"pricing rule #{rule_id} removed"

                self.run_operator_action("remove rule", call)

        self.app.push_screen(ConfirmScreen(f"Remove pricing rule #{rule_id}?"), confirmed)
