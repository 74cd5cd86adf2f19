"""A NOWPayments simulator: the API calls keyshop makes, a hosted invoice page with a
"Pay" button, and signed IPNs sent to the invoice's ``ipn_callback_url``, so the real
client (:class:`core.providers.nowpayments.NowPaymentsClient`) runs against it unchanged.
Mounted at ``/nowpayments`` beside the provider simulators.

Every behaviour and its source (NP = NOWPayments' API documentation, the Postman
collection https://documenter.getpostman.com/view/7907941/S1a32n38; NPS = its sandbox
collection https://documenter.getpostman.com/view/7907941/T1LSCRHC; HC = NOWPayments'
help centre; "silent" = the documentation does not say, the simulator takes the side a
client must survive):

=============================  =========================================================  ==========================
Behaviour                      Simulated as                                               Source
=============================  =========================================================  ==========================
auth                           ``x-api-key`` header on every call but ``/v1/status``;     NP "Authentication"
                               401 ``{"statusCode", "code", "message"}`` otherwise       (error shape: silent)
API status                     ``GET /v1/status`` → ``{"message": "OK"}``                 NP "Get API status"
create invoice                 ``POST /v1/invoice``: ``price_amount`` > 0,                NP "Create invoice"
                               ``price_currency`` required (else 400); answers ``id``,
                               ``token_id``, ``invoice_url``, the fields sent, amounts
                               as strings, ``created_at``/``updated_at``
create payment                 ``POST /v1/payment``: also ``pay_currency``; answers       NP "Create payment"
                               ``payment_id``, ``payment_status: waiting``,
                               ``pay_address``, ``pay_amount``
payment status                 ``GET /v1/payment/{id}``: the payment as the IPNs          NP "Get payment status"
                               describe it; 404 when unknown
statuses                       ``waiting`` → ``confirming`` → ``confirmed`` →             NP "Get payment status"
                               ``sending`` → ``finished``; short → ``partially_paid``;
                               ``expired`` when nothing arrives
IPN                            POSTed as JSON to ``ipn_callback_url`` on every status     NP "Instant Payments
                               change, ``x-nowpayments-sig`` = hex HMAC-SHA512 (IPN        Notifications"
                               secret) of the body with keys sorted
IPN body fields                ``payment_id``, ``invoice_id``, ``payment_status``,        NP IPN example; ``fee``
                               ``pay_address``, ``price_amount``, ``price_currency``,     nested object: HC
                               ``pay_amount``, ``actually_paid``,
                               ``actually_paid_at_fiat``, ``pay_currency``,
                               ``order_id``, ``order_description``, ``purchase_id``,
                               ``outcome_amount``, ``outcome_currency``, ``fee`` {…},
                               ``created_at``, ``updated_at``
IPN retries                    none; each delivery's answer is recorded                    silent (HC: answer within
                                                                                          3 s)
hosted invoice page            ``GET /payment/?iid=ID`` (the ``invoice_url``) with a      NP invoice_url shape;
                               "Pay" button; paying starts the IPNs and redirects to      the page itself is silent
                               ``success_url``
amounts                        ``pay_amount`` = price * ``rate`` (8 places, coin per      silent (real rates move)
                               unit of the price currency)
=============================  =========================================================  ==========================

Knobs (``keyshop simulate-providers --set nowpayments.KNOB=VALUE`` or
``POST /nowpayments/_control``): ``confirm_seconds`` (delay between two IPNs; 0 sends them
at once), ``partial`` (fraction left unpaid: the payment ends ``partially_paid``),
``overpay`` (fraction paid on top), ``expire`` (nothing arrives: ``waiting`` then
``expired``), ``duplicates`` (each IPN sent this many times, concurrently),
``ipn_overrides`` (fields replaced in every IPN before signing, e.g. a different
``price_currency``), ``fail_invoices`` (invoice creation answers 500),
``drop_ipns_after`` (only the first N IPNs of a payment are sent: lost IPNs), ``pay_currency``,
``rate``, ``api_key``, ``ipn_secret``. Control: ``GET /nowpayments/_control``,
``POST /nowpayments/_control`` (knobs), ``POST /nowpayments/_control/invoices/{id}/pay``
(what the page's button does), ``GET /nowpayments/_control/deliveries``.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from core.providers.nowpayments import SIGNATURE_HEADER, ipn_signature
from core.services.nowpayments import SIMULATOR_API_KEY, SIMULATOR_IPN_SECRET

log = logging.getLogger("keyshop.simulators")

COIN = Decimal("0.00000001")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class NowPaymentsKnobs:
    confirm_seconds: float = 0.0
    partial: float = 0.0
    overpay: float = 0.0
    expire: bool = False
    duplicates: int = 1
    ipn_overrides: dict[str, Any] = field(default_factory=dict)
    fail_invoices: bool = False
    drop_ipns_after: int = 0  # send only the first N IPNs of a payment (0: all)
    pay_currency: str = "btc"
    rate: str = "0.00002"
    api_key: str = SIMULATOR_API_KEY
    ipn_secret: str = SIMULATOR_IPN_SECRET

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown knob {key!r}")
            current = getattr(self, key)
            if isinstance(current, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true")
            elif isinstance(current, float):
                value = float(value)
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, dict):
                if not isinstance(value, dict):
                    raise ValueError(f"{key} must be a JSON object")
            else:
                value = str(value)
            if key in ("partial", "overpay") and not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be at least 0 and below 1")
            if key == "duplicates" and not 1 <= value <= 100:
                raise ValueError("duplicates must be between 1 and 100")
            if key == "rate":
                try:
                    if Decimal(value) <= 0:
                        raise ValueError("rate must be above 0")
                except InvalidOperation:
                    raise ValueError("rate must be a decimal number") from None
            setattr(self, key, value)


class NowPaymentsState:
    """Invoices, payments and IPN deliveries; one lock, never held while sending."""

    def __init__(self, knobs: Mapping[str, Any] | None = None) -> None:
        self._initial = dict(knobs or {})
        self.knobs = NowPaymentsKnobs()
        self.knobs.update(self._initial)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._ids = itertools.count(5_000_000_000 + secrets.randbelow(10**6))
        self._threads: list[threading.Thread] = []
        # One pooled client for every IPN (duplicates reuse kept-alive connections).
        self._http = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=100))

    def describe(self) -> dict[str, Any]:
        with self.lock:
            knobs = {f.name: getattr(self.knobs, f.name) for f in fields(self.knobs)}
            knobs["ipn_secret"] = "***"
            return {
                "knobs": knobs,
                "invoices": len(self.invoices),
                "payments": len(self.payments),
                "deliveries": len(self.deliveries),
            }

    def set_knobs(self, values: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.knobs.update(values)
        return self.describe()

    def reset(self) -> None:
        with self.lock:
            self.invoices.clear()
            self.payments.clear()
            self.deliveries.clear()
            self.knobs = NowPaymentsKnobs()
            self.knobs.update(self._initial)

    # -- invoices and payments -------------------------------------------------------------

    def create_invoice(self, body: dict[str, Any], base: str) -> dict[str, Any]:
        invoice_id = str(next(self._ids))
        now = _now()
        invoice = {
            "id": invoice_id,
            "token_id": str(next(self._ids)),
            "order_id": body.get("order_id"),
            "order_description": body.get("order_description"),
            "price_amount": str(body["price_amount"]),
            "price_currency": str(body["price_currency"]).lower(),
            "pay_currency": body.get("pay_currency"),
            "ipn_callback_url": body.get("ipn_callback_url"),
            "invoice_url": f"{base}/payment/?iid={invoice_id}",
            "success_url": body.get("success_url"),
            "cancel_url": body.get("cancel_url"),
            "created_at": now,
            "updated_at": now,
        }
        with self.lock:
            self.invoices[invoice_id] = invoice
        return dict(invoice)

    def create_payment(self, body: dict[str, Any], invoice_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            rate = Decimal(self.knobs.rate)
            coin = str(body.get("pay_currency") or self.knobs.pay_currency).lower()
        price = Decimal(str(body["price_amount"]))
        now = _now()
        payment = {
            "payment_id": next(self._ids),
            "invoice_id": int(invoice_id) if invoice_id else None,
            "payment_status": "waiting",
            "pay_address": "tb1q" + secrets.token_hex(19),
            "price_amount": float(price),
            "price_currency": str(body["price_currency"]).lower(),
            "pay_amount": float((price * rate).quantize(COIN)),
            "actually_paid": 0,
            "actually_paid_at_fiat": 0,
            "pay_currency": coin,
            "order_id": body.get("order_id"),
            "order_description": body.get("order_description"),
            "purchase_id": str(next(self._ids)),
            "outcome_amount": float((price * rate * Decimal("0.995")).quantize(COIN)),
            "outcome_currency": coin,
            "fee": {"currency": coin, "depositFee": 0, "serviceFee": 0, "withdrawalFee": 0},
            "ipn_callback_url": body.get("ipn_callback_url"),
            "created_at": now,
            "updated_at": now,
        }
        with self.lock:
            self.payments[str(payment["payment_id"])] = payment
        return dict(payment)

    def public_payment(self, payment_id: str) -> dict[str, Any] | None:
        with self.lock:
            payment = self.payments.get(payment_id)
            if payment is None:
                return None
            return {k: v for k, v in payment.items() if k != "ipn_callback_url"}

    def pay_invoice(self, invoice_id: str) -> dict[str, Any] | None:
        """The customer pays the invoice: a payment is created and its IPNs start (in
        the background, ``confirm_seconds`` apart)."""
        with self.lock:
            invoice = self.invoices.get(invoice_id)
        if invoice is None:
            return None
        payment = self.create_payment(invoice, invoice_id)
        self.start_ipns(str(payment["payment_id"]))
        return payment

    def start_ipns(self, payment_id: str) -> None:
        with self.lock:
            knobs = NowPaymentsKnobs(
                **{f.name: getattr(self.knobs, f.name) for f in fields(self.knobs)}
            )
        if knobs.expire:
            steps = [("waiting", Decimal(0)), ("expired", Decimal(0))]
        elif knobs.partial > 0:
            short = Decimal(1) - Decimal(str(knobs.partial))
            steps = [("waiting", Decimal(0)), ("confirming", short), ("partially_paid", short)]
        else:
            full = Decimal(1) + Decimal(str(knobs.overpay))
            steps = [("waiting", Decimal(0))] + [
                (s, full) for s in ("confirming", "confirmed", "sending", "finished")
            ]
        thread = threading.Thread(
            target=self._run_ipns,
            args=(payment_id, steps, knobs),
            name="nowpayments-ipn",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _run_ipns(
        self, payment_id: str, steps: list[tuple[str, Decimal]], knobs: NowPaymentsKnobs
    ) -> None:
        for n, (status, share) in enumerate(steps):
            if n and knobs.confirm_seconds > 0:
                time.sleep(knobs.confirm_seconds)
            with self.lock:
                payment = self.payments[payment_id]
                asked = Decimal(str(payment["pay_amount"]))
                payment["payment_status"] = status
                payment["actually_paid"] = float((asked * share).quantize(COIN)) if share else 0
                payment["actually_paid_at_fiat"] = (
                    float((Decimal(str(payment["price_amount"])) * share).quantize(Decimal("0.01")))
                    if share
                    else 0
                )
                payment["updated_at"] = _now()
                body = {k: v for k, v in payment.items() if k != "ipn_callback_url"}
                body.update(knobs.ipn_overrides)
                target = payment.get("ipn_callback_url")
            if knobs.drop_ipns_after and n >= knobs.drop_ipns_after:
                with self.changed:  # lost on the way: never sent
                    self.deliveries.append(
                        {
                            "payment_id": body.get("payment_id"),
                            "payment_status": status,
                            "target": target,
                            "status": "dropped",
                        }
                    )
                    self.changed.notify_all()
            elif target:
                self._send(str(target), body, knobs)

    def _send(self, target: str, body: dict[str, Any], knobs: NowPaymentsKnobs) -> None:
        raw = json.dumps(body).encode()  # NOWPayments' key order is its own: we re-sort
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: ipn_signature(body, knobs.ipn_secret),
        }

        def deliver() -> None:
            try:
                status: int | str = self._http.post(
                    target, content=raw, headers=headers
                ).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            with self.changed:
                self.deliveries.append(
                    {
                        "payment_id": body.get("payment_id"),
                        "payment_status": body.get("payment_status"),
                        "target": target,
                        "status": status,
                    }
                )
                self.changed.notify_all()

        senders = [threading.Thread(target=deliver, daemon=True) for _ in range(knobs.duplicates)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` IPN deliveries were answered (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(self.deliveries)} of {count} NOWPayments IPNs delivered"
                    )
                self.changed.wait(left)
            return [dict(d) for d in self.deliveries]

    def join(self, timeout: float = 10.0) -> None:
        for thread in list(self._threads):
            thread.join(timeout)


# -- HTTP --------------------------------------------------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"status": False, "statusCode": status, "code": "ERROR", "message": message},
        status_code=status,
    )


def _base(request: Request) -> str:
    url = str(request.url)
    for marker in ("/v1/", "/_control", "/payment/"):
        if marker in url:
            return url.split(marker, 1)[0]
    return url.rstrip("/")


def routes(state: NowPaymentsState) -> list[Route]:
    def authorised(request: Request) -> bool:
        with state.lock:
            key = state.knobs.api_key
        given = request.headers.get("x-api-key", "")
        return secrets.compare_digest(given.encode(), key.encode())

    async def read(request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def priced(body: dict[str, Any]) -> str | None:
        amount = body.get("price_amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
            return "price_amount is required"
        try:
            if Decimal(str(amount)) <= 0:
                return "price_amount must be greater than 0"
        except InvalidOperation:
            return "price_amount must be a number"
        if not isinstance(body.get("price_currency"), str) or not body["price_currency"]:
            return "price_currency is required"
        return None

    async def status(request: Request) -> Response:
        return JSONResponse({"message": "OK"})

    async def invoice(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Invalid api key")
        with state.lock:
            failing = state.knobs.fail_invoices
        if failing:
            return _error(500, "Internal server error")
        body = await read(request)
        if body is None:
            return _error(400, "body must be a JSON object")
        problem = priced(body)
        if problem:
            return _error(400, problem)
        return JSONResponse(state.create_invoice(body, _base(request)))

    async def payment(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Invalid api key")
        body = await read(request)
        if body is None:
            return _error(400, "body must be a JSON object")
        problem = priced(body) or (None if body.get("pay_currency") else "pay_currency is required")
        if problem:
            return _error(400, problem)
        created = state.create_payment(body)
        return JSONResponse(
            {k: v for k, v in created.items() if k != "ipn_callback_url"}, status_code=201
        )

    async def payment_status(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "Invalid api key")
        found = state.public_payment(request.path_params["payment_id"])
        if found is None:
            return _error(404, "Payment not found")
        return JSONResponse(found)

    async def page(request: Request) -> Response:
        iid = request.query_params.get("iid", "")
        with state.lock:
            inv = state.invoices.get(iid)
        if inv is None:
            return HTMLResponse("<h1>Invoice not found</h1>", status_code=404)
        amount = html.escape(f"{inv['price_amount']} {str(inv['price_currency']).upper()}")
        order = html.escape(str(inv.get("order_id") or ""))
        return HTMLResponse(
            "<!doctype html><html><head><title>NOWPayments simulator</title></head><body>"
            "<h1>NOWPayments simulator</h1>"
            "<p><strong>Simulated crypto payment: no coins move.</strong></p>"
            f"<p>Order {order}: {amount}</p>"
            f'<form method="post" action="pay?iid={html.escape(iid)}">'
            '<button type="submit" id="np-pay">Pay with crypto</button></form>'
            "</body></html>"
        )

    async def pay(request: Request) -> Response:
        iid = request.query_params.get("iid", "")
        paid = state.pay_invoice(iid)
        if paid is None:
            return HTMLResponse("<h1>Invoice not found</h1>", status_code=404)
        with state.lock:
            success = state.invoices[iid].get("success_url")
        if success:
            return RedirectResponse(str(success), status_code=303)
        return HTMLResponse("<h1>Paid</h1>")

    async def control(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(state.describe())
        body = await read(request)
        if body is None:
            return JSONResponse({"error": "expected a JSON object of knobs"}, status_code=400)
        try:
            return JSONResponse(state.set_knobs(body))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def control_pay(request: Request) -> Response:
        paid = state.pay_invoice(request.path_params["invoice_id"])
        if paid is None:
            return JSONResponse({"error": "unknown invoice"}, status_code=404)
        return JSONResponse({"payment_id": paid["payment_id"]})

    async def control_deliveries(request: Request) -> Response:
        with state.lock:
            return JSONResponse([dict(d) for d in state.deliveries])

    return [
        Route("/v1/status", status, methods=["GET"]),
        Route("/v1/invoice", invoice, methods=["POST"]),
        Route("/v1/payment", payment, methods=["POST"]),
        Route("/v1/payment/{payment_id}", payment_status, methods=["GET"]),
        Route("/payment/", page, methods=["GET"]),
        Route("/payment/pay", pay, methods=["POST"]),
        Route("/_control", control, methods=["GET", "POST"]),
        Route("/_control/invoices/{invoice_id}/pay", control_pay, methods=["POST"]),
        Route("/_control/deliveries", control_deliveries, methods=["GET"]),
    ]
