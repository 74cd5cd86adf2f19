"""``keyshop.supervise``: the watchdog stops the process groups ``keyshop run`` held when
``keyshop run`` vanishes, grandchildren included, and leaves released groups alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from keyshop.supervise import port_in_use

pytestmark = pytest.mark.one_pass  # independent of the pass's database

ROOT = Path(__file__).resolve().parents[2]


def group_with_a_grandchild() -> tuple[subprocess.Popen, psutil.Process]:
    """A shell in a session of its own running a sleep (its child, same group)."""
    proc = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    deadline = time.monotonic() + 10
    while not psutil.Process(proc.pid).children():
        assert time.monotonic() < deadline, "the shell never started its sleep"
        time.sleep(0.05)
    return proc, psutil.Process(proc.pid).children()[0]


def gone(procs, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in procs):
            return True
        time.sleep(0.1)
    return False


def test_the_watchdog_stops_held_groups_when_its_pipe_closes_and_spares_released_ones():
    held, held_child = group_with_a_grandchild()
    released, released_child = group_with_a_grandchild()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "keyshop.supervise"],
        stdin=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert watchdog.stdin is not None
        watchdog.stdin.write(f"+{held.pid}\n+{released.pid}\n-{released.pid}\n".encode())
        watchdog.stdin.flush()
        watchdog.stdin.close()  # what the kernel does when keyshop run is killed
        assert gone([psutil.Process(held.pid), held_child], within=60)
        assert watchdog.wait(timeout=60) == 0
        assert released.poll() is None and released_child.is_running()
    finally:
        for proc in (held, released, watchdog):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for child in (held_child, released_child):
            if child.is_running():
                child.kill()


def test_port_in_use_sees_a_listener_and_not_a_free_port():
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        assert port_in_use("127.0.0.1", busy)
        assert port_in_use("0.0.0.0", busy)
    assert not port_in_use("127.0.0.1", busy)
