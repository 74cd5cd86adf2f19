"""Benchmark: the storefront's home page ready in the browser.

    .venv/bin/python bench/home_page.py [--loads 20] [--phone]

Starts the shop the way a newcomer does (``keyshop run``: Reflex in prod mode on one
port) on a scratch embedded database under a temporary ``KEYSHOP_VAR_DIR`` loaded with
the demo catalogue, then opens ``/`` ``--loads`` times in Debian's Chromium (headless,
driven by Playwright), each time in a fresh browser context (no cache, no cookies, no
local storage: a first visit). For every load it records, from the navigation start:

- ``fcp_ms``: the browser's own first-contentful-paint entry;
- ``grid_ms``: when the first product card of the "Featured" grid is in the DOM with its
  title rendered (a MutationObserver installed before any page script runs), i.e. the
  state came over the websocket and the product grid rendered.

The first load (which also warms the server's imports and caches) is reported on its own
and left out of the percentiles. Prints one JSON line; the goal is grid_ms p95 ≤ 1,500.
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

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("KEYSHOP_CHROMIUM", "/usr/bin/chromium")

OBSERVER = """
(() => {
  window.__gridAt = null;
  const check = () => {
    if (window.__gridAt !== null) return;
    const card = document.querySelector('#featured .product-card .product-title');
    if (card && card.textContent.trim()) window.__gridAt = performance.now();
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument(
        "--phone", action="store_true", help="a 390x844 viewport instead of 1280x900"
    )
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="keyshop-bench-home-"))
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
        KEYSHOP_QUEUE_NAME=f"bench-home-{secrets.token_hex(3)}",
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
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 600
        while True:
            if shop.poll() is not None:
                sys.exit("keyshop run stopped:\n" + (var / "shop.log").read_text()[-3000:])
            try:
                if httpx.get(url + "api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the shop did not come up")
            time.sleep(1)

        from playwright.sync_api import sync_playwright

        loads: list[dict[str, float]] = []
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
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                page.add_init_script(OBSERVER)
                page.goto(url, wait_until="commit")
                page.wait_for_function("window.__gridAt !== null", timeout=30_000)
                page.wait_for_function(
                    "performance.getEntriesByName('first-contentful-paint').length > 0",
                    timeout=30_000,
                )
                fcp = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"
                )
                grid = page.evaluate("window.__gridAt")
                loads.append({"fcp_ms": round(fcp, 1), "grid_ms": round(grid, 1)})
                context.close()
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

    first, rest = loads[0], loads[1:]
    fcp, grid = [x["fcp_ms"] for x in rest], [x["grid_ms"] for x in rest]
    print(
        json.dumps(
            {
                "bench": "home_page",
                "viewport": "390x844" if args.phone else "1280x900",
                "loads": len(rest),
                "first_load": first,
                "fcp_ms": {
                    "p50": statistics.median(fcp),
                    "p95": percentile(fcp, 0.95),
                    "max": max(fcp),
                },
                "grid_ms": {
                    "p50": statistics.median(grid),
                    "p95": percentile(grid, 0.95),
                    "max": max(grid),
                },
                "goal_grid_p95_ms": 1500,
                "goal_met": percentile(grid, 0.95) <= 1500,
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
