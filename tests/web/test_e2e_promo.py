"""A promo code in the storefront, in Debian's Chromium against the real shop (issue #18
item 1): a code that cannot be used says why, a good one shows its discount on the line
and in the total, and the payment page asks for the discounted total."""

from __future__ import annotations

import secrets

import pytest
from sqlmodel import select

from core.models import Order, OrderLine
from core.services.audit import Actor
from core.services.operator.promos import PromoInput, create_promo
from tests.factories import fresh, make_keys, make_product
from tests.support.browser import Steps, new_page

pytestmark = pytest.mark.timeout(900)


def test_a_guest_applies_a_promo_code_in_the_cart_and_pays_the_discounted_total(
    shop, browser, session
):
    from playwright.sync_api import expect

    title = f"Comet Rally {secrets.token_hex(2).upper()}"
    slug = f"comet-rally-{secrets.token_hex(3)}"
    product = make_product(session, title=title, slug=slug, price_minor=2000)
    make_keys(session, product, 3)
    code = f"E2E{secrets.token_hex(3).upper()}"
    create_promo(data=PromoInput(code=code, percent="25", scope="products", scope_values=[slug]),
                 actor=Actor.operator("owner"))  # fmt: skip
    big = f"BIG{secrets.token_hex(3).upper()}"
    create_promo(data=PromoInput(code=big, percent="10", minimum="EUR=500"),
                 actor=Actor.operator("owner"))  # fmt: skip
    context, page = new_page(browser)
    with Steps(page, "promo-journey") as steps:
        page.goto(f"{shop.url}/games/{slug}")
        expect(page.locator("#product-title")).to_have_text(title)
        page.click("#add-to-cart")
        expect(page.locator("#cart-count")).to_have_text("1")
        page.click("#nav-cart")
        line = page.locator(".cart-line", has_text=title)
        expect(line).to_be_visible()
        expect(page.locator("#cart-total")).to_have_text("€20.00")  # the cart's on_load ran

        page.fill("#promo-code", big.lower())
        page.click("#apply-promo")
        expect(page.locator("#promo-error")).to_have_text(
            f"Promo code {big} needs an order of at least €500.00."
        )
        expect(page.locator("#cart-total")).to_have_text("€20.00")
        steps.shot("promo-refused")

        page.fill("#promo-code", code)
        page.click("#apply-promo")
        expect(page.locator("#promo-applied")).to_have_text(f"Promo code {code}: -€5.00")
        expect(line.locator(".line-discount")).to_have_text("€20.00 - €5.00 with the code")
        expect(line.locator(".line-total")).to_have_text("€15.00")
        expect(page.locator("#cart-total")).to_have_text("€15.00")
        expect(page.locator("#promo-error")).to_have_count(0)
        steps.shot("promo-applied")

        page.fill("#checkout-email", f"promo-{secrets.token_hex(3)}@example.com")
        page.click("#checkout")
        page.wait_for_url("**/pay/**")
        expect(page.locator("#pay-total")).to_have_text("€15.00")
        steps.shot("pay-discounted")
        number = page.url.split("/pay/")[1].split("?")[0]
        page.click("#pay-button")
        page.wait_for_url("**/orders/**")
        expect(page.locator("#order-promo")).to_have_text(f"Promo code {code}: -€5.00")
        steps.shot("order-page")
    context.close()
    s = fresh(session)
    order = s.exec(select(Order).where(Order.number == number)).one()
    assert (order.subtotal_minor, order.discount_minor, order.total_minor) == (2000, 500, 1500)
    assert (
        s.exec(select(OrderLine.discount_minor).where(OrderLine.order_id == order.id)).one() == 500
    )
