"""Benchmark: a product page filled by the server against today's empty shell.

    .venv/bin/python bench/product_page.py [--loads 20] [--phone]

Starts ``keyshop run`` (Reflex in prod mode on one port) on a scratch embedded database
loaded with the demo catalogue, then opens one product page ``--loads`` times per
variant in Debian's Chromium (headless, Playwright), each time in a fresh browser context
(a first visit), the variants alternating so both see the same machine:

- ``filled``: ``/games/<slug>`` as the shop now serves it (web/api/pages.py fills the
  shell with the product's metadata and content before sending it);
- ``shell``: the same address as the server sent it before, Reflex's empty SPA shell
  (asked for with the ``x-keyshop-shell: 1`` header, which web/api/pages.py honours by
  leaving the page alone).

For every load it records, from the navigation start: ``ttfb_ms`` (the response's first
byte), ``fcp_ms`` (first-contentful-paint) and ``app_ms`` (the app rendered
``#product-title`` with the product's title: the state came over the websocket). The
first load of each variant warms caches and is left out. Prints one JSON line with
p50/p95 per variant and the filled/shell ratio of each p50: the goal is that filling
does not slow first paint (fcp ratio ≤ 1.0) nor the app (app ratio ≤ 1.1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._browser import demo_shop, launch_chromium, summary, viewport

OBSERVER = """
(() => {
  window.__appAt = null;
  const check = () => {
    if (window.__appAt !== null) return;
    const title = document.querySelector('#ks-main #product-title');
    if (title && title.textContent.trim()) window.__appAt = performance.now();
  };
  new MutationObserver(check).observe(document, {childList: true, subtree: true, characterData: true});
})();
"""


def load(browser: Any, url: str, viewport: dict[str, int], *, baseline: bool) -> dict[str, float]:
    headers = {"x-keyshop-shell": "1"} if baseline else {}
    context = browser.new_context(viewport=viewport, extra_http_headers=headers)
    page = context.new_page()
    page.add_init_script(OBSERVER)
    page.goto(url, wait_until="commit")
    try:
        page.wait_for_function("window.__appAt !== null", timeout=30_000)
    except Exception:
        print(
            "shell" if baseline else "filled",
            page.url,
            page.inner_text("body")[:1500],
            file=sys.stderr,
        )
        raise
    page.wait_for_function(
        "performance.getEntriesByName('first-contentful-paint').length > 0", timeout=30_000
    )
    timings = page.evaluate(
        """() => ({
            fcp: performance.getEntriesByName('first-contentful-paint')[0].startTime,
            ttfb: performance.getEntriesByType('navigation')[0]?.responseStart ?? 0,
            app: window.__appAt,
        })"""
    )
    context.close()
    return {k + "_ms": round(v, 1) for k, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--phone", action="store_true", help="390x844 instead of 1280x900")
    args = parser.parse_args()

    results: dict[str, list[dict[str, float]]] = {"filled": [], "shell": []}
    with demo_shop("product") as base:
        sitemap = httpx.get(base + "/sitemap.xml", timeout=10).text
        url = next(part.split("</loc>")[0] for part in sitemap.split("<loc>") if "/games/" in part)

        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            for _ in range(args.loads + 1):
                results["filled"].append(load(browser, url, viewport(args.phone), baseline=False))
                results["shell"].append(load(browser, url, viewport(args.phone), baseline=True))
            browser.close()

    report: dict[str, Any] = {"bench": "product_page", "loads": args.loads, "url_path": ""}
    report["url_path"] = "/games/" + url.split("/games/")[1]
    for variant, loads in results.items():
        rest = loads[1:]
        report[variant] = {
            metric: summary([x[metric] for x in rest]) for metric in ("ttfb_ms", "fcp_ms", "app_ms")
        }
    ratio = {
        metric: round(report["filled"][metric]["p50"] / max(report["shell"][metric]["p50"], 0.1), 3)
        for metric in ("ttfb_ms", "fcp_ms", "app_ms")
    }
    report["ratio_filled_to_shell_p50"] = ratio
    report["goal_met"] = ratio["fcp_ms"] <= 1.0 and ratio["app_ms"] <= 1.1
    report["viewport"] = "390x844" if args.phone else "1280x900"
    report["load_average"] = os.getloadavg()[0]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
