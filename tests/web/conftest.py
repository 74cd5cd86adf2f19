"""One real shop for every browser test of the pass, and one Chromium per test module.

``shop`` is ``keyshop run --no-worker`` on this run's database, booted once (the Reflex
prod build is the slow part) and shared; each test makes its own products, customers and
e-mail addresses, so tests stay independent of each other and of their order. The
settings below are the few the HTTP security tests need; the others do not depend on
them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Shop
from tests.support.shop import SHARED_SHOP_ENV, running_shop


@pytest.fixture(scope="session")
def shop(test_settings, tmp_path_factory) -> Iterator[Shop]:
    workdir = tmp_path_factory.mktemp("shop")
    with running_shop(test_settings, workdir, **SHARED_SHOP_ENV) as (url, env):
        shop = Shop(url, env, workdir / "shop.log")
        try:
            yield shop
        finally:
            shop.stop_workers()


@pytest.fixture(scope="module")
def browser():
    """Per module: Playwright's sync API keeps an event loop running in this thread while
    it is open, and the state tests of later modules run coroutines with asyncio.run."""
    from playwright.sync_api import expect, sync_playwright

    # expect() waits for its condition (5 s by default); a loaded 2-core machine needs
    # longer for a websocket round trip, never a sleep
    expect.set_options(timeout=15_000)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
