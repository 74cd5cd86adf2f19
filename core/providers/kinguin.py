"""Kinguin eCommerce API ("ESA") client (docs/providers.md §1).

Decisions where the public sources are silent:

- **Price sent with an order** is our maximum unit cost. The Order object carries both
  ``requestPrice`` (what we sent) and ``price`` (what was charged), so the sent price is
  read as a ceiling; a product whose cheapest offer is above it comes back as
  ``ProductUnavailable`` → :class:`OutOfStock`.
- **Pre-orders**: ``keyType`` must be left out for a pre-order and only ``text`` is
  allowed otherwise, so :meth:`KinguinClient.purchase` reads the product first
  (``GET /v2/products/{productId}``) to learn ``isPreorder``. No cache: the extra GET is
  cheap next to an order, and a stale pre-order flag would get the order refused.
- **Same orderExternalId twice**: Kinguin's promise that a repeated ``orderExternalId``
  prevents a duplicate order was removed from its docs on 2024-05-27 (KG commit
  3705f70; the docs now only say it "should be unique"), so nothing relies on it. If
  Kinguin answers with the existing order, it is used; if it refuses the duplicate (409,
  or a ``ConstraintViolation`` naming ``orderExternalId``), the client looks the order up
  by our reference and returns it; when that lookup comes back empty or fails, the
  outcome is *unknown* (:class:`ProviderOutcomeUnknown`), never a rejection: an order
  under our reference may exist.
- **Looking a purchase up**: ``GET /v1/order?orderExternalId=`` (KG
  ``api/order/v1/README.md``). Only a successful answer whose ``results`` list is empty
  is :class:`Absent`; a failed request, an unreadable body, a 404 or results that are
  other orders (the filter not applied) are :class:`Unclear`.
- **Key type**: regular products are ordered with ``keyType: text`` (text keys
  guaranteed), so their stock is ``textQty``, not ``qty`` (``qty`` counts the cheapest
  offers of any key type; KG ``features/KeyType.md``, ``api/products/v1/README.md``);
  sync, ``product.update`` and the storefront's partner stock all read it. Pre-orders
  are ordered without ``keyType`` (not allowed on them), one per order; their stock is
  ``qty`` and their keys may be images (stored through the blob store).
- **Units**: at most :data:`MAX_UNITS_PER_ORDER` (9) units per offer in one order (KG
  ``api/order/v2/README.md``); fulfilment splits a larger line into several purchases,
  each under its own reference (:attr:`KinguinClient.max_units_per_purchase`).
- **State**: ``processing`` → ``pending`` (with the keys out so far: Kinguin hands out
  keys while processing), ``completed`` → ``completed``, ``canceled``/``refunded`` →
  ``failed``. If the keys cannot be fetched right after a successful order, the result
  is ``pending`` (the order exists; fetch the keys later), never an error that would
  invite a second purchase.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from core.providers.base import (
    Absent,
    Balance,
    DeliveredKey,
    Found,
    InsufficientBalance,
    Offer,
    OutOfStock,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderTransientError,
    PurchaseLookup,
    PurchaseResult,
    PurchaseState,
    Unclear,
    cover_url_or_none,
    from_minor,
    to_minor,
)
from core.providers.http import (
    decimal_json,
    json_body,
    make_http_client,
    parse_date,
    parse_datetime,
    parse_int,
    safe_text,
    send,
)

NAME = "kinguin"
CURRENCY = "EUR"
PAGE_LIMIT = 100
MAX_UNITS_PER_ORDER = 9  # per offer in one order (KG api/order/v2/README.md)

_OUT_OF_STOCK_KINDS = {"ProductUnavailable"}
_BALANCE_KINDS = {"InsufficientBalance", "BalanceRequired"}
_AUTH_KINDS = {"Authorization"}
_REJECTED_KINDS = {
    "ConstraintViolation",
    "Preorder",
    "OrderFailed",
    "OrderNotSupported",
    "OrderNotFound",
    "NoKeysToReturn",
}
_TRANSIENT_KINDS = {"ResourceLock"}
_STATE: dict[str, PurchaseState] = {
    "processing": "pending",
    "completed": "completed",
    "canceled": "failed",
    "cancelled": "failed",
    "refunded": "failed",
}


class KinguinClient:
    """:class:`core.providers.base.ProviderClient` for the Kinguin eCommerce API."""

    name = NAME
    max_units_per_purchase = MAX_UNITS_PER_ORDER

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._http = make_http_client(
            self.base_url, timeout, transport=transport, http_client=http_client
        )
        self._owns_http = http_client is None

    def __repr__(self) -> str:
        return f"KinguinClient(base_url={self.base_url!r})"

    # -- protocol ----------------------------------------------------------------------

    def list_offers(self, *, updated_since: datetime | None = None) -> Iterator[Offer]:
        page = 1
        seen = 0
        while True:
            params: dict[str, str | int] = {"page": page, "limit": PAGE_LIMIT}
            if updated_since is not None:
                since = updated_since if updated_since.tzinfo else updated_since.replace(tzinfo=UTC)
                # a documented format (KG api/products/v1/README.md): Y-m-dTH:i:s, UTC,
                # floored to the second (an offer changed in that second comes again)
                params["updatedSince"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            body = self._json("GET", "/v1/products", params=params)
            results = body.get("results") if isinstance(body, dict) else body
            results = results if isinstance(results, list) else []
            for item in results:
                offer = _offer(item) if isinstance(item, dict) else None
                if offer is not None:
                    yield offer
            seen += len(results)
            total = body.get("item_count") if isinstance(body, dict) else None
            if (
                not results
                or len(results) < PAGE_LIMIT
                or (isinstance(total, int) and seen >= total)
            ):
                return
            page += 1

    def get_offer(self, external_id: str) -> Offer:
        body = self._json("GET", f"/v2/products/{external_id}")
        offer = _offer(body) if isinstance(body, dict) else None
        if offer is None:
            raise ProviderRejected(NAME, f"product {external_id}: unreadable answer")
        return offer

    def balance(self) -> Balance:
        body = self._json("GET", "/v1/balance")
        amount = body.get("balance") if isinstance(body, dict) else None
        if amount is None:
            raise ProviderTransientError(NAME, "balance answer has no balance")
        return Balance(amount_minor=to_minor(amount), currency=CURRENCY)

    def purchase(
        self,
        *,
        reference: str,
        external_id: str,
        quantity: int,
        max_unit_cost_minor: int,
        currency: str,
        allow_preorder: bool = True,
    ) -> PurchaseResult:
        if currency.upper() != CURRENCY:
            raise ProviderRejected(NAME, f"prices are in {CURRENCY}, not {currency}")
        if not 1 <= quantity <= MAX_UNITS_PER_ORDER:
            raise ProviderRejected(
                NAME, f"{quantity} units: an order takes 1 to {MAX_UNITS_PER_ORDER} per offer"
            )
        product = self._json("GET", f"/v2/products/{external_id}")
        is_preorder = bool(product.get("isPreorder")) if isinstance(product, dict) else False
        if is_preorder and not allow_preorder:
            raise ProviderRejected(
                NAME, f"product {external_id} is a pre-order and pre-orders are not allowed here"
            )
        line: dict[str, Any] = {
            "productId": external_id,
            "qty": quantity,
            "price": decimal_json(from_minor(max_unit_cost_minor)),
        }
        if not is_preorder:
            line["keyType"] = "text"  # not allowed on a pre-order (KG features/KeyType.md)
        payload = {"products": [line], "orderExternalId": reference}
        response = send(
            self._http,
            NAME,
            "POST",
            "/v2/order",
            state_changing=True,
            json=payload,
            headers=self._headers(),
        )
        body = json_body(response)
        if not response.is_success:
            if _is_duplicate_reference(response, body):
                # An order under our reference exists or existed: never a rejection.
                lookup = self.find_purchase(reference=reference, placed_at=datetime.now(UTC))
                if isinstance(lookup, Found):
                    return lookup.purchase
                raise ProviderOutcomeUnknown(
                    NAME,
                    f"order {reference}: Kinguin says the orderExternalId exists, but the "
                    "lookup by it "
                    + ("came back empty" if isinstance(lookup, Absent) else "failed"),
                )
            raise self._error(response, body, context="POST /v2/order", state_changing=True)
        if not isinstance(body, dict) or not body.get("orderId"):
            raise ProviderOutcomeUnknown(
                NAME, f"order {reference}: unreadable answer; the order may exist"
            )
        if str(body.get("orderExternalId") or reference) != reference:
            raise ProviderOutcomeUnknown(
                NAME, f"order {reference}: the answer names another reference"
            )
        return self._result(body, reference=reference, tolerate_key_errors=True)

    def find_purchase(self, *, reference: str, placed_at: datetime) -> PurchaseLookup:
        """``GET /v1/order?orderExternalId=`` (KG ``api/order/v1/README.md``)."""
        try:
            response = send(
                self._http,
                NAME,
                "GET",
                "/v1/order",
                params={"orderExternalId": reference},
                headers=self._headers(),
            )
        except ProviderError as exc:
            return Unclear(f"order search failed: {exc.message}")
        body = json_body(response)
        if not response.is_success:
            error = self._error(response, body, context="GET /v1/order", not_found=ProviderRejected)
            return Unclear(f"order search failed: {error.message}")
        results = body.get("results") if isinstance(body, dict) else body
        if not isinstance(results, list):
            return Unclear("order search answered something unreadable")
        for order in results:
            if (
                isinstance(order, dict)
                and str(order.get("orderExternalId") or "") == reference
                and order.get("orderId")
            ):
                return Found(self._result(order, reference=reference, tolerate_key_errors=True))
        if results:
            return Unclear("order search answered other orders only (filter not applied?)")
        return Absent(f"GET /v1/order?orderExternalId={reference} found no order")

    def fetch_keys(self, *, provider_order_id: str, reference: str) -> PurchaseResult:
        order = self._json("GET", f"/v1/order/{provider_order_id}", not_found=ProviderRejected)
        if not isinstance(order, dict):
            raise ProviderTransientError(NAME, f"order {provider_order_id}: unreadable answer")
        return self._result(order, reference=reference)

    def return_keys(self, *, provider_order_id: str) -> list[str]:
        """Return an order's keys to Kinguin for a refund to the balance
        (``POST /v2/order/{orderId}/keys/return``, KG ``features/ReturnKeys.md``): one
        request per order, within 24 hours, keys not claimed, never a pre-order or a
        wholesale order. Returns the ids of the keys Kinguin reports ``RETURNED``;
        a refusal is :class:`ProviderRejected` (``NoKeysToReturn``)."""
        body = self._json(
            "POST", f"/v2/order/{provider_order_id}/keys/return", not_found=ProviderRejected
        )
        items = body if isinstance(body, list) else []
        return [
            str(item.get("id"))
            for item in items
            if isinstance(item, dict) and str(item.get("status") or "").upper() == "RETURNED"
        ]

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- requests ------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"X-Api-Key": self._api_key}

    def _json(
        self,
        method: str,
        path: str,
        *,
        not_found: type[ProviderError] | None = OutOfStock,
        **kwargs: Any,
    ) -> Any:
        response = send(self._http, NAME, method, path, headers=self._headers(), **kwargs)
        body = json_body(response)
        if response.is_success:
            return body
        if response.status_code == 404 and not_found is None:
            return None
        raise self._error(
            response, body, context=f"{method} {path}", not_found=not_found or ProviderRejected
        )

    def _error(
        self,
        response: httpx.Response,
        body: Any,
        *,
        context: str,
        state_changing: bool = False,
        not_found: type[ProviderError] = OutOfStock,
    ) -> ProviderError:
        status = response.status_code
        info = body if isinstance(body, dict) else {}
        kind = str(info.get("kind") or "")
        message = safe_text(
            info.get("detail") or info.get("title") or info.get("type") or response.reason_phrase
        )
        detail = f"{context}: HTTP {status}" + (f" {kind}" if kind else "") + f": {message}"
        data = {"status": status, "kind": kind or None}
        if status == 401 or kind in _AUTH_KINDS:
            return ProviderAuthError(NAME, detail, **data)
        if status == 429 or status >= 500:
            if state_changing and status >= 500:
                return ProviderOutcomeUnknown(NAME, detail + " (the order may exist)", **data)
            return ProviderTransientError(NAME, detail, **data)
        if kind in _OUT_OF_STOCK_KINDS:
            return OutOfStock(NAME, detail, **data)
        if kind in _BALANCE_KINDS:
            return InsufficientBalance(NAME, detail, **data)
        if kind in _TRANSIENT_KINDS:
            return ProviderTransientError(NAME, detail, **data)
        if status == 403:
            return ProviderAuthError(NAME, detail, **data)
        if kind in _REJECTED_KINDS:
            return ProviderRejected(NAME, detail, **data)
        if status == 404:
            return not_found(NAME, detail, **data)
        return ProviderRejected(NAME, detail, **data)

    # -- mapping -------------------------------------------------------------------------

    def _keys(self, order_id: str) -> list[DeliveredKey]:
        keys: list[DeliveredKey] = []
        page = 1
        while True:
            body = self._json(
                "GET",
                f"/v2/order/{order_id}/keys",
                params={"page": page, "limit": PAGE_LIMIT},
                not_found=ProviderRejected,
            )
            items = (
                body
                if isinstance(body, list)
                else (body.get("results") if isinstance(body, dict) else None)
            )
            items = items if isinstance(items, list) else []
            for item in items:
                key = _key(item) if isinstance(item, dict) else None
                if key is not None:
                    keys.append(key)
            if len(items) < PAGE_LIMIT:
                return keys
            page += 1

    def _result(
        self, order: Mapping[str, Any], *, reference: str, tolerate_key_errors: bool = False
    ) -> PurchaseResult:
        order_id = str(order["orderId"])
        status = str(order.get("status") or "processing").lower()
        state: PurchaseState = _STATE.get(status, "pending")
        keys: list[DeliveredKey] = []
        if state != "failed":
            try:
                keys = self._keys(order_id)
            except ProviderError:
                if not tolerate_key_errors:
                    raise
                state = "pending"
        quantity = parse_int(order.get("totalQty")) or sum(
            parse_int(p.get("qty")) or 0 for p in order.get("products") or [] if isinstance(p, dict)
        )
        if state == "completed" and quantity and len(keys) < quantity:
            state = "pending"  # completed, yet not every key is out on the keys endpoint
        total = order.get("paymentPrice", order.get("totalPrice"))
        preorder = bool(order.get("isPreorder")) or any(
            isinstance(p, dict) and p.get("isPreorder") for p in order.get("products") or []
        )
        return PurchaseResult(
            provider_order_id=order_id,
            reference=str(order.get("orderExternalId") or reference),
            state=state,
            keys=keys,
            quantity=quantity,
            total_cost_minor=_minor_or_none(total),
            currency=CURRENCY,
            preorder=preorder,
        )


# -- webhooks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderStatusEvent:
    order_id: str
    order_external_id: str | None
    status: str
    updated_at: datetime | None
    name: str = "order.status"


@dataclass(frozen=True)
class ProductUpdateEvent:
    kinguin_id: int | None
    product_id: str
    qty: int | None
    text_qty: int | None
    cheapest_offer_ids: list[str] = field(default_factory=list)
    updated_at: datetime | None = None
    name: str = "product.update"


@dataclass(frozen=True)
class OtherEvent:
    """An event name we do not handle (``order.complete`` is deprecated, new names may
    come): stored and answered 2xx, since Kinguin may disable an endpoint that keeps
    failing (KG ``features/Webhooks.md``)."""

    name: str
    updated_at: datetime | None = None


class WebhookPayloadError(ValueError):
    """The webhook is not one we can read (a known event without its fields, a body
    that is not a JSON object)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_webhook(headers: Mapping[str, str], configured_secret: str | None) -> bool:
    """``X-Event-Secret`` equals the configured secret (constant-time); False when
    either is missing or empty."""
    received = _header(headers, "X-Event-Secret")
    if not received or not configured_secret:
        return False
    return hmac.compare_digest(received.encode(), configured_secret.encode())


