"""``keyshop run``: the whole shop comes up on one port, prints its URL, and Ctrl-C stops
every process it started."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING
from tests.web.test_e2e import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(900)


def test_run_serves_the_storefront_and_ctrl_c_stops_everything(test_settings, tmp_path):
    port, sim_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))}
    env = {
        **base,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": test_settings.effective_database_url,
        "QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
        "KEYSHOP_QUEUE_NAME": f"run-{secrets.token_hex(3)}",
        "KEYSHOP_VAR_DIR": str(tmp_path / "var"),
        "KEYSHOP_KEYRING": TEST_KEYRING,
        "KEYSHOP_FINGERPRINT_KEY": TEST_FINGERPRINT_KEY,
        "KEYSHOP_SIMULATOR_PORT": str(sim_port),
    }
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "keyshop", "run", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        url = None
        while url is None:
            assert proc.poll() is None, f"keyshop run stopped:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no URL printed:\n{log.read_text()[-3000:]}"
            found = re.search(r"keyshop is running at (http://\S+)", log.read_text())
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert url == f"http://127.0.0.1:{port}"
        health = httpx.get(url + "/api/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        home = httpx.get(url + "/", timeout=10)
        assert home.status_code == 200 and "<html" in home.text.lower()
        # the simulators, the worker and the web server all run under it
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(c.cmdline()) for c in children]
        assert any("simulate-providers" in c for c in commands)
        assert any(" worker" in c for c in commands)
        assert any("reflex" in c for c in commands)

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(timeout=60)
        _gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
