"""Crypto payments end to end in tests: the HTTP API on a loopback port (the IPN
endpoint), and the shop's NOWPayments settings pointed at the simulator and at it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import uvicorn

from core.config import Settings


@contextmanager
def serve_api() -> Iterator[str]:
    """The store API and webhooks (``web.api.app``) under uvicorn on a free port."""
    from web.api.app import create_api

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_api(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


#: The modules whose ``get_settings`` decides where NOWPayments is and where IPNs go.
NOWPAYMENTS_READERS = ("core.services.nowpayments",)


def crypto_settings(settings: Settings, *, sim_url: str, api_url: str, **extra: Any) -> Settings:
    """``settings`` with NOWPayments at the simulator and IPNs sent to ``api_url``."""
    return settings.model_copy(
        update={"nowpayments_base_url": sim_url + "/nowpayments", "public_url": api_url, **extra}
    )


def invoice_id(invoice_url: str) -> str:
    """The invoice id in a NOWPayments ``invoice_url`` (``…/payment/?iid=ID``)."""
    return parse_qs(urlsplit(invoice_url).query)["iid"][0]
