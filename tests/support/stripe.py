"""A real HTTP server on loopback answering like Stripe's API (Checkout sessions and
refunds), for checkout and refund tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from core.config import Settings


class FakeStripe:
    """A real HTTP server on loopback answering Stripe's ``POST /v1/checkout/sessions``
    the way Stripe does (form-encoded request, JSON reply), recording what it was sent.
    ``fail_with`` makes it answer a Stripe error instead."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                fake.requests.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                        "form": dict(parse_qsl(body)),
                    }
                )
                if fake.fail_with:
                    reply = {
                        "error": {"type": "api_error", "message": "Stripe is having a bad day"}
                    }
                    status = fake.fail_with
                elif self.path == "/v1/refunds":
                    reply = {"id": "re_test_123", "object": "refund", "status": "succeeded"}
                    status = 200
                else:
                    reply = {
                        "id": "cs_test_123",
                        "object": "checkout.session",
                        "url": "https://checkout.stripe.com/c/pay/cs_test_123",
                    }
                    status = 200
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


#: The modules whose ``get_settings`` decides how Stripe is called.
STRIPE_READERS = (
    "core.services.checkout",
    "core.services.payment_methods",
    "core.services.payments",
    "core.services.operator.orders",
)


@contextmanager
def stripe_configured(settings: Settings, monkeypatch: Any) -> Iterator[FakeStripe]:
    """``settings`` with Stripe configured against a :class:`FakeStripe` on loopback, in
    force for the block in the modules that read Stripe's settings; the fake server is
    shut down afterwards."""
    fake = FakeStripe()
    configured = settings.model_copy(
        update={
            "stripe_secret_key": "sk_test_x",
            "stripe_webhook_secret": "whsec_x",
            "stripe_api_base": fake.url,
        }
    )
    for module in STRIPE_READERS:
        monkeypatch.setattr(f"{module}.get_settings", lambda: configured)
    try:
        yield fake
    finally:
        fake.server.shutdown()
