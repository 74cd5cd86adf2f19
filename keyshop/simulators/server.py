"""The simulator HTTP server: both providers plus the control API in one Starlette app.

Paths::

    /codeswholesale/...            the CodesWholesale v2 contract
    /kinguin/...                   the Kinguin eCommerce API contract
    GET  /_control                 knobs, balance and counters of both providers
    GET  /_control/{p}             knobs, balance and counters of one provider
    POST /_control/{p}             set knobs: {"latency_ms": 50, "balance": "5.00", ...}
                                   (also "revoke_tokens": true for CodesWholesale)
    POST /_control/{p}/reset       catalogue, balance, orders and tokens back to the seed
    GET  /_control/{p}/orders      orders (ids, reference, quantity, status; no key codes)
    GET  /_control/{p}/products    the catalogue
    POST /_control/{p}/products    add or change a product: {"external_id", "name",
                                   "price", "stock", "preorder", "image_keys", ...}
    POST /_control/{p}/orders/{id}/release   hand out an order's outstanding keys now
    GET  /_control/{p}/webhooks    webhook deliveries (event, target, status, attempts)
    /nowpayments/...               the NOWPayments API, invoice page and its own control
                                   API (keyshop/simulators/nowpayments.py)

The control API has no authentication: the simulator is for loopback only.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from core.providers.registry import SIMULATOR_PATHS, kinguin_webhook_secret
from core.services.nowpayments import SIMULATOR_PATH as NOWPAYMENTS_PATH
from keyshop.simulators import codeswholesale, kinguin, nowpayments
from keyshop.simulators.common import KeepServerSend, read_json
from keyshop.simulators.state import ProviderState

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger("keyshop.simulators")

PROVIDERS = ("codeswholesale", "kinguin")
#: The payment simulator served beside the providers (its knobs under this name).
PAYMENTS = "nowpayments"


def new_states(knobs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, ProviderState]:
    knobs = knobs or {}
    unknown = set(knobs) - set(PROVIDERS)
    if unknown:
        raise ValueError(f"unknown provider {sorted(unknown)[0]!r}")
    return {
        "codeswholesale": codeswholesale.new_state(dict(knobs.get("codeswholesale", {}))),
        "kinguin": kinguin.new_state(dict(knobs.get("kinguin", {}))),
    }


def add_demo_catalogue(states: dict[str, ProviderState]) -> None:
    """Offer the demo catalogue's titles at both providers (CodesWholesale cheaper, Kinguin
    as the fallback), with the same title, platform and region, so a demo shop's offer
    sync maps them and it can buy what it has not in stock. Part of the seed: a reset
    keeps them."""
    from decimal import Decimal
    from uuid import NAMESPACE_URL, uuid5

    from core.demo_data import DEMO_TITLES
    from keyshop.simulators.state import SimProduct

    for name, state in states.items():
        factor = Decimal("0.62") if name == "codeswholesale" else Decimal("0.68")
        for n, title in enumerate(DEMO_TITLES):
            if title.currency != "EUR":
                continue
            external = uuid5(
                NAMESPACE_URL, f"keyshop-demo:{name}:{title.title}:{title.platform}:{title.region}"
            )
            state._seed_products.append(
                SimProduct(
                    external_id=str(external),
                    name=title.title,
                    price=(Decimal(title.price_minor) / 100 * factor).quantize(Decimal("0.01")),
                    stock=500,
                    platform=title.platform,
                    region=title.region,
                    preorder=title.preorder,
                    kinguin_id=300000 + n,
                )
            )
        state.reset()


def build_app(
    states: dict[str, ProviderState], payments: nowpayments.NowPaymentsState | None = None
) -> KeepServerSend:
    def state_of(request: Request) -> ProviderState | Response:
        name = request.path_params["provider"]
        if name not in states:
            return JSONResponse({"error": f"unknown provider {name!r}"}, status_code=404)
        return states[name]

    async def overview(request: Request) -> Response:
        return JSONResponse({name: s.describe() for name, s in states.items()})

    async def control(request: Request) -> Response:
        state = state_of(request)
        if isinstance(state, Response):
            return state
        if request.method == "GET":
            return JSONResponse(state.describe())
        body = await read_json(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object of knobs"}, status_code=400)
        try:
            return JSONResponse(state.set_knobs(body))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def reset(request: Request) -> Response:
        state = state_of(request)
        if isinstance(state, Response):
            return state
        state.reset()
        return JSONResponse(state.describe())

    async def orders(request: Request) -> Response:
        state = state_of(request)
        if isinstance(state, Response):
            return state
        return JSONResponse(state.order_summaries())

    async def release(request: Request) -> Response:
        state = state_of(request)
        if isinstance(state, Response):
            return state
        order = state.release(request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": "unknown order"}, status_code=404)
        return JSONResponse(order.summary())

    async def products(request: Request) -> Response:
        state = state_of(request)
        if isinstance(state, Response):
            return state
        if request.method == "GET":
            with state.lock:
                return JSONResponse([p.public() for p in state.products.values()])
        body = await read_json(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected a JSON object"}, status_code=400)
        try:
            return JSONResponse(state.add_product(body).public(), status_code=201)
        except (ValueError, TypeError, ArithmeticError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def webhooks(request: Request) -> Response:
        state = state_of(request)
        if isinstance(state, Response):
            return state
        with state.lock:
            return JSONResponse([dict(d) for d in state.deliveries])

    control_routes = [
        Route("/", overview, methods=["GET"]),
        Route("/{provider}", control, methods=["GET", "POST"]),
        Route("/{provider}/reset", reset, methods=["POST"]),
        Route("/{provider}/orders", orders, methods=["GET"]),
        Route("/{provider}/orders/{order_id}/release", release, methods=["POST"]),
        Route("/{provider}/products", products, methods=["GET", "POST"]),
        Route("/{provider}/webhooks", webhooks, methods=["GET"]),
    ]
    app = Starlette(
        routes=[
            Mount(
                SIMULATOR_PATHS["codeswholesale"],
                routes=codeswholesale.routes(states["codeswholesale"]),
            ),
            Mount(SIMULATOR_PATHS["kinguin"], routes=kinguin.routes(states["kinguin"])),
            Mount(
                NOWPAYMENTS_PATH,
                routes=nowpayments.routes(payments or nowpayments.NowPaymentsState()),
            ),
            Mount("/_control", routes=control_routes),
        ]
    )
    return KeepServerSend(app)


def _uvicorn_config(app: Any, *, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",  # DropConnection reaches the transport through the h11 cycle
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


class SimulatorServer:
    """Both simulators in a background thread on ``host:port`` (port 0: any free port).

    ``with SimulatorServer() as sim: sim.url`` or ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        knobs: Mapping[str, Mapping[str, Any]] | None = None,
        log_level: str = "warning",
    ) -> None:
        self.host = host
        self.requested_port = port
        knobs = dict(knobs or {})
        self.payments = nowpayments.NowPaymentsState(knobs.pop(PAYMENTS, None))
        self.states = new_states(knobs)
        self.app = build_app(self.states, self.payments)
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the simulator is not running")
        return f"http://{self.host}:{self.port}"

    def provider_url(self, provider: str) -> str:
        return self.url + SIMULATOR_PATHS[provider]

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        if self._server is not None:
            return self
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit it: no 40 ms Nagle/delayed-ACK stall per answer
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(_uvicorn_config(self.app, log_level=self._log_level))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="provider-simulators", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the provider simulators did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        for state in self.states.values():
            state.cancel_timers()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (direct, no HTTP) ---------------------------------------------------------

    def control(self, provider: str, **knobs: Any) -> dict[str, Any]:
        return self.states[provider].set_knobs(knobs)

    def reset(self, provider: str | None = None) -> None:
        for name in [provider] if provider else list(self.states):
            self.states[name].reset()

    def orders(self, provider: str) -> list[dict[str, Any]]:
        return self.states[provider].order_summaries()

    def add_product(self, provider: str, **fields: Any) -> dict[str, Any]:
        return self.states[provider].add_product(fields).public()

    def stats(self, provider: str) -> dict[str, int]:
        return dict(self.states[provider].describe()["stats"])

    def webhooks(self, provider: str) -> list[dict[str, Any]]:
        with self.states[provider].lock:
            return [dict(d) for d in self.states[provider].deliveries]

    def release(self, provider: str, order_id: str) -> None:
        self.states[provider].release(order_id)


