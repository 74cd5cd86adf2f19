"""End to end in Debian's Chromium against ``keyshop run`` (issue #18): a signed-in
customer takes a promo code off, pays with a gift card and store credit, the test payment
page asks the card for exactly the rest, the order page says what the code took off and
what the balances paid, and the account page shows the credit spent. The shop and the browser come from :mod:`tests.web.test_e2e`'s
fixtures (tests/web/conftest.py)."""

from __future__ import annotations

import re
import secrets

import pytest

from core.db import session_scope
from core.services import accounts, credit, giftcards
from core.services.audit import Actor
from core.services.operator.promos import PromoInput, create_promo
from tests.factories import make_keys, make_product
from tests.support.browser import ACCOUNT_PAGE, Steps, new_page, wait_loaded

pytestmark = pytest.mark.timeout(900)


def test_a_customer_pays_with_a_promo_code_gift_card_store_credit_and_a_card(
    shop, browser, session
):
    from playwright.sync_api import expect

    game = make_product(session, title=f"Ledger Quest {secrets.token_hex(2)}", price_minor=1500)
    make_keys(session, game, 2)
    promo = f"LEDGER{secrets.token_hex(2).upper()}"
    create_promo(
        data=PromoInput(code=promo, percent="20", scope="products", scope_values=[game.slug]),
        actor=Actor.operator("olga"),
    )
    email, password = f"gia-{secrets.token_hex(3)}@example.com", "gift card password 1"
    signed = accounts.create_account(email=email, password=password)
    with session_scope() as s:
        credit.adjust_customer_credit(
            session=s,
            customer_id=signed.customer_id,
            amount_minor=500,
            currency="EUR",
            actor=Actor.operator("olga"),
            note="welcome",
            idempotency_key=f"e2e:{email}",
        )
        code = giftcards.issue(
            session=s, amount_minor=400, currency="EUR", actor=Actor.operator("olga")
        ).code

    context, page = new_page(browser)
    with Steps(page, "gift-card-and-credit") as steps:
        page.goto(shop.url + "/signin")
        wait_loaded(page, "/signin")
        page.fill("#field-email", email)
        page.fill("#field-password", password)
        page.click("#signin-submit")
        page.wait_for_url(ACCOUNT_PAGE)
        expect(page.locator("#credit-balance")).to_contain_text(re.compile(r"5[.,]00"))

        page.goto(f"{shop.url}/games/{game.slug}")
        page.click("#add-to-cart")
        expect(page.locator("#cart-count")).to_have_text("1")
        page.click("#nav-cart")
        expect(page.locator(".cart-line")).to_have_count(1)
        # the cart's on_load offers the credit: wait for it before filling the form
        offer = page.get_by_role("checkbox", name=re.compile(r"store credit.*5[.,]00"))
        expect(offer).to_be_checked()
        page.fill("#promo-code", promo.lower())
        page.click("#apply-promo")
        expect(page.locator("#promo-applied")).to_have_text(f"Promo code {promo}: -€3.00")
        page.click("#gift-card-toggle")
        page.fill("#gift-cards", code.lower())
        steps.shot("cart-with-gift-card-and-credit")
        page.click("#checkout")
        page.wait_for_url("**/pay/**")
        # €15.00 less 20% (€3.00) less €4.00 (gift card) less €5.00 (credit): the card
        # pays €3.00
        expect(page.locator("#pay-total")).to_contain_text(re.compile(r"3[.,]00"))
        steps.shot("test-payment-for-the-rest")
        page.click("#pay-button")
        page.wait_for_url("**/orders/**")
        expect(page.locator("#order-balances")).to_contain_text(re.compile(r"9[.,]00"))
        expect(page.locator("#order-promo")).to_have_text(f"Promo code {promo}: -€3.00")
        steps.shot("order-page")

        page.goto(shop.url + "/account")
        wait_loaded(page, "/account")
        expect(page.locator("#credit-balance")).to_contain_text(re.compile(r"0[.,]00"))
        expect(page.locator("#credit-ledger")).to_contain_text(re.compile(r"-\D?5[.,]00"))
        steps.shot("account-credit-spent")
    context.close()
    assert giftcards.check_balance(code=code, ip=None).balance_minor == 0
    assert credit.balance_in(customer_id=signed.customer_id, currency="EUR") == 0


def test_a_gift_card_holder_checks_its_balance_from_the_footer(shop, browser):
    """The storefront's own balance page, in both languages, reached from the footer:
    what is left on the card, an unknown code refused; no serious accessibility problem."""
    from playwright.sync_api import expect

    from tests.support.browser import accessibility_problems

    with session_scope() as s:
        issued = giftcards.issue(
            session=s, amount_minor=2500, currency="EUR", actor=Actor.operator("olga")
        )
    context, page = new_page(browser)
    with Steps(page, "gift-card-balance") as steps:
        page.goto(shop.url + "/")
        page.click("#legal-gift-card")
        page.wait_for_url(shop.url + "/gift-card")
        wait_loaded(page, "/gift-card")
        page.fill("#gift-card-code", issued.code.lower())
        page.click("#gift-card-check")
        expect(page.get_by_text(f"The gift card ending in {issued.last4} has")).to_contain_text(
            "€25.00 left of €25.00"
        )
        assert page.locator("#gift-card-code").input_value() == ""  # the code is not kept
        steps.shot("balance")
        assert accessibility_problems(page) == []
        page.fill("#gift-card-code", giftcards.new_code())
        page.click("#gift-card-check")
        expect(page.get_by_role("alert")).to_contain_text("No gift card has that code")
        page.goto(shop.url + "/de/gift-card")
        wait_loaded(page, "/de/gift-card")
        expect(page.get_by_role("heading", level=1)).to_have_text("Gutschein-Guthaben")
        page.fill("#gift-card-code", issued.code)
        page.click("#gift-card-check")
        expect(page.get_by_text(f"Endung {issued.last4}")).to_contain_text("25,00")
        steps.shot("balance-de")
    context.close()
