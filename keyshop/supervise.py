"""How ``keyshop run`` keeps the processes it starts together: they stop with it, however
it stops.

Each child (the simulators, the worker, Reflex) runs in a session and process group of
its own, so a Ctrl-C reaches only ``keyshop run``, which then stops the groups in order
(:meth:`Children.stop`: SIGTERM to every group, up to 15 s, then SIGKILL; a second
signal meanwhile skips the wait). Grandchildren, such as Reflex's server process, are in
their parent's group and stop with it.

If ``keyshop run`` itself dies without cleaning up (SIGKILL, a crash), two things stop
the children:

- every child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``
  through ``prctl``, Linux; it fires when the parent *thread* ends, so children are only
  ever started from the main thread);
- a watchdog process (``python -m keyshop.supervise``, in a session of its own so a
  signal to ``keyshop run``'s group does not reach it) reads the group ids of the
  children on a pipe only ``keyshop run`` holds. When the pipe closes without the groups
  having been released, it stops every group as above (grandchildren included) and
  exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
GRACE_SECONDS = 15.0  # what a child gets to stop before SIGKILL
WATCHDOG_GRACE_SECONDS = 5.0


# -- ports ----------------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on ``host:port`` (bound the way servers bind,
    with SO_REUSEADDR, so a recently closed connection does not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


# -- process groups -----------------------------------------------------------------


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the id was reused by someone else's group: not ours
        return False
    return True


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def stop_groups(
    pgids: Iterable[int],
    *,
    grace: float,
    hurry: Callable[[], bool] = lambda: False,
    reap: Callable[[], None] = lambda: None,
) -> None:
    """SIGTERM every group, wait until they are empty (at most ``grace`` seconds, less
    if ``hurry()`` turns true), then SIGKILL what is left. ``reap`` collects our own
    exited children, so they do not linger as zombies in their groups."""
    pgids = list(pgids)
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not hurry():
        reap()
        if not any(group_alive(p) for p in pgids):
            return
        time.sleep(0.1)
    for pgid in pgids:
        signal_group(pgid, signal.SIGKILL)
    reap()


# -- dying with the parent -----------------------------------------------------------

_libc: ctypes.CDLL | None = None


def _load_libc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM this child when its parent dies (Linux), and exit at
    once if the parent is already gone. libc is loaded before the fork: the hook itself
    only makes a system call."""
    libc = _load_libc()

    def hook() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


# -- the children of ``keyshop run`` -----------------------------------------------------


class Children:
    """The processes ``keyshop run`` started, each a process group, watched by a
    watchdog that outlives ``keyshop run`` if it is killed."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.hurry = False
        self.watchdog = subprocess.Popen(
            [sys.executable, "-m", "keyshop.supervise"],
            stdin=subprocess.PIPE,
            start_new_session=True,
            cwd=cwd,
        )

    def _tell(self, line: str) -> None:
        stdin = self.watchdog.stdin
        if stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            stdin.write(f"{line}\n".encode())
            stdin.flush()

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``command`` in a group of its own (from the main thread only: see the
        module docstring)."""
        proc = subprocess.Popen(  # noqa: S603 (the shop's own commands, no shell)
            command,
            start_new_session=True,
            cwd=self.cwd,
            env=env,
            preexec_fn=die_with_parent(os.getpid()),  # makes one system call
        )
        self.procs.append((name, proc))
        self._tell(f"+{proc.pid}")

    def stopped(self) -> tuple[str, int] | None:
        """(name, exit status) of the first child that has stopped, or None."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def all_running(self) -> bool:
        return self.stopped() is None

    def stop(self) -> None:
        """Stop every group: SIGTERM, up to 15 s (a SIGINT or SIGTERM meanwhile cuts the
        wait short), SIGKILL; then release them from the watchdog and let it go."""

        def hurry(*_: object) -> None:
            self.hurry = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, hurry)

        def reap() -> None:
            for _name, proc in self.procs:
                proc.poll()

        pgids = [proc.pid for _name, proc in self.procs]
        stop_groups(pgids, grace=GRACE_SECONDS, hurry=lambda: self.hurry, reap=reap)
        for _name, proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if not group_alive(proc.pid):
                self._tell(f"-{proc.pid}")
        if self.watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                self.watchdog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.watchdog.wait(timeout=WATCHDOG_GRACE_SECONDS + 5)


def watch(stream: IO[bytes]) -> None:
    """The watchdog: collect group ids (``+PGID`` started, ``-PGID`` released) until the
    pipe closes; then stop the groups still held."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    held: list[int] = []
    for raw in stream:
        line = raw.decode().strip()
        if line.startswith("+"):
            held.append(int(line[1:]))
        elif line.startswith("-") and int(line[1:]) in held:
            held.remove(int(line[1:]))
    if held:
        stop_groups(held, grace=WATCHDOG_GRACE_SECONDS)


if __name__ == "__main__":
    watch(sys.stdin.buffer)