def parse_webhook(
    headers: Mapping[str, str], body: bytes | str | Mapping[str, Any]
) -> OrderStatusEvent | ProductUpdateEvent | OtherEvent:
    """The event named by ``X-Event-Name`` (:class:`OtherEvent` for a name we do not
    handle); raises :class:`WebhookPayloadError` for an unreadable body. Verify the
    secret first."""
    name = (_header(headers, "X-Event-Name") or "").strip()
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise WebhookPayloadError("webhook body is not JSON") from None
    else:
        data = dict(body)
    if not isinstance(data, dict):
        raise WebhookPayloadError("webhook body is not a JSON object")
    if name == "order.status":
        if not data.get("orderId") or not data.get("status"):
            raise WebhookPayloadError("order.status without orderId or status")
        ext = data.get("orderExternalId")
        return OrderStatusEvent(
            order_id=str(data["orderId"]),
            order_external_id=str(ext) if ext else None,
            status=str(data["status"]).lower(),
            updated_at=parse_datetime(data.get("updatedAt")),
        )
    if name == "product.update":
        if not data.get("productId"):
            raise WebhookPayloadError("product.update without productId")
        offers = data.get("cheapestOfferId") or []
        return ProductUpdateEvent(
            kinguin_id=parse_int(data.get("kinguinId")),
            product_id=str(data["productId"]),
            qty=parse_int(data.get("qty")),
            text_qty=parse_int(data.get("textQty")),
            cheapest_offer_ids=[str(o) for o in offers]
            if isinstance(offers, list)
            else [str(offers)],
            updated_at=parse_datetime(data.get("updatedAt")),
        )
    return OtherEvent(
        name=safe_text(name, 60) or "(no event name)",
        updated_at=parse_datetime(data.get("updatedAt")),
    )


