"""The real shop for tests over HTTP: ``keyshop run`` on this run's database, on free
ports, stopped with its whole process group afterwards (as tests/web/test_e2e.py does)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.config import Settings, reveal
from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING, is_postgres_run

ROOT = Path(__file__).resolve().parents[2]

#: The settings of the one shop the browser and HTTP tests share (tests/web/conftest.py):
#: one trusted proxy hop on loopback, and a session lifetime other than the default.
SHARED_SHOP_ENV = {"KEYSHOP_TRUSTED_PROXIES": "127.0.0.1", "KEYSHOP_SESSION_DAYS": "7"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _share_search_generation(queue_url: str, queue_name: str) -> Callable[[], None]:
    """Make this process's catalogue writes (factories, the wipe between tests) move the
    running shop's search-cache generation on, as every process of a real shop does by
    sharing its QUEUE_URL and queue name. On the PostgreSQL pass the shop counts in Redis
    under its own queue name, while the tests' settings have the default queue; on the
    SQLite pass both use the file in the shared var dir. Returns the undo."""
    from core.services.catalogue import search_cache

    if not queue_url.startswith("redis"):
        return lambda: None
    shared = search_cache._RedisGeneration(queue_url, f"{queue_name}:catalogue-generation")
    search_cache.CACHE.generation = lambda: shared  # type: ignore[method-assign]

    def undo() -> None:
        with contextlib.suppress(AttributeError):
            del search_cache.CACHE.generation

    return undo


@contextlib.contextmanager
def running_shop(
    test_settings: Settings, workdir: Path, **extra_env: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """``keyshop run --no-worker`` with ``extra_env``; yields (base URL, environment)."""
    port, sim_port = free_port(), free_port()
    logs = workdir / "shop.log"
    queue_url = (
        os.environ.get("KEYSHOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        if is_postgres_run()
        else f"sqlite:///{workdir / 'queue.db'}"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    env = {
        **base,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": test_settings.effective_database_url,
        "QUEUE_URL": queue_url,
        "KEYSHOP_QUEUE_NAME": f"keyshop-sec-{secrets.token_hex(4)}",
        "KEYSHOP_VAR_DIR": str(test_settings.var_dir),
        "KEYSHOP_KEYRING": TEST_KEYRING,
        "KEYSHOP_FINGERPRINT_KEY": TEST_FINGERPRINT_KEY,
        "KEYSHOP_SIMULATOR_PORT": str(sim_port),
        "KEYSHOP_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "KEYSHOP_PASSWORD_HASHING": "fast",
        # the same signing secret as the tests: theirs, or the file in the shared var dir
        **(
            {"KEYSHOP_SECRET_KEY": reveal(test_settings.secret_key) or ""}
            if test_settings.secret_key
            else {}
        ),
        **extra_env,
    }
    url = f"http://127.0.0.1:{port}"
    shared = _share_search_generation(env["QUEUE_URL"], env["KEYSHOP_QUEUE_NAME"])
    with open(logs, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keyshop", "run", "--port", str(port), "--no-worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 600
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"keyshop run stopped ({proc.returncode}):\n{logs.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(url + "/api/health", timeout=2).status_code == 200
                    and httpx.get(url + "/", timeout=5).status_code == 200
                ):
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the shop did not come up:\n{logs.read_text()[-4000:]}")
            time.sleep(1)
        yield url, env
    finally:
        stop(proc)
        shared()
        print("---- shop log ----\n" + logs.read_text()[-3000:])
