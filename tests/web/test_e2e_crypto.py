"""A customer pays with crypto in the embedded default, in Debian's Chromium: the shop
started by ``keyshop run`` (Reflex in prod mode, the simulators, NOWPayments' among
them), checkout with "Crypto", the simulator's invoice page, its signed IPNs to the
shop's webhook, a worker, the key delivered on the order page without a reload."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from core.models import CryptoPayment, Order
from tests.factories import fresh, make_keys, make_product
from tests.support.shop import running_shop, stop

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("KEYSHOP_CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.timeout(900)


def test_a_customer_pays_with_crypto_and_gets_the_key(test_settings, session, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    title = f"Satoshi Racer {secrets.token_hex(2).upper()}"
    product = make_product(
        session, title=title, slug=f"satoshi-racer-{secrets.token_hex(3)}", price_minor=1999
    )
    make_keys(session, product, 1)
    with running_shop(test_settings, tmp_path) as (url, env), sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        worker = None
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{url}/games/{product.slug}")
            page.click("#add-to-cart")
            expect(page.locator("#cart-count")).to_have_text("1")
            page.click("#nav-cart")
            expect(page.locator(".cart-line", has_text=title)).to_be_visible()
            page.fill("#checkout-email", f"satoshi-{secrets.token_hex(3)}@example.com")
            page.locator("#payment-method").get_by_text("Crypto").click()
            page.click("#checkout")

            page.wait_for_url("**/nowpayments/payment/**")
            expect(page.get_by_text("Simulated crypto payment")).to_be_visible()
            expect(page.get_by_text("19.99 EUR")).to_be_visible()
            page.click("#np-pay")

            page.wait_for_url("**/orders/**")
            number = page.url.split("/orders/")[1].split("?")[0]
            status = page.locator("#order-status")
            worker = subprocess.Popen(
                [sys.executable, "-m", "keyshop", "worker", "-w", "2"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            expect(status).to_have_attribute("data-status", "fulfilled", timeout=90_000)
            expect(page.locator("#payment-note")).to_contain_text("received in full")
        finally:
            if worker is not None:
                stop(worker)
            browser.close()
    fresh(session)
    order = session.exec(select(Order).where(Order.number == number)).one()
    assert order.payment_provider == "nowpayments"
    [payment] = session.exec(select(CryptoPayment).where(CryptoPayment.order_id == order.id)).all()
    assert payment.status == "finished"
