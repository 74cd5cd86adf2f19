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
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("KEYSHOP_CHROMIUM", "/usr/bin/chromium")

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": percentile(values, 0.95)}


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

    var = Path(tempfile.mkdtemp(prefix="keyshop-bench-product-"))
    port, sim_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    env.update(
        KEYSHOP_VAR_DIR=str(var),
        KEYSHOP_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KEYSHOP_SIMULATOR_PORT=str(sim_port),
        KEYSHOP_QUEUE_NAME=f"bench-product-{secrets.token_hex(3)}",
        PYTHONPATH=str(ROOT),
    )
    keyshop = [sys.executable, "-m", "keyshop"]
    subprocess.run([*keyshop, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*keyshop, "seed-demo"], env=env, cwd=ROOT, check=True, capture_output=True)
    log = open(var / "shop.log", "wb")  # noqa: SIM115 (closed below)
    shop = subprocess.Popen(
        [*keyshop, "run", "--port", str(port), "--no-worker"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[dict[str, float]]] = {"filled": [], "shell": []}
    try:
        deadline = time.monotonic() + 600
        while True:
            if shop.poll() is not None:
                sys.exit("keyshop run stopped:\n" + (var / "shop.log").read_text()[-3000:])
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the shop did not come up")
            time.sleep(1)
        sitemap = httpx.get(base + "/sitemap.xml", timeout=10).text
        url = next(part.split("</loc>")[0] for part in sitemap.split("<loc>") if "/games/" in part)

        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                ],
            )
            viewport = (
                {"width": 390, "height": 844} if args.phone else {"width": 1280, "height": 900}
            )
            for _ in range(args.loads + 1):
                results["filled"].append(load(browser, url, viewport, baseline=False))
                results["shell"].append(load(browser, url, viewport, baseline=True))
            browser.close()
    finally:
        if shop.poll() is None:
            os.killpg(shop.pid, signal.SIGTERM)
            try:
                shop.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(shop.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(var, ignore_errors=True)

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
