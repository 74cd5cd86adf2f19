"""Provider tests run the real clients over real HTTP against the simulators on loopback.

No database: nothing here requests the ``engine``/``session`` fixtures. One simulator
serves the whole session; every test starts from the seed catalogue, balance and knobs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.providers.codeswholesale import CodesWholesaleClient
from core.providers.kinguin import KinguinClient
from core.providers.registry import (
    SIMULATOR_CODESWHOLESALE_CLIENT_ID,
    SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
    SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
    SIMULATOR_KINGUIN_API_KEY,
)
from keyshop.simulators import SimulatorServer

# Long enough for a busy machine (0.5 s timed out a plain purchase under CI load); the
# tests that want a timeout make the simulator wait longer than this.
CLIENT_TIMEOUT = 2.0

# A delay the simulator never reaches within a test: the test releases the keys itself
# (``sim.release``), so what it sees before the release cannot race a timer.
HELD = 3600.0


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    # Kinguin completes orders asynchronously by default; tests not about that take the
    # instant-completion knob (late_keys_seconds=0) and set the delay where it matters.
    with SimulatorServer(knobs={"kinguin": {"late_keys_seconds": 0}}) as server:
        yield server


@pytest.fixture
def sim(simulator: SimulatorServer) -> Iterator[SimulatorServer]:
    simulator.reset()
    yield simulator
    simulator.reset()


@pytest.fixture
def cw(sim: SimulatorServer) -> Iterator[CodesWholesaleClient]:
    client = CodesWholesaleClient(
        sim.provider_url("codeswholesale"),
        SIMULATOR_CODESWHOLESALE_CLIENT_ID,
        SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
        SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
        CLIENT_TIMEOUT,
    )
    yield client
    client.close()


@pytest.fixture
def kg(sim: SimulatorServer) -> Iterator[KinguinClient]:
    client = KinguinClient(sim.provider_url("kinguin"), SIMULATOR_KINGUIN_API_KEY, CLIENT_TIMEOUT)
    yield client
    client.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A tiny webhook endpoint: records every POST and answers 204."""

    url: str
    calls: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for call in self.calls:
                    if predicate(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching webhook within {timeout}s; got {self.calls!r}"
                    )
                self.cond.wait(left)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            rec = holder["r"]
            with rec.cond:
                rec.calls.append(
                    Received(self.path, dict(self.headers.items()), json.loads(raw or b"{}"))
                )
                rec.cond.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()
