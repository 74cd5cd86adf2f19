"""``keyshop run``: the whole shop comes up on one port, prints its URL, and Ctrl-C stops
every process it started."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING
from tests.support.shop import free_port

ROOT = Path(__file__).resolve().parents[2]

# Process supervision does not depend on the database: the SQLite pass runs it.
pytestmark = [pytest.mark.timeout(900), pytest.mark.one_pass]


def test_run_serves_the_storefront_and_ctrl_c_stops_everything(test_settings, tmp_path):
    port, sim_port = free_port(), free_port()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
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
        proc = subprocess.Popen(
            [sys.executable, "-m", "keyshop", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
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


# -- processes that die together --------------------------------------------------------


def shop_env(test_settings, tmp_path, sim_port: int) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    return {
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


def start_shop(
    test_settings, tmp_path, *args: str, ignore_sigint: bool = False
) -> tuple[subprocess.Popen, Path, int, int]:
    """``keyshop run --no-worker`` in a session of its own (as a script or a supervisor
    would start it), until it says it is running. Returns the process, its log and ports.
    ``ignore_sigint``: started the way a non-interactive shell starts ``keyshop run &``,
    with SIGINT ignored (inherited by the program)."""
    port, sim_port = free_port(), free_port()
    log = tmp_path / "run.log"
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keyshop", "run", "--port", str(port), "--no-worker", *args],
            cwd=ROOT,
            env=shop_env(test_settings, tmp_path, sim_port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=ignore,
        )
    deadline = time.monotonic() + 600
    while "keyshop is running at" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_tree(proc)
            pytest.fail(f"keyshop run did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    return proc, log, port, sim_port


def kill_tree(proc: subprocess.Popen) -> None:
    """Clean-up after a failed test: every process the shop started, by pid."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def listeners(procs: list[psutil.Process]) -> set[int]:
    ports = set()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            ports |= {c.laddr.port for c in p.net_connections() if c.status == psutil.CONN_LISTEN}
    return ports


def assert_all_gone(procs: list[psutil.Process], log: Path, *, within: float) -> None:
    """Poll until none of ``procs`` runs any more (zombies count as gone), or fail."""
    deadline = time.monotonic() + within
    while True:
        alive = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive:
            return
        if time.monotonic() > deadline:
            described = [(p.pid, " ".join(p.cmdline())[:100]) for p in alive if p.is_running()]
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            pytest.fail(
                f"still running {within:.0f} s later: {described}\n{log.read_text()[-2000:]}"
            )
        time.sleep(0.2)


def test_sigkill_of_run_leaves_none_of_its_processes_behind(test_settings, tmp_path):
    proc, log, port, sim_port = start_shop(test_settings, tmp_path)
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert {port, sim_port} <= listeners(descendants)
        assert any(len(p.children()) for p in descendants), (
            "expected Reflex to have processes of its own"
        )
        proc.kill()
        proc.wait(timeout=10)
        assert_all_gone(descendants, log, within=20)
    finally:
        kill_tree(proc)


@pytest.mark.parametrize(
    "to_group, ignore_sigint",
    [(True, False), (False, False), (True, True)],
    ids=["sigint-to-the-group", "sigterm-to-the-parent", "sigint-to-a-script's-background-job"],
)
def test_a_signal_to_run_or_its_group_stops_everything(
    test_settings, tmp_path, to_group, ignore_sigint
):
    proc, log, _port, _sim = start_shop(test_settings, tmp_path, ignore_sigint=ignore_sigint)
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
        if to_group:  # a script's `kill -INT -PGID`, or Ctrl-C in a terminal
            os.killpg(proc.pid, signal.SIGINT)
        else:  # a supervisor's stop
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
        assert_all_gone(descendants, log, within=30)
    finally:
        kill_tree(proc)


@pytest.mark.parametrize("which", ["web", "simulators"])
def test_a_port_in_use_is_one_clear_line(test_settings, tmp_path, which):
    port, sim_port = free_port(), free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port if which == "web" else sim_port))
    holder.listen()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "keyshop", "run", "--port", str(port), "--no-worker"],
            cwd=ROOT,
            env=shop_env(test_settings, tmp_path, sim_port),
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
    finally:
        holder.close()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.strip()
    busy, setting = (port, "--port") if which == "web" else (sim_port, "KEYSHOP_SIMULATOR_PORT")
    assert line.startswith("keyshop: ") and f"port {busy} " in line and setting in line, line
