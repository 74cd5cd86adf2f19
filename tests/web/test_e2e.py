"""End to end in Debian's Chromium, driven by Playwright, against the real shop started
by ``keyshop run`` (Reflex in prod mode on one port, the provider simulators, the test
payment path) on this run's database.

The shop (``shop``, tests/web/conftest.py: one per test pass) runs without its own Huey
consumer (``--no-worker``); the guest journey stops any worker another test started and
starts ``keyshop worker`` itself once the order page is open: that makes "the page turns
to delivered without a reload" a fact the test controls rather than a race it hopes to
win. Screenshots of every step land in ``test-artifacts/e2e/<backend>/``.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from core.crypto import get_vault
from core.models import Key, Order, OrderLine
from core.services.audit import Actor
from core.services.catalogue.covers import prepare_cover, set_cover
from tests.factories import fresh, make_keys, make_product
from tests.support.browser import ACCOUNT_PAGE, Steps, new_page, wait_loaded

pytestmark = pytest.mark.timeout(900)


def delivered_codes(session, number: str) -> dict[str, str]:
    """key id → plaintext of the keys the inventory delivered to that order (decrypted here,
    compared, never printed)."""
    fresh(session)
    order = session.exec(select(Order).where(Order.number == number)).one()
    keys = session.exec(
        select(Key)
        .join(OrderLine, Key.order_line_id == OrderLine.id)
        .where(OrderLine.order_id == order.id)
    ).all()
    vault = get_vault()
    return {
        str(k.id): vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id).decode()
        for k in keys
    }


def test_a_guest_finds_buys_pays_watches_delivery_and_reveals_the_key(shop, browser, session):
    from playwright.sync_api import expect

    title = f"Starfall Odyssey {secrets.token_hex(2).upper()}"
    product = make_product(
        session,
        title=title,
        slug=f"starfall-odyssey-{secrets.token_hex(3)}",
        price_minor=2499,
        region="EU",
        activation_instructions="Open Steam, Games, Activate a product on Steam.",
        featured=True,
    )
    make_keys(session, product, 2)
    cover = Image.new("RGB", (900, 1200), "teal")
    buffer = io.BytesIO()
    cover.save(buffer, format="PNG")
    set_cover(
        slug=product.slug,
        sizes=prepare_cover(buffer.getvalue()),
        actor=Actor.operator("owner"),
    )
    shop.stop_workers()  # no consumer until the order page is open
    context, page = new_page(browser)
    with Steps(page, "guest-journey") as steps:
        page.goto(shop.url + "/")
        expect(page.locator("#featured .product-card", has_text=title)).to_be_visible()
        steps.shot("home")

        page.fill("#header-search", title.split()[0] + " " + title.split()[-1])
        page.press("#header-search", "Enter")
        card = page.locator(".product-card", has_text=title)
        expect(card).to_be_visible()
        # the uploaded cover, at the card's size, with its size and alt text
        card_cover = card.locator("img")
        expect(card_cover).to_have_attribute("src", re.compile(r"/api/covers/.*/card\.webp$"))
        expect(card_cover).to_have_attribute("width", "300")
        expect(card_cover).to_have_attribute("height", "400")
        expect(card_cover).to_have_attribute("alt", f"Cover art of {title}")
        steps.shot("search-results")

        card.click()
        expect(page.locator("#product-title")).to_have_text(title)
        expect(page.locator("#availability")).to_have_text("In stock")
        expect(page.locator("#region-warning")).to_contain_text("EU")
        page_cover = page.locator("img[src$='/page.webp']")
        expect(page_cover).to_have_attribute("width", "600")
        expect(page_cover).to_have_attribute("alt", f"Cover art of {title}")
        page_cover.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector(\"img[src$='/page.webp']\");"
            " return i && i.complete && i.naturalWidth === 600; }"
        )
        steps.shot("product")

        page.click("#add-to-cart")
        expect(page.locator("#cart-count")).to_have_text("1")
        page.click("#nav-cart")
        expect(page.locator(".cart-line", has_text=title)).to_be_visible()
        expect(page.locator("#cart-total")).to_have_text("€24.99")
        email = f"guest-{secrets.token_hex(3)}@example.com"
        page.fill("#checkout-email", email)
        steps.shot("cart")

        page.click("#checkout")
        page.wait_for_url("**/pay/**")
        expect(page.locator("#test-mode-banner")).to_contain_text("Test mode")
        expect(page.locator("#pay-total")).to_have_text("€24.99")
        steps.shot("test-payment")

        page.click("#pay-button")
        page.wait_for_url("**/orders/**")
        number = page.url.split("/orders/")[1].split("?")[0]
        status = page.locator("#order-status")
        # no consumer runs yet: the payment's webhook waits in the queue
        expect(status).to_have_attribute("data-status", "pending_payment")
        page.evaluate(
            """() => {
                window.__statuses = [];  // gone if the page reloads or navigates
                const el = document.getElementById('order-status');
                new MutationObserver(() => window.__statuses.push(el.dataset.status))
                    .observe(el, {attributes: true, attributeFilter: ['data-status']});
            }"""
        )
        steps.shot("order-waiting")

        shop.start_worker()
        expect(status).to_have_attribute("data-status", "fulfilled", timeout=60_000)
        expect(status).to_have_text("Delivered")
        seen = page.evaluate("window.__statuses")
        assert seen is not None, "the order page reloaded instead of updating live"
        assert seen[-1] == "fulfilled" and len(seen) >= 1
        steps.shot("order-delivered")

        codes = delivered_codes(session, number)
        assert len(codes) == 1
        key_id = next(iter(codes))
        code_el = page.locator(f"#code-{key_id}")
        assert "•" in page.locator(f"#masked-{key_id}").inner_text()
        on_page = any(code in page.content() for code in codes.values())
        assert not on_page, "the key was on the page before it was revealed"

        page.click("#consent")  # once per order, before the first reveal
        page.locator(f".reveal-key[data-key-id='{key_id}']").click()
        expect(code_el).to_have_attribute("data-revealed", "1")
        matches = code_el.inner_text() == codes[key_id]
        assert matches, "the revealed key is not the one the inventory delivered"
        page.locator(f".copy-key[data-key-id='{key_id}']").click()
        expect(page.locator(f"#copied-{key_id}")).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()") == codes[key_id]
        assert copied, "the copy button did not put the key on the clipboard"
        steps.shot("key-revealed")

        # the reveal was audited, with the customer as the actor
        from core.models import AuditEvent

        fresh(session)
        reveals = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "key.reveal", AuditEvent.object_id == key_id
            )
        ).all()
        assert len(reveals) == 1 and reveals[0].actor_type == "customer"

        # the e-mail carries the portal link, not the key
        outbox = Path(shop.env["KEYSHOP_VAR_DIR"]) / "outbox"
        mails = [p.read_text(errors="replace") for p in outbox.glob("*.eml")]
        ours = [m for m in mails if number in m]
        assert ours, "no e-mail mentions the order"
        leaked = any(codes[key_id] in m for m in ours)
        assert not leaked, "a key was written into an e-mail"

        # someone without the link sees nothing of the order
        other, other_page = new_page(browser, phone=True)
        other_page.goto(f"{shop.url}/orders/{number}")
        expect(other_page.get_by_text("Order not found")).to_be_visible()
        Steps(other_page, "guest-journey-stranger").shot("order-without-link")
    other.close()
    context.close()


def test_a_customer_pays_with_vat_consents_gets_a_receipt_and_finds_the_key_in_my_keys(
    shop, browser, session
):
    """Issue #14's journey: VAT on cart, order and receipt; consent before the first
    reveal (audited); the receipt as a page and a PDF; the key again in "My keys"."""
    from playwright.sync_api import expect

    from core.models import AuditEvent

    title = f"Tax Haven Tactics {secrets.token_hex(2).upper()}"
    product = make_product(
        session, title=title, slug=f"tax-haven-{secrets.token_hex(3)}", price_minor=2499
    )
    make_keys(session, product, 1)
    email, password = f"vat-{secrets.token_hex(3)}@example.com", "correct horse battery staple"
    context, page = new_page(browser)
    with Steps(page, "vat-consent-receipt-library") as steps:
        page.goto(shop.url + "/signup")
        wait_loaded(page, "/signup")
        page.fill("#field-email", email)
        page.fill("#field-password", password)
        page.fill("#field-password_again", password)
        page.click("#signup-submit")
        expect(page.get_by_text("We have sent a message to")).to_be_visible()
        page.goto(shop.url + "/signin")
        wait_loaded(page, "/signin")
        page.fill("#field-email", email)
        page.fill("#field-password", password)
        page.click("#signin-submit")
        page.wait_for_url(ACCOUNT_PAGE)

        page.goto(f"{shop.url}/games/{product.slug}")
        expect(page.locator("#product-price")).to_have_text("€24.99")
        expect(page.locator("#arrival")).to_contain_text("instantly")
        page.click("#add-to-cart")
        expect(page.locator("#cart-count")).to_have_text("1")
        page.click("#add-to-cart")  # only one key left: refused at "add"
        expect(page.get_by_text(f"Only 1 of {title} available right now.")).to_be_visible()
        page.goto(shop.url + "/cart")
        expect(page.locator("#cart-total")).to_have_text("€24.99")
        expect(page.locator("#cart-vat")).to_have_text("Includes 19% VAT (Germany): €3.99")
        expect(page.locator(".qty-plus")).to_be_disabled()
        expect(page.locator("#checkout-terms")).to_have_attribute("href", "/legal/terms")
        steps.shot("cart-with-vat")
        page.click("#checkout")
        page.wait_for_url("**/pay/**")
        number = page.url.split("/pay/")[1].split("?")[0]
        page.click("#pay-button")
        page.wait_for_url("**/orders/**")
        shop.ensure_worker()
        status = page.locator("#order-status")
        expect(status).to_have_attribute("data-status", "fulfilled", timeout=60_000)
        expect(page.locator("#order-vat")).to_have_text("Includes 19% VAT (Germany): €3.99")

        codes = delivered_codes(session, number)
        key_id = next(iter(codes))
        reveal = page.locator(f".reveal-key[data-key-id='{key_id}']")
        expect(reveal).to_be_disabled()  # not before the consent
        expect(page.locator("#consent-box")).to_contain_text("lose my right to withdraw")
        steps.shot("consent")
        page.click("#consent")
        expect(reveal).to_be_enabled()
        reveal.click()
        code_el = page.locator(f"#code-{key_id}")
        expect(code_el).to_have_attribute("data-revealed", "1")
        assert code_el.inner_text() == codes[key_id], "not the delivered key"
        fresh(session)
        [consent] = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "order.delivery_consent", AuditEvent.object_id == number
            )
        ).all()
        assert consent.ip and consent.user_agent and "Chrome" in consent.user_agent

        # a reload shows the revealed key again, for its owner
        page.reload()
        expect(code_el).to_have_attribute("data-revealed", "1")
        steps.shot("key-after-reload")

        page.click("#receipt-link")
        page.wait_for_url("**/receipts/**")
        expect(page.locator("#receipt-vat")).to_have_text("VAT 19%: €3.99")
        expect(page.locator("#receipt-total")).to_have_text("Total paid: €24.99")
        steps.shot("receipt")
        pdf = page.request.get(f"{shop.url}/api/receipts/{number}.pdf")
        assert pdf.status == 200 and pdf.body().startswith(b"%PDF-")
        assert pdf.headers["content-type"] == "application/pdf"

        page.goto(shop.url + "/keys")
        entry = page.locator(".library-key", has_text=title)
        expect(entry).to_be_visible()
        entry.locator(".library-reveal").click()
        expect(page.locator(f"#code-{key_id}")).to_have_attribute("data-revealed", "1")
        assert page.locator(f"#code-{key_id}").inner_text() == codes[key_id]
        steps.shot("my-keys")
        fresh(session)
        reveals = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "key.reveal", AuditEvent.object_id == key_id
            )
        ).all()
        assert len(reveals) >= 3  # the first reveal, after the reload, from My keys

        page.goto(shop.url + "/legal/withdrawal")
        expect(page.locator("#legal-title")).to_have_text("Right of withdrawal")
    context.close()
    if os.environ.get("KEYSHOP_SCREENSHOTS"):  # the README's pictures, on request
        take_readme_screenshots(shop, browser, session)


def take_readme_screenshots(shop, browser, session) -> None:
    """The README's storefront pictures (desktop and phone) of the demo catalogue, taken
    on request (KEYSHOP_SCREENSHOTS=1) into docs/screenshots/."""
    from core.services.demo import seed_demo

    seed_demo(session=session, keys_per_product=1)
    session.commit()
    target = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for phone, name in ((False, "desktop"), (True, "phone")):
        context, page = new_page(browser, phone=phone)
        page.goto(shop.url + "/")
        page.locator("#featured .product-card").first.wait_for()
        page.screenshot(path=str(target / f"storefront-{name}.png"), full_page=False)
        page.locator("#featured .product-card").first.click()
        page.locator("#add-to-cart").wait_for()
        page.screenshot(path=str(target / f"product-{name}.png"), full_page=False)
        context.close()


def test_accounts_sign_up_sign_in_and_no_one_else_sees_the_order(shop, browser, session):
    from playwright.sync_api import expect

    product = make_product(
        session,
        title=f"Harbor Lights {secrets.token_hex(2)}",
        slug=f"harbor-{secrets.token_hex(3)}",
    )
    make_keys(session, product, 2)
    password = "correct horse battery staple"

    def sign_up(page, email: str) -> None:
        page.goto(shop.url + "/signup")
        wait_loaded(page, "/signup")
        page.fill("#field-email", email)
        page.fill("#field-password", password)
        page.fill("#field-password_again", password)
        page.click("#signup-submit")
        # the same answer for any address (no enumeration); the password signs in meanwhile
        expect(page.get_by_text("We have sent a message to")).to_be_visible()
        page.goto(shop.url + "/signin")
        wait_loaded(page, "/signin")
        page.fill("#field-email", email)
        page.fill("#field-password", password)
        page.click("#signin-submit")
        page.wait_for_url(ACCOUNT_PAGE)
        expect(page.locator("#account-email")).to_contain_text(email)

    alice_email, bob_email = (
        f"alice-{secrets.token_hex(3)}@example.com",
        f"bob-{secrets.token_hex(3)}@example.com",
    )
    alice_ctx, alice = new_page(browser, phone=True)
    with Steps(alice, "accounts") as steps:
        sign_up(alice, alice_email)
        steps.shot("alice-signed-up")

        alice.goto(f"{shop.url}/games/{product.slug}")
        alice.click("#add-to-cart")
        expect(alice.locator("#cart-count")).to_have_text("1")
        alice.goto(shop.url + "/cart")
        expect(alice.locator("#checkout-email")).to_have_value(alice_email)
        alice.click("#checkout")
        alice.wait_for_url("**/pay/**")
        number = alice.url.split("/pay/")[1].split("?")[0]
        alice.click("#pay-button")
        alice.wait_for_url("**/orders/**")
        steps.shot("alice-order")

        # signed out and in again, Alice finds the order in her history without any link
        alice.goto(shop.url + "/account")
        wait_loaded(alice, "/account")
        alice.click("#signout")
        alice.wait_for_url(shop.url + "/")
        alice.goto(shop.url + "/signin")
        wait_loaded(alice, "/signin")
        alice.fill("#field-email", alice_email)
        alice.fill("#field-password", "wrong password!!")
        alice.click("#signin-submit")
        expect(alice.get_by_role("alert")).to_be_visible()
        alice.fill("#field-password", password)
        alice.click("#signin-submit")
        alice.wait_for_url(ACCOUNT_PAGE)
        expect(alice.locator("#order-history")).to_contain_text(number)
        steps.shot("alice-history")
        alice.goto(f"{shop.url}/orders/{number}")
        expect(alice.locator("#order-number")).to_contain_text(number)

        # Bob, signed in, can neither open Alice's order nor see it in his history
        bob_ctx, bob = new_page(browser)
        sign_up(bob, bob_email)
        expect(bob.locator("#no-orders")).to_be_visible()
        bob.goto(f"{shop.url}/orders/{number}")
        expect(bob.get_by_text("Order not found")).to_be_visible()
        Steps(bob, "accounts-bob").shot("bob-cannot-open-alices-order")

        # Alice's account lists where she is signed in; she signs out everywhere
        alice.goto(shop.url + "/account")
        expect(alice.locator("#sessions")).to_contain_text("this browser")
        alice.click("#signout-everywhere")
        alice.wait_for_url(shop.url + "/")
        alice.goto(shop.url + "/account")
        alice.wait_for_url("**/signin**")

        # Bob deletes his account with his password; he can no longer sign in
        bob.goto(shop.url + "/account")
        wait_loaded(bob, "/account")
        bob.fill("#delete-password", password)
        bob.click("#delete-account")
        bob.wait_for_url(shop.url + "/")
        bob.goto(shop.url + "/signin")
        wait_loaded(bob, "/signin")
        bob.fill("#field-email", bob_email)
        bob.fill("#field-password", password)
        bob.click("#signin-submit")
        expect(bob.get_by_role("alert")).to_contain_text("do not match")
    bob_ctx.close()
    alice_ctx.close()
