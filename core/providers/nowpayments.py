"""The NOWPayments API client and its IPN signature.

Sources (NOWPayments' public API documentation, the Postman collection "NOWPayments API",
https://documenter.getpostman.com/view/7907941/S1a32n38, abbreviated NP below):

- every request carries the API key in the ``x-api-key`` header (NP "Authentication");
- ``POST /v1/invoice`` with ``price_amount``, ``price_currency``, ``order_id``,
  ``order_description``, ``ipn_callback_url``, ``success_url``, ``cancel_url`` answers
  the invoice with its ``id`` and ``invoice_url`` (NP "Create invoice"): the customer
  chooses the coin on NOWPayments' page, so the shop never needs a rate;
- ``GET /v1/payment/{payment_id}`` answers a payment's status (NP "Get payment status",
  statuses ``waiting``, ``confirming``, ``confirmed``, ``sending``, ``partially_paid``,
  ``finished``, ``failed``, ``refunded``, ``expired``);
- ``GET /v1/status`` answers ``{"message": "OK"}`` (NP "Get API status");
- IPNs (NP "Instant Payments Notifications"): POSTed to ``ipn_callback_url``; the
  ``x-nowpayments-sig`` header is the hex HMAC-SHA512, keyed with the IPN secret, of the
  body's parameters sorted alphabetically and serialised as
  ``JSON.stringify(params, Object.keys(params).sort())`` does.

What the documentation leaves open, and what this module decides:

- nested objects (newer IPNs carry a ``fee`` object): the documented JavaScript one-liner
  would drop their keys; NOWPayments' help centre ("IPN and how to set up") says the
  body is "sorted alphabetically by key". :func:`ipn_signature` sorts at every level;
  :func:`verify_ipn_signature` also accepts the one-liner's form. Only top-level fields
  are ever acted on, so nothing unsigned can change what the shop does;
- numbers are written as JavaScript writes them (``0.00001234``, not ``1.234e-05``;
  ``5``, not ``5.0``), since the signer is JavaScript's ``JSON.stringify``;
- amounts may arrive as numbers or as strings (invoice answers show ``"12.99"``): both
  are read as exact decimals, never through a float;
- a request that fails with 5xx, a timeout or a broken connection is reported as
  :class:`NowPaymentsUnavailable`; invoice creation is not retried here (the order
  number travels as ``order_id`` and an unused invoice costs nothing, but the customer
  would be shown the first one only).

Nothing secret is logged: the API key lives in a header, and bodies are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

log = logging.getLogger("core.providers")

SIGNATURE_HEADER = "x-nowpayments-sig"
PRODUCTION_BASE_URL = "https://api.nowpayments.io"


class NowPaymentsError(Exception):
    """NOWPayments refused the request (4xx) or answered something unreadable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NowPaymentsUnavailable(NowPaymentsError):
    """NOWPayments could not be reached or answered 5xx: try again later."""


# -- the IPN signature -------------------------------------------------------------------------


def _js_number(value: float) -> str:
    """A float as JavaScript's ``Number.prototype.toString`` writes it (ECMA-262
    Number::toString): the shortest round-trip digits, fixed notation for exponents
    -7 < e < 21, else ``d.ddde±x``."""
    if value != value or value in (float("inf"), float("-inf")):
        return "null"  # JSON.stringify writes NaN and Infinity as null
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = int(exp) + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def _js_json(value: Any, allowed: set[str] | None = None) -> str:
    """``JSON.stringify`` of a parsed JSON value with keys sorted; ``allowed`` keeps only
    those keys at every level (what a replacer array does)."""
    if isinstance(value, dict):
        keys = sorted(k for k in value if allowed is None or k in allowed)
        inner = ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + _js_json(value[k], allowed) for k in keys
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_js_json(v, allowed) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def canonical_ipn(payload: dict[str, Any]) -> bytes:
    """The string NOWPayments signs: the body's keys sorted (at every level), compact."""
    return _js_json(payload).encode("utf-8")


