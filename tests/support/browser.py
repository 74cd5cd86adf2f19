"""The browser tests' shared parts: the running shop as a test sees it, Chromium pages
and step screenshots (tests/web/conftest.py makes the one shop and browser per pass),
and axe-core's accessibility check (the npm package ``./dev setup`` installs into
``.tools``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import is_postgres_run
from tests.support.shop import ROOT, stop

CHROMIUM = os.environ.get("KEYSHOP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "e2e" / ("postgresql" if is_postgres_run() else "sqlite")
# a new session's cookie is set by the server, then /account loads in full (the static
# frontend answers it as /account/)
ACCOUNT_PAGE = re.compile(r".*/account/?$")
AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0/2.1 A and AA, what the storefront promises (issue #15)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_BLOCKING = ("serious", "critical")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


class Shop:
    """``keyshop run --no-worker`` for the whole test pass. Tests start Huey consumers
    when they want one (:meth:`start_worker`), or make sure none runs
    (:meth:`stop_workers`), so "delivered without a reload" is a fact a test controls."""

    def __init__(self, url: str, env: dict[str, str], logs: Path) -> None:
        self.url, self.env, self.logs = url, env, logs
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> None:
        log = open(self.logs.with_name("worker.log"), "ab")  # noqa: SIM115 (the child owns it)
        self.workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "keyshop", "worker", "-w", "2"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def ensure_worker(self) -> None:
        """One Huey consumer running (fulfilment, order and account e-mails)."""
        if not any(worker.poll() is None for worker in self.workers):
            self.start_worker()

    def stop_workers(self) -> None:
        for worker in self.workers:
            stop(worker)
        self.workers.clear()


class Steps:
    """Screenshots named by step, in order."""

    def __init__(self, page, name: str) -> None:
        self.page, self.n, self.dir = page, 0, ARTIFACTS / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:  # what the browser showed when the test failed
            self.shot("failure")

    def shot(self, step: str) -> None:
        self.n += 1
        # revealed keys are painted over: keys stay out of test artifacts, even test keys
        self.page.screenshot(
            path=str(self.dir / f"{self.n:02d}-{step}.png"),
            full_page=True,
            mask=[self.page.locator(".key-code")],
        )


def new_page(browser, *, phone: bool = False, locale: str = "en-DE"):
    """A page in a fresh browser context. ``locale`` is the browser's language (its
    Accept-Language): by default English in Germany, so the shop picks Germany (19% VAT)
    and euros and shows its English pages; ``de-DE`` is a German browser, which the shop
    sends to its German pages on the first visit (web/api/pages.py)."""
    viewport = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    context = browser.new_context(viewport=viewport, locale=locale)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on(
        "console",
        lambda msg: (
            print("BROWSER", msg.type, msg.text[:200]) if msg.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda exc: print("PAGEERROR", str(exc)[:200]))
    return context, page


def wait_loaded(page: Any, path: str) -> None:
    """Wait until the page at ``path`` has run its on_load handlers (``#ks-main`` says so
    in ``data-loaded``): a form filled and sent before that may be reset by them."""
    page.wait_for_selector(f'#ks-main[data-loaded="{path}"]', state="attached")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical WCAG A/AA violations on ``page`` as it is now, each
    as ``{"id", "impact", "help", "targets"}``."""
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run ./dev setup (it installs axe-core)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "targets": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in AXE_BLOCKING
    ]


def accessibility_problems(page: Any) -> list[Any]:
    """axe-core's serious and critical violations on ``page`` and what axe cannot judge
    alone: one ``h1``, one ``<main id=ks-main>``, the header, nav and footer landmarks,
    the server-filled copy hidden once the app rendered, and an ``<html lang>`` that is
    the page's language (``/de/...`` German)."""
    found: list[Any] = list(axe_violations(page))
    structure = page.evaluate(
        """() => ({
            h1: document.querySelectorAll('#ks-main h1, body > :not(#ks-prerender) h1').length,
            main: document.querySelectorAll('main#ks-main').length,
            header: document.querySelectorAll('header').length > 0,
            nav: document.querySelectorAll('nav').length > 0,
            footer: document.querySelectorAll('footer').length > 0,
            prerenderShown: !!document.querySelector('#ks-prerender') &&
                getComputedStyle(document.querySelector('#ks-prerender')).display !== 'none',
            lang: document.documentElement.lang,
            german: location.pathname === '/de' || location.pathname.startsWith('/de/'),
        })"""
    )
    if structure["h1"] != 1:
        found.append(f"{structure['h1']} h1 elements")
    if structure["main"] != 1:
        found.append("no single <main id=ks-main>")
    for landmark in ("header", "nav", "footer"):
        if not structure[landmark]:
            found.append(f"no <{landmark}>")
    if structure["prerenderShown"]:
        found.append("the server-filled copy is still shown after the app rendered")
    if structure["lang"] != ("de" if structure["german"] else "en"):
        found.append(f"<html lang={structure['lang']!r}> on this page")
    return found