# -- helpers -------------------------------------------------------------------------------


def _offer(item: Mapping[str, Any]) -> Offer | None:
    product_id = item.get("productId")
    if not product_id:
        return None
    original = item.get("originalName")
    preorder = bool(item.get("isPreorder"))
    return Offer(
        provider=NAME,
        external_id=str(product_id),
        name=str(item.get("name") or original or product_id),
        # the base title: name carries the platform suffix (KG api/products/v1/README.md)
        title=str(original) if original else None,
        cost_minor=_minor_or_none(item.get("price")),
        currency=CURRENCY,
        stock=max(0, stock_for_us(item.get("qty"), item.get("textQty"), preorder)),
        is_preorder=preorder,
        release_date=parse_date(item.get("releaseDate")),
        platform=item.get("platform") or None,
        region=item.get("regionalLimitations") or None,
        updated_at=parse_datetime(item.get("updatedAt")),
        cover_url=_cover(item.get("images")),
    )


def _cover(images: object) -> str | None:
    """``images.cover.url`` (KG api/products/v1/README.md, Product images)."""
    cover = images.get("cover") if isinstance(images, Mapping) else None
    return cover_url_or_none(cover.get("url")) if isinstance(cover, Mapping) else None


def stock_for_us(qty: object, text_qty: object, preorder: bool) -> int:
    """The units we can order: ``textQty`` for a regular product (ordered with
    ``keyType: text``), ``qty`` for a pre-order (ordered without it). A product that
    states no ``textQty`` is counted by ``qty`` (a refused order then falls through)."""
    if preorder or parse_int(text_qty) is None:
        return parse_int(qty) or 0
    return parse_int(text_qty) or 0


def _key(item: Mapping[str, Any]) -> DeliveredKey | None:
    serial = item.get("serial")
    if not serial:
        return None
    key_id = str(item.get("id") or "")
    kind = str(item.get("type") or "text/plain").lower()
    if kind.startswith("image/"):
        try:
            image = base64.b64decode(str(serial), validate=False)
        except (binascii.Error, ValueError):
            return None
        return DeliveredKey(external_id=key_id, image=image, image_type=kind)
    return DeliveredKey(external_id=key_id, code=str(serial))


def _is_duplicate_reference(response: httpx.Response, body: Any) -> bool:
    if response.status_code == 409:
        return True
    if not isinstance(body, dict) or body.get("kind") not in ("ConstraintViolation", "OrderFailed"):
        return False
    text = " ".join(str(body.get(k) or "") for k in ("detail", "propertyPath", "title")).lower()
    return "orderexternalid" in text and (
        "exist" in text or "duplicate" in text or "unique" in text
    )


def _minor_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return to_minor(str(value))
    except ArithmeticError:
        return None