def default_knobs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Knobs for ``keyshop simulate-providers``: webhooks go to this shop's endpoints."""
    base = settings.public_url.rstrip("/")
    return {
        "codeswholesale": {"webhook_target": f"{base}/api/webhooks/codeswholesale"},
        "kinguin": {
            "webhook_target": f"{base}/api/webhooks/kinguin",
            **({"webhook_secret": secret} if (secret := kinguin_webhook_secret(settings)) else {}),
        },
    }


def parse_knob_assignments(assignments: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``["kinguin.latency_ms=50", "latency_ms=10", "codeswholesale.out_of_stock=a,b"]``
    as knobs per provider; a name without a provider applies to both. Values are read
    as JSON when they parse (numbers, true/false, lists), else as strings; a comma makes
    a list for ``out_of_stock`` and ``preorder``."""
    import json

    knobs: dict[str, dict[str, Any]] = {name: {} for name in (*PROVIDERS, PAYMENTS)}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r}: expected [provider.]knob=value")
        provider, dot, knob = name.strip().rpartition(".")
        targets = [provider] if dot else list(PROVIDERS)
        if dot and provider not in (*PROVIDERS, PAYMENTS):
            raise ValueError(f"{item!r}: unknown provider {provider!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if knob in ("out_of_stock", "preorder") and isinstance(value, str):
            value = [v for v in value.split(",") if v]
        for target in targets:
            knobs[target][knob] = value
    # validate now, so a typo fails at start-up with one line
    nowpayments.NowPaymentsState(knobs[PAYMENTS])
    new_states({k: v for k, v in knobs.items() if k != PAYMENTS})
    return knobs


def run_simulators(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    knobs: Mapping[str, Mapping[str, Any]] | None = None,
    log_level: str = "info",
    demo_catalogue: bool = True,
) -> None:
    """Serve both simulators in the foreground until interrupted (the CLI command). With
    ``demo_catalogue`` the demo titles are offered too (see :func:`add_demo_catalogue`)."""
    merged = default_knobs(settings)
    for provider, values in (knobs or {}).items():
        merged.setdefault(provider, {}).update(values)
    payments = nowpayments.NowPaymentsState(merged.pop(PAYMENTS, None))
    states = new_states(merged)
    if demo_catalogue:
        add_demo_catalogue(states)
    app = build_app(states, payments)
    bind_host = host or settings.simulator_host
    bind_port = settings.simulator_port if port is None else port
    config = _uvicorn_config(app, log_level=log_level)
    config.host, config.port = bind_host, bind_port
    log.info(
        "provider simulators on http://%s:%s (codeswholesale, kinguin, nowpayments; "
        "control API at /_control)",
        bind_host,
        bind_port,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        log.info("provider simulators stopped")
    finally:
        for state in states.values():
            state.cancel_timers()


def wait_until_up(url: str, timeout: float = 10.0) -> bool:
    """True once ``GET {url}/_control`` answers (for scripts that start the CLI)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url.rstrip("/") + "/_control/", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False
