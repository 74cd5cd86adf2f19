"""What the browser benchmarks share: a demo shop started as a newcomer starts it, and
Debian's Chromium launched headless.

``demo_shop(prefix)`` migrates a scratch embedded database under a temporary
``KEYSHOP_VAR_DIR``, loads the demo catalogue, runs ``keyshop run --no-worker`` (Reflex in
prod mode on one port) in a process group of its own, waits for ``/api/health`` and
yields the shop's base URL; on the way out it stops the group and removes the directory.
"""

from __future__ import annotations

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("KEYSHOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": percentile(values, 0.95), "max": max(values)}


def viewport(phone: bool) -> dict[str, int]:
    return {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}


def launch_chromium(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@contextmanager
def demo_shop(prefix: str) -> Iterator[str]:
    var = Path(tempfile.mkdtemp(prefix=f"keyshop-bench-{prefix}-"))
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
        KEYSHOP_QUEUE_NAME=f"bench-{prefix}-{secrets.token_hex(3)}",
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
        yield base
    finally:
        if shop.poll() is None:
            os.killpg(shop.pid, signal.SIGTERM)
            try:
                shop.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(shop.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(var, ignore_errors=True)
