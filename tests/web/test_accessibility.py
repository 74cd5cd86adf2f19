"""WCAG 2.1 AA on the main journeys, checked by axe-core in Debian's Chromium against the
running shop (``keyshop run``): every page of a purchase and of an account, with no
serious or critical violation; plus what axe cannot judge alone: one ``h1`` per page,
landmarks, a visible focus ring on product cards, a label on every form field."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.factories import make_keys, make_product
from tests.support.browser import accessibility_problems, wait_loaded

pytestmark = pytest.mark.timeout(900)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def shop(shop) -> str:
    """The pass's one shop (tests/web/conftest.py), by its URL."""
    return shop.url


def check(page: Any, name: str, problems: dict[str, Any]) -> None:
    """Run axe and the structural checks on ``page``; collect what fails under ``name``."""
    found = accessibility_problems(page)
    if found:
        problems[name] = found


def test_main_journeys_pass_axe(shop, browser, session):
    from playwright.sync_api import expect

    title = f"Lantern Reach {secrets.token_hex(2).upper()}"
    product = make_product(
        session,
        title=title,
        slug=f"lantern-reach-{secrets.token_hex(3)}",
        description="Carry the last lantern through the reach.",
        featured=True,
        price_minor=1999,
    )
    make_keys(session, product, 3)
    problems: dict[str, Any] = {}
    # an English browser in Germany: euros, so the euro-priced product is on sale (issue
    # #14), and the English pages (the German ones: test_german.py)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-DE")
    page = context.new_page()
    page.set_default_timeout(30_000)

    page.goto(shop + "/")
    expect(page.locator("#featured .product-card", has_text=title)).to_be_visible()
    check(page, "home", problems)

    # a product card shows where the keyboard is
    page.focus(f".product-card[data-slug='{product.slug}'] a")
    outline = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }"""
    )
    visible = (outline[0] != "none" and outline[1] != "0px") or outline[2] != "none"
    assert visible, f"no focus ring on a product card: {outline}"

    page.goto(shop + "/games")
    expect(page.locator("#results .product-card").first).to_be_visible()
    check(page, "catalogue", problems)

    page.goto(f"{shop}/games/{product.slug}")
    wait_loaded(page, f"/games/{product.slug}")
    expect(page.locator("#product-title")).to_have_text(title)
    expect(page).to_have_title(f"{title} (Steam) · keyshop")  # the app keeps the server's
    check(page, "product", problems)

    gone = make_product(session, title=f"Gone {title}", slug=f"gone-{product.slug}")
    page.goto(f"{shop}/games/{gone.slug}")
    wait_loaded(page, f"/games/{gone.slug}")  # the app's page, not the server's or the last
    expect(page.locator("#stock-alert-email")).to_be_visible()
    check(page, "product out of stock", problems)

    page.goto(f"{shop}/games/{product.slug}")
    expect(page.locator("#product-title")).to_have_text(title)
    page.click("#add-to-cart")
    expect(page.locator("#cart-count")).to_have_text("1")
    page.goto(shop + "/cart")
    expect(page.locator(".cart-line", has_text=title)).to_be_visible()
    check(page, "cart", problems)
    page.fill("#checkout-email", f"reach-{secrets.token_hex(3)}@example.com")
    check(page, "checkout", problems)

    page.click("#checkout")
    page.wait_for_url("**/pay/**")
    expect(page.locator("#pay-button")).to_be_visible()
    check(page, "payment", problems)

    page.click("#pay-button")
    page.wait_for_url("**/orders/**")
    expect(page.locator("#order-status")).to_be_visible()
    check(page, "order", problems)

    email = f"reach-{secrets.token_hex(3)}@example.com"
    page.goto(shop + "/signup")
    expect(page.locator("#signup-submit")).to_be_visible()
    wait_loaded(page, "/signup")
    check(page, "sign-up", problems)
    page.fill("#field-email", email)
    page.fill("#field-password", PASSWORD)
    page.fill("#field-password_again", PASSWORD)
    page.click("#signup-submit")
    expect(page.get_by_text("We have sent a message to")).to_be_visible()

    page.goto(shop + "/signin")
    expect(page.locator("#signin-submit")).to_be_visible()
    wait_loaded(page, "/signin")
    check(page, "sign-in", problems)
    page.fill("#field-email", email)
    page.fill("#field-password", PASSWORD)
    page.click("#signin-submit")
    page.wait_for_url("**/account**")
    expect(page.locator("#account-email")).to_contain_text(email)
    check(page, "account", problems)

    page.goto(shop + "/no-such-page")
    expect(page.locator("#not-found-games")).to_be_visible()
    check(page, "not found", problems)
    context.close()
    assert not problems, json.dumps(problems, indent=1)
