"""More end to end in Debian's Chromium against ``keyshop run``: password reset by the
e-mailed link, a faulty-key report from the key portal, the catalogue's filters and
paging, and the shop on a phone-sized screen.

The shop, the browser, pages and screenshots come from :mod:`tests.web.test_e2e` (the
same ``keyshop run --no-worker`` on this run's database; a test that needs orders
delivered starts the worker). Screenshots land in ``test-artifacts/e2e/<backend>/``.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pytest
from sqlmodel import select

from core.mail import list_outbox, read_outbox_message
from core.models import KeyReport
from tests.factories import fresh, make_keys, make_product
from tests.support.browser import ACCOUNT_PAGE, Shop, Steps, new_page, wait_loaded

pytestmark = pytest.mark.timeout(900)

PRICE = re.compile(r"€(\d+\.\d\d)")


def ensure_worker(shop: Shop) -> None:
    """One Huey consumer for the shared shop (fulfilment, order and account e-mails)."""
    shop.ensure_worker()


def wait_for_mail(shop: Shop, to: str, subject_part: str, *, timeout: float = 30.0):
    outbox = Path(shop.env["KEYSHOP_VAR_DIR"]) / "outbox"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in list_outbox(outbox):
            if item.to == to and subject_part in item.subject:
                return read_outbox_message(item.path)
        time.sleep(0.25)
    pytest.fail(f"no e-mail to {to} about {subject_part!r} in {outbox}")


def sign_up(page, shop: Shop, email: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto(shop.url + "/signup")
    wait_loaded(page, "/signup")
    page.fill("#field-email", email)
    page.fill("#field-password", password)
    page.fill("#field-password_again", password)
    page.click("#signup-submit")
    # the same answer for any address (no enumeration); the password signs in meanwhile
    expect(page.get_by_text("We have sent a message to")).to_be_visible()
    sign_in(page, shop, email, password)
    page.wait_for_url(ACCOUNT_PAGE)
    expect(page.locator("#account-email")).to_contain_text(email)


def sign_in(page, shop: Shop, email: str, password: str) -> None:
    page.goto(shop.url + "/signin")
    wait_loaded(page, "/signin")
    page.fill("#field-email", email)
    page.fill("#field-password", password)
    page.click("#signin-submit")


def buy_as_guest(page, shop: Shop, slug: str, email: str, steps: Steps | None = None) -> str:
    """Product page → cart → checkout → test payment → order page; returns the order
    number (the page is left on the order page, opened with its access link)."""
    from playwright.sync_api import expect

    page.goto(f"{shop.url}/games/{slug}")
    page.click("#add-to-cart")
    expect(page.locator("#cart-count")).to_have_text("1")
    page.click("#nav-cart")
    expect(page.locator(".cart-line")).to_have_count(1)
    page.fill("#checkout-email", email)
    if steps:
        steps.shot("cart")
    page.click("#checkout")
    page.wait_for_url("**/pay/**")
    expect(page.locator("#test-mode-banner")).to_be_visible()
    if steps:
        steps.shot("test-payment")
    page.click("#pay-button")
    page.wait_for_url("**/orders/**")
    return page.url.split("/orders/")[1].split("?")[0]


def fits_the_screen(page) -> tuple[int, int]:
    """(document width, window width): the page scrolls sideways when the first is larger."""
    width, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(width), int(window)


# -- password reset ------------------------------------------------------------------------


def test_password_reset_by_the_emailed_link(shop, browser, session):
    from playwright.sync_api import expect

    email = f"rita-{secrets.token_hex(3)}@example.com"
    old_password, new_password = "first password 123", "second password 456"
    ensure_worker(shop)  # account e-mails are sent from the queue, never in the request
    context, page = new_page(browser)
    with Steps(page, "password-reset") as steps:
        sign_up(page, shop, email, old_password)
        page.click("#signout")
        page.wait_for_url(shop.url + "/")

        page.goto(shop.url + "/signin")
        wait_loaded(page, "/signin")
        page.get_by_role("link", name="Forgot your password?").click()
        page.wait_for_url("**/forgot-password")
        wait_loaded(page, "/forgot-password")
        page.fill("#field-email", email)
        page.click("#forgot-submit")
        expect(page.get_by_text("If an account uses that address")).to_be_visible()
        steps.shot("reset-requested")

        message = wait_for_mail(shop, email, "new password")
        text = message.get_body(preferencelist=("plain",)).get_content()
        [link] = [w for w in text.split() if "/reset-password?token=" in w]
        assert link.startswith(shop.url + "/reset-password?token=")
        page.goto(link)
        wait_loaded(page, "/reset-password")
        page.fill("#field-password", new_password)
        page.fill("#field-password_again", new_password)
        steps.shot("new-password")
        page.click("#reset-submit")
        page.wait_for_url(ACCOUNT_PAGE)
        expect(page.locator("#account-email")).to_contain_text(email)
        expect(page.locator("#nav-account")).to_be_visible()
        steps.shot("signed-in-after-reset")

        page.click("#signout")
        page.wait_for_url(shop.url + "/")
        sign_in(page, shop, email, old_password)
        expect(page.get_by_role("alert")).to_contain_text("do not match")
        assert "/signin" in page.url
        steps.shot("old-password-refused")
        page.fill("#field-password", new_password)
        page.click("#signin-submit")
        page.wait_for_url(ACCOUNT_PAGE)
        expect(page.locator("#account-email")).to_contain_text(email)

        # the link worked once
        page.goto(link)
        wait_loaded(page, "/reset-password")
        page.fill("#field-password", "third password 789")
        page.fill("#field-password_again", "third password 789")
        page.click("#reset-submit")
        expect(page.get_by_role("alert")).to_contain_text("already used")
        steps.shot("link-used-twice")
    context.close()


# -- two-factor sign-in ----------------------------------------------------------------------


def test_two_factor_sign_in_set_up_and_used(shop, browser, session):
    """Set up TOTP from the account page (the key comes into the page, not the state),
    then sign in with password and code; a wrong code is refused."""
    import pyotp
    from playwright.sync_api import expect

    email = f"tess-{secrets.token_hex(3)}@example.com"
    password = "fourth password 321"
    context, page = new_page(browser)
    with Steps(page, "two-factor") as steps:
        sign_up(page, shop, email, password)
        page.click("#two-factor-start")
        expect(page.locator("#totp-qr svg")).to_be_visible()
        secret = page.locator("#totp-secret").text_content() or ""
        assert len(secret) >= 16
        steps.shot("qr-code")
        totp = pyotp.TOTP(secret)
        page.fill("#two-factor-code", totp.now())
        page.click("#two-factor-confirm")
        expect(page.locator("#recovery-codes")).to_contain_text("Recovery codes")
        expect(page.locator("#two-factor-on")).to_be_visible()
        assert (page.locator("#totp-secret").text_content() or "") == ""
        steps.shot("two-factor-on")

        page.click("#signout")
        page.wait_for_url(shop.url + "/")
        sign_in(page, shop, email, password)
        expect(page.get_by_role("alert")).to_contain_text("6-digit code")
        page.fill("#field-code", "000000")
        page.click("#signin-submit")
        expect(page.get_by_role("alert")).to_contain_text("not right")
        # a fresh step, so the enrolment's code is not replayed
        page.fill("#field-code", totp.at(time.time() + 30))
        page.click("#signin-submit")
        page.wait_for_url(ACCOUNT_PAGE)
        expect(page.locator("#account-email")).to_contain_text(email)
        steps.shot("signed-in-with-code")
    context.close()


# -- faulty-key report -----------------------------------------------------------------------


def test_a_customer_reports_a_faulty_key_from_the_portal(shop, browser, session):
    from playwright.sync_api import expect

    product = make_product(
        session, title=f"Ember Falls {secrets.token_hex(2)}", slug=f"ember-{secrets.token_hex(3)}"
    )
    make_keys(session, product, 2)
    ensure_worker(shop)
    context, page = new_page(browser)
    with Steps(page, "faulty-key-report") as steps:
        buy_as_guest(page, shop, product.slug, f"ivy-{secrets.token_hex(3)}@example.com")
        expect(page.locator("#order-status")).to_have_attribute(
            "data-status", "fulfilled", timeout=60_000
        )
        reveal = page.locator(".reveal-key").first
        key_id = reveal.get_attribute("data-key-id")
        assert key_id
        page.click("#consent")  # once per order, before the first reveal
        reveal.click()
        expect(page.locator(f"#code-{key_id}")).to_have_attribute("data-revealed", "1")
        steps.shot("key-revealed")

        page.locator(".report-key").first.click()
        message = "Steam says this key was already activated on another account."
        page.fill("#report-message", message)
        steps.shot("report-dialog")
        page.click("#send-report")
        expect(page.get_by_text("reported", exact=True)).to_be_visible()
        expect(page.locator(".report-key")).to_have_count(0)
        expect(page.locator("#report-message")).to_have_count(0)  # the dialog closed
        steps.shot("reported")

        fresh(session)
        reports = session.exec(select(KeyReport)).all()
        assert [(str(r.key_id), r.status, r.message) for r in reports] == [
            (key_id, "open", message)
        ]

        # still reported after a reload: it comes from the database, not the page
        page.reload()
        expect(page.get_by_text("reported", exact=True)).to_be_visible()
    context.close()


# -- catalogue filters and paging ------------------------------------------------------------


def card_prices(page) -> list[float]:
    return [
        float(PRICE.search(text).group(1))
        for text in page.locator(".product-card").all_inner_texts()
    ]


def test_catalogue_filters_sort_and_paging(shop, browser, session):
    from playwright.sync_api import expect

    word = "Zorblax"
    # 26 Steam games (every other one in stock) and 4 GOG games (the first two in stock)
    for i in range(26):
        product = make_product(
            session,
            title=f"{word} Steam {i:02d}",
            slug=f"zorblax-steam-{i:02d}-{secrets.token_hex(2)}",
            price_minor=3000 - 50 * i,
        )
        if i % 2 == 0:
            make_keys(session, product, 1)
    for i in range(4):
        product = make_product(
            session,
            title=f"{word} GOG {i}",
            slug=f"zorblax-gog-{i}-{secrets.token_hex(2)}",
            platform="GOG",
            price_minor=700 + 100 * i,
        )
        if i < 2:
            make_keys(session, product, 1)

    context, page = new_page(browser)
    with Steps(page, "catalogue-filters") as steps:
        page.goto(f"{shop.url}/games?q={word}")
        expect(page.locator("#result-count")).to_have_text("30 games")
        expect(page.locator(".product-card")).to_have_count(24)
        steps.shot("search")

        page.locator("#sort").click()
        page.get_by_role("option", name="Price: low to high").click()
        page.wait_for_url("**sort=price_asc**")
        expect(page.locator(".product-card").first).to_contain_text("€7.00")
        first_page = card_prices(page)
        assert len(first_page) == 24 and first_page == sorted(first_page)
        steps.shot("sorted-by-price")

        page.get_by_role("button", name="Next").click()
        page.wait_for_url("**page=2**")
        expect(page.locator(".product-card")).to_have_count(6)
        expect(page.get_by_text("Page 2 of 2")).to_be_visible()
        second_page = card_prices(page)
        assert second_page == sorted(second_page) and second_page[0] >= first_page[-1]
        expect(page.get_by_role("button", name="Next")).to_be_disabled()
        steps.shot("page-2")

        page.locator("#filter-platform").click()
        page.get_by_role("option", name="GOG").click()
        page.wait_for_url("**platform=GOG**")
        assert "page=" not in page.url  # a new filter starts at page 1
        expect(page.locator("#result-count")).to_have_text("4 games")
        expect(page.locator(".product-card")).to_have_count(4)
        for text in page.locator(".product-card").all_inner_texts():
            assert "GOG" in text and "Steam" not in text
        steps.shot("platform-gog")

        page.get_by_role("checkbox", name="In stock only").click()
        page.wait_for_url("**stock=1**")
        expect(page.locator("#result-count")).to_have_text("2 games")
        for text in page.locator(".product-card").all_inner_texts():
            assert "In stock" in text
        assert card_prices(page) == [7.0, 8.0]
        assert all(
            p in page.url for p in ("q=Zorblax", "platform=GOG", "stock=1", "sort=price_asc")
        )
        steps.shot("gog-in-stock")

        # the address carries the filters: opening it in a fresh tab shows the same
        other, other_page = new_page(browser)
        other_page.goto(page.url)
        expect(other_page.locator("#result-count")).to_have_text("2 games")
        expect(other_page.get_by_role("checkbox", name="In stock only")).to_be_checked()
        other.close()

        page.get_by_role("button", name="Clear filters").click()
        page.wait_for_url(shop.url + "/games")
        expect(page.locator(".product-card")).to_have_count(24)
    context.close()


# -- phone-sized screen --------------------------------------------------------------------------


def test_phone_sized_screen_has_no_sideways_scrolling(shop, browser, session):
    from playwright.sync_api import expect

    title = f"The Extraordinarily Long Chronicles of Starfall Harbour {secrets.token_hex(2)}"
    product = make_product(
        session,
        title=title,
        slug=f"long-chronicles-{secrets.token_hex(3)}",
        region="EU",
        publisher="Northern Lights Interactive Entertainment",
        activation_instructions="Open Steam, choose Games, then Activate a product on Steam, "
        "and enter the key exactly as shown.",
    )
    make_keys(session, product, 1)
    ensure_worker(shop)
    context, page = new_page(browser, phone=True)
    checked: dict[str, tuple[int, int]] = {}
    with Steps(page, "phone") as steps:
        page.goto(shop.url + "/")
        expect(page.locator("#header-search")).to_be_visible()
        expect(page.locator("#nav-cart")).to_be_visible()
        checked["home (header)"] = fits_the_screen(page)
        steps.shot("home")

        page.goto(f"{shop.url}/games/{product.slug}")
        expect(page.locator("#product-title")).to_have_text(title)
        expect(page.locator("#region-warning")).to_be_visible()
        checked["product page"] = fits_the_screen(page)
        steps.shot("product")

        buy_as_guest(page, shop, product.slug, f"phone-{secrets.token_hex(3)}@example.com", steps)
        expect(page.locator("#order-status")).to_have_attribute(
            "data-status", "fulfilled", timeout=60_000
        )
        expect(page.locator(".reveal-key")).to_have_count(1)
        checked["order page"] = fits_the_screen(page)
        steps.shot("order")

        page.click("#consent")
        page.locator(".reveal-key").click()
        expect(page.locator(".key-code")).to_have_attribute("data-revealed", "1")
        checked["order page, key revealed"] = fits_the_screen(page)
        steps.shot("order-key-revealed")

        page.goto(shop.url + "/games")
        expect(page.locator(".product-card").first).to_be_visible()
        checked["catalogue"] = fits_the_screen(page)
        steps.shot("catalogue")

    context.close()
    too_wide = {name: sizes for name, sizes in checked.items() if sizes[0] > sizes[1]}
    assert too_wide == {}, f"these pages scroll sideways on a 390 px screen: {too_wide}"
    assert all(window == 390 for _, window in checked.values())