def ipn_signature(payload: dict[str, Any], secret: str) -> str:
    """The ``x-nowpayments-sig`` value for ``payload``: hex HMAC-SHA512 with the IPN
    secret over :func:`canonical_ipn` (NP "Instant Payments Notifications")."""
    return hmac.new(secret.encode(), canonical_ipn(payload), hashlib.sha512).hexdigest()


def verify_ipn_signature(payload: dict[str, Any], signature: str, secret: str) -> bool:
    """True when ``signature`` is NOWPayments' signature of ``payload``; constant-time.
    Accepts the keys sorted at every level, and the documented one-liner's form (nested
    keys filtered by the top-level ones), see the module docstring."""
    given = signature.strip().lower().encode()
    expected = [
        ipn_signature(payload, secret),
        hmac.new(
            secret.encode(), _js_json(payload, set(payload)).encode(), hashlib.sha512
        ).hexdigest(),
    ]
    matches = [hmac.compare_digest(given, e.encode()) for e in expected]  # both, always
    return any(matches)


def decimal_amount(value: object) -> Decimal | None:
    """An amount from a NOWPayments body (number or string) as an exact decimal; None
    when missing or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


# -- the client ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoice:
    id: str
    invoice_url: str
    order_id: str


class NowPaymentsClient:
    """The calls keyshop makes to NOWPayments. ``base_url`` without ``/v1``
    (``https://api.nowpayments.io``, the sandbox, or the simulator)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"x-api-key": api_key, "User-Agent": "keyshop-payments/1"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NowPaymentsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            log.warning("nowpayments %s %s failed: %s", method, path, type(exc).__name__)
            raise NowPaymentsUnavailable(
                f"NOWPayments unreachable ({type(exc).__name__})"
            ) from None
        log.info("nowpayments %s %s %s", method, path, response.status_code)
        if response.status_code >= 500 or response.status_code == 429:
            raise NowPaymentsUnavailable(
                f"NOWPayments answered {response.status_code}", response.status_code
            )
        try:
            data = response.json()
        except ValueError:
            raise NowPaymentsError(
                f"NOWPayments answered {response.status_code} without JSON", response.status_code
            ) from None
        if response.status_code >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            raise NowPaymentsError(
                f"NOWPayments refused the request ({response.status_code}: {str(message or 'no message')[:200]})",
                response.status_code,
            )
        return data

    def api_status(self) -> bool:
        """``GET /v1/status``: True when NOWPayments says it is up."""
        data = self._call("GET", "/v1/status")
        return isinstance(data, dict) and str(data.get("message", "")).upper() == "OK"

    def create_invoice(
        self,
        *,
        price_amount: Decimal,
        price_currency: str,
        order_id: str,
        order_description: str,
        ipn_callback_url: str,
        success_url: str,
        cancel_url: str,
    ) -> Invoice:
        """``POST /v1/invoice``: a hosted invoice for ``price_amount`` in
        ``price_currency`` (the order's currency, lower case as NP's examples write it)."""
        data = self._call(
            "POST",
            "/v1/invoice",
            {
                # A JSON number. At most 15 significant digits (money.MAX_MAJOR with
                # two or three places), so the float's shortest form is the decimal's.
                "price_amount": float(price_amount),
                "price_currency": price_currency.lower(),
                "order_id": order_id,
                "order_description": order_description[:250],
                "ipn_callback_url": ipn_callback_url,
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
        )
        if not isinstance(data, dict) or not data.get("id") or not data.get("invoice_url"):
            raise NowPaymentsError("NOWPayments answered an invoice without id or invoice_url")
        return Invoice(
            id=str(data["id"]),
            invoice_url=str(data["invoice_url"]),
            order_id=str(data.get("order_id") or order_id),
        )

    def payment_status(self, payment_id: str) -> dict[str, Any]:
        """``GET /v1/payment/{payment_id}``: the payment as NOWPayments sees it."""
        data = self._call("GET", f"/v1/payment/{payment_id}")
        if not isinstance(data, dict):
            raise NowPaymentsError("NOWPayments answered a payment that is not an object")
        return data
