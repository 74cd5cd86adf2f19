"""The real-consumer ``queue`` fixture for every test module here: settings shared by
the test and its ``keyshop worker`` processes (Redis on the PostgreSQL pass, the
SQLite-backed queue on the SQLite pass), and the queue plugged into ``core.jobs``."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import config
from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING, is_postgres_run
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue(test_settings, sim_server, tmp_path):
    """Settings shared by this test and its worker processes, and the queue plugged in."""
    import tasks

    if is_postgres_run():
        queue_url = os.environ.get("KEYSHOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    else:
        queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    env = {
        "DATABASE_URL": test_settings.effective_database_url,
        "QUEUE_URL": queue_url,
        "KEYSHOP_QUEUE_NAME": f"keyshop-test-{secrets.token_hex(4)}",
        "KEYSHOP_VAR_DIR": str(test_settings.var_dir),
        "KEYSHOP_KEYRING": TEST_KEYRING,
        "KEYSHOP_FINGERPRINT_KEY": TEST_FINGERPRINT_KEY,
        "KEYSHOP_SIMULATOR_PORT": str(sim_server.port),
        "KEYSHOP_PROVIDER_TIMEOUT": "5",
        "KEYSHOP_FULFILMENT_LEASE_SECONDS": "2",
        "KEYSHOP_RECONCILE_AFTER_SECONDS": "1",
        "KEYSHOP_WORKER_STALE_SECONDS": "4",
        "KEYSHOP_LOG_LEVEL": "INFO",
    }
    settings = config.load_settings(**env)
    config.use_settings(settings)
    huey = tasks.configure(settings)
    huey.flush()
    from core import jobs

    jobs.set_dispatcher(tasks._dispatch)
    sim_server.reset()
    workers: list[subprocess.Popen] = []

    class Queue:
        def __init__(self):
            self.env = env
            self.settings = settings
            self.logs = tmp_path / "worker.log"

        def start_worker(self) -> subprocess.Popen:
            base = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "keyshop", "worker", "-w", "2", "--no-periodic"],
                cwd=ROOT,
                env={**base, **env, "PYTHONPATH": str(ROOT)},
                start_new_session=True,
                stdout=open(self.logs, "a"),  # noqa: SIM115 (the child owns it)
                stderr=subprocess.STDOUT,
            )
            workers.append(proc)
            return proc

        def wait_warm(self) -> None:
            """Until every worker started has logged the end of its warm-up."""
            wait_for(
                lambda: (
                    self.logs.exists()
                    and self.logs.read_text().count("worker warmed up") >= len(workers)
                ),
                what="the worker's warm-up",
                interval=0.05,
            )

    q = Queue()
    yield q
    if q.logs.exists():  # shown by pytest when the test failed
        print("---- worker log ----\n" + q.logs.read_text()[-6000:])
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    huey.flush()
    tasks.configure(immediate=True)
    jobs.set_dispatcher(None)
    config.use_settings(test_settings)
    sim_server.reset()
