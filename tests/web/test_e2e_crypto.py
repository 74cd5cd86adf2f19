"""A customer pays with crypto in the embedded default, in Debian's Chromium: the shared
shop (``keyshop run``: Reflex in prod mode, the simulators, NOWPayments' among them),
checkout with "Crypto", the simulator's invoice page, its signed IPNs to the shop's
webhook, a worker, the key delivered on the order page without a reload."""

from __future__ import annotations

import secrets

import pytest
from sqlmodel import select

from core.models import CryptoPayment, Order
from tests.factories import fresh, make_keys, make_product
from tests.support.browser import Steps, new_page

pytestmark = pytest.mark.timeout(900)


def test_a_customer_pays_with_crypto_and_gets_the_key(shop, browser, session):
    from playwright.sync_api import expect

    title = f"Satoshi Racer {secrets.token_hex(2).upper()}"
    product = make_product(
        session, title=title, slug=f"satoshi-racer-{secrets.token_hex(3)}", price_minor=1999
    )
    make_keys(session, product, 1)
    shop.stop_workers()  # the order page must turn to delivered live, when a worker starts
    context, page = new_page(browser)
    with Steps(page, "crypto-journey") as steps:
        page.goto(f"{shop.url}/games/{product.slug}")
        page.click("#add-to-cart")
        expect(page.locator("#cart-count")).to_have_text("1")
        page.click("#nav-cart")
        expect(page.locator(".cart-line", has_text=title)).to_be_visible()
        page.fill("#checkout-email", f"satoshi-{secrets.token_hex(3)}@example.com")
        page.locator("#payment-method").get_by_text("Crypto").click()
        steps.shot("cart-crypto")
        page.click("#checkout")

        page.wait_for_url("**/nowpayments/payment/**")
        expect(page.get_by_text("Simulated crypto payment")).to_be_visible()
        expect(page.get_by_text("19.99 EUR")).to_be_visible()
        steps.shot("invoice")
        page.click("#np-pay")

        page.wait_for_url("**/orders/**")
        number = page.url.split("/orders/")[1].split("?")[0]
        status = page.locator("#order-status")
        shop.start_worker()
        expect(status).to_have_attribute("data-status", "fulfilled", timeout=90_000)
        expect(page.locator("#payment-note")).to_contain_text("received in full")
        steps.shot("delivered")
    context.close()
    fresh(session)
    order = session.exec(select(Order).where(Order.number == number)).one()
    assert order.payment_provider == "nowpayments"
    [payment] = session.exec(select(CryptoPayment).where(CryptoPayment.order_id == order.id)).all()
    assert payment.status == "finished"
