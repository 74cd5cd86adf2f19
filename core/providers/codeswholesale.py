"""CodesWholesale API v2 client (docs/providers.md §2).

Decisions where the public sources are silent or disagree:

- **Token**: ``POST /oauth/token`` with ``grant_type=client_credentials`` and
  ``scope=administration``. The sources disagree on where the credentials go: the
  official PHP SDK sends them in an ``Authorization: Basic`` header (CWSDK
  ``GrantTypeBase::getToken``), community SDKs and golang/oauth2 in the form body. The
  client sends them in the body first; if the server answers ``invalid_client`` (or a
  bare 400/401) it asks once more with the Basic header and keeps using whichever worked
  (providers.md, Corrections: "CW token request"). Both response shapes are read: ``{access_token, expires_in}`` and the wrapper ``{value, expiresIn}``. The token
  is reused until 10 % of its lifetime (at most 60 s) before ``expires_in``; a ``401``
  with ``"error": "invalid_token"`` drops it, fetches a new one and repeats the call
  once (also for order creation: a rejected token means the order was not looked at).
- **Out of stock on ordering**: not documented. ``404`` code ``20001`` (product not in
  the price list) is :class:`OutOfStock`; so is a ``400``/``409`` whose message speaks
  of stock or of an unavailable quantity (``40002``, "quantity less than 1", stays a
  rejection).
- **Order state**: CW's status values are not confirmed, so the state is read from the
  codes: any pre-ordered code (or a code that could not be fetched) makes the purchase
  ``pending``; ``preorder`` is set when a code is a pre-order. Status values that
  plainly say cancelled/failed make it ``failed``.
- **find_purchase**: no source says CW de-duplicates a repeated client order id or can
  search history by it (shared/docs/providers.md, Corrections: "CW duplicate order
  id"), so the client reads the order history (``GET /v2/orders?startFrom=&endOn=``,
  CWSDK ``Order::getHistory``) over a window covering the attempt (from the day before
  it to the day after today, in windows of at most :data:`HISTORY_WINDOW_DAYS` days)
  and matches ``clientOrderId``. It is :class:`Absent` only when every window answered
  a readable list and every listed order carries a ``clientOrderId``; anything else is
  :class:`Unclear`.
- Postbacks (CodesWholesale's webhooks) are read in
  :mod:`core.providers.codeswholesale_postbacks`.
- ``updated_since`` is ignored on v2 (the price list has no such filter); the whole
  list is read, following a ``continuationToken`` when the server pages (v3 style).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
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
    is_number,
    json_body,
    make_http_client,
    parse_date,
    parse_int,
    safe_text,
    send,
)

NAME = "codeswholesale"
CURRENCY = "EUR"
HISTORY_WINDOW_DAYS = 30

CODE_BALANCE_TOO_LOW = 10002
CODE_PRODUCT_NOT_FOUND = 20001
CODE_QUANTITY_TOO_LOW = 40002

_TEXT = {"CODE_TEXT", "TEXT CODE", "TEXT", "CODE"}
_IMAGE = {"CODE_IMAGE", "IMAGE CODE", "IMAGE"}
_PREORDER = {
    "CODE_PREORDER",
    "PRE_ORDER",
    "PRE-ORDERED CODE",
    "PREORDER",
    "PRE-ORDER",
    "PREORDERED CODE",
    "PRE_ORDERED",
}
_FAILED_STATUSES = {"CANCELED", "CANCELLED", "FAILED", "REJECTED", "REFUNDED"}
_STOCK_WORDS = (
    "stock",
    "not available",
    "unavailable",
    "not enough quantity",
    "insufficient quantity",
)


class CodesWholesaleClient:
    """:class:`core.providers.base.ProviderClient` for CodesWholesale v2."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        client_signature: str,
        timeout: float,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._client_signature = client_signature
        self.timeout = timeout
        self._http = make_http_client(
            self.base_url, timeout, transport=transport, http_client=http_client
        )
        self._owns_http = http_client is None
        self._clock = clock
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._basic_auth = False  # the token endpoint wanted the official SDK's Basic header

    def __repr__(self) -> str:
        return f"CodesWholesaleClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # -- protocol ----------------------------------------------------------------------

    def list_offers(self, *, updated_since: datetime | None = None) -> Iterator[Offer]:
        token: str | None = None
        while True:
            params = {"continuationToken": token} if token else None
            body = self._json("GET", "/v2/products", params=params)
            for item in _items(body, "items", "products"):
                offer = self._offer(item)
                if offer is not None:
                    yield offer
            token = body.get("continuationToken") if isinstance(body, dict) else None
            if not token:
                return

    def get_offer(self, external_id: str) -> Offer:
        body = self._json("GET", f"/v2/products/{external_id}")
        offer = self._offer(body) if isinstance(body, dict) else None
        if offer is None:
            raise ProviderRejected(NAME, f"product {external_id}: unreadable answer")
        return offer

    def balance(self) -> Balance:
        body = self._json("GET", "/v2/accounts/current")
        amount = body.get("currentBalance") if isinstance(body, dict) else None
        if amount is None:
            raise ProviderTransientError(NAME, "account answer has no currentBalance")
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
        payload = {
            "allowPreOrder": allow_preorder,
            "orderId": reference,
            "products": [
                {
                    "productId": external_id,
                    "quantity": quantity,
                    "price": decimal_json(from_minor(max_unit_cost_minor)),
                }
            ],
        }
        try:
            body = self._json("POST", "/v2/orders", json=payload, state_changing=True)
        except ProviderRejected as exc:
            if exc.data.get("status") != 409:
                raise
            # Our orderId is taken: an order under it exists (or existed). Never a
            # rejection to fall through on: found, or an unknown outcome.
            lookup = self.find_purchase(reference=reference, placed_at=datetime.now(UTC))
            if isinstance(lookup, Found):
                return lookup.purchase
            raise ProviderOutcomeUnknown(
                NAME,
                f"order {reference}: the orderId is taken, but the history lookup failed"
                if isinstance(lookup, Unclear)
                else f"order {reference}: the orderId is taken, but the history shows no order",
            ) from None
        if not isinstance(body, dict) or not body.get("orderId"):
            raise ProviderOutcomeUnknown(
                NAME, f"order {reference}: unreadable answer; the order may exist"
            )
        return self._result(body, reference=reference, requested=quantity)

    def find_purchase(self, *, reference: str, placed_at: datetime) -> PurchaseLookup:
        placed = placed_at if placed_at.tzinfo else placed_at.replace(tzinfo=UTC)
        start = placed.astimezone(UTC).date() - timedelta(days=1)
        last = datetime.now(UTC).date() + timedelta(days=1)
        while start <= last:
            end = min(last, start + timedelta(days=HISTORY_WINDOW_DAYS))
            params = {"startFrom": start.isoformat(), "endOn": end.isoformat()}
            try:
                body = self._json("GET", "/v2/orders", params=params, not_found=ProviderRejected)
            except ProviderError as exc:
                return Unclear(f"order history failed: {exc.message}")
            if not isinstance(body, (list, dict)) or (
                isinstance(body, dict)
                and not any(isinstance(body.get(k), list) for k in ("items", "orders"))
            ):
                return Unclear("order history answered something unreadable")
            for order in _items(body, "items", "orders"):
                if not isinstance(order, dict) or "clientOrderId" not in order:
                    return Unclear("order history lists orders without clientOrderId")
                if str(order.get("clientOrderId") or "") == reference and order.get("orderId"):
                    order_id = str(order["orderId"])
                    try:
                        return Found(
                            self.fetch_keys(provider_order_id=order_id, reference=reference)
                        )
                    except ProviderError:
                        # the order exists; its codes are collected later by its id
                        return Found(
                            PurchaseResult(
                                provider_order_id=order_id, reference=reference, state="pending"
                            )
                        )
            start = end + timedelta(days=1)
        return Absent(
            f"order history {placed.date() - timedelta(days=1)}..{last} has no clientOrderId "
            f"{reference}"
        )

    def fetch_keys(self, *, provider_order_id: str, reference: str) -> PurchaseResult:
        body = self._json("GET", f"/v2/orders/{provider_order_id}", not_found=ProviderRejected)
        if not isinstance(body, dict):
            raise ProviderTransientError(NAME, f"order {provider_order_id}: unreadable answer")
        return self._result(body, reference=reference, requested=None)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # -- token ---------------------------------------------------------------------------

    def _access_token(self, *, renew: bool = False, stale: str | None = None) -> str:
        with self._token_lock:
            if renew and self._token == stale:
                self._token = None
            if self._token and self._clock() < self._token_expires_at:
                return self._token
            response = self._token_request(basic=self._basic_auth)
            body = json_body(response)
            if not self._basic_auth and _refused_client(response, body):
                retried = self._token_request(basic=True)
                if retried.status_code == 200:
                    self._basic_auth = True
                response, body = retried, json_body(retried)
            if response.status_code != 200:
                raise self._error(response, body, state_changing=False, context="token")
            token, lifetime = _read_token(body)
            if not token:
                raise ProviderAuthError(NAME, "token answer carries no access token")
            margin = min(60.0, lifetime * 0.1)
            self._token = token
            self._token_expires_at = self._clock() + max(0.0, lifetime - margin)
            return token

    def _token_request(self, *, basic: bool) -> httpx.Response:
        form = {"grant_type": "client_credentials", "scope": "administration"}
        if basic:  # the official SDK's way
            return send(
                self._http,
                NAME,
                "POST",
                "/oauth/token",
                data=form,
                auth=httpx.BasicAuth(self.client_id, self._client_secret),
            )
        return send(
            self._http,
            NAME,
            "POST",
            "/oauth/token",
            data={**form, "client_id": self.client_id, "client_secret": self._client_secret},
        )

    # -- requests ------------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        *,
        state_changing: bool = False,
        not_found: type[ProviderError] = OutOfStock,
        **kwargs: Any,
    ) -> Any:
        token = self._access_token()
        for attempt in (1, 2):
            response = send(
                self._http,
                NAME,
                method,
                path,
                state_changing=state_changing,
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )
            body = json_body(response)
            if response.status_code == 401 and attempt == 1 and _is_invalid_token(body):
                token = self._access_token(renew=True, stale=token)
                continue
            if response.is_success:
                return body
            raise self._error(
                response,
                body,
                state_changing=state_changing,
                context=f"{method} {path}",
                not_found=not_found,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(
        self,
        response: httpx.Response,
        body: Any,
        *,
        state_changing: bool,
        context: str,
        not_found: type[ProviderError] = OutOfStock,
    ) -> ProviderError:
        status = response.status_code
        info = body if isinstance(body, dict) else {}
        code = parse_int(info.get("code"))
        message = safe_text(
            info.get("message")
            or info.get("error_description")
            or info.get("error")
            or response.reason_phrase
        )
        detail = (
            f"{context}: HTTP {status}"
            + (f" code {code}" if code is not None else "")
            + f": {message}"
        )
        data = {"status": status, "provider_code": code}
        if status in (401, 403) or (context == "token" and 400 <= status < 500 and status != 429):
            return ProviderAuthError(NAME, detail, **data)
        if status == 429:
            return ProviderTransientError(NAME, detail, **data)
        if status >= 500:
            if state_changing:
                return ProviderOutcomeUnknown(NAME, detail + " (the order may exist)", **data)
            return ProviderTransientError(NAME, detail, **data)
        if code == CODE_BALANCE_TOO_LOW:
            return InsufficientBalance(NAME, detail, **data)
        if code == CODE_PRODUCT_NOT_FOUND:
            return OutOfStock(NAME, detail, **data)
        if code == CODE_QUANTITY_TOO_LOW:
            return ProviderRejected(NAME, detail, **data)
        if status in (400, 409) and any(w in message.lower() for w in _STOCK_WORDS):
            return OutOfStock(NAME, detail, **data)
        if status == 404:
            return not_found(NAME, detail, **data)
        return ProviderRejected(NAME, detail, **data)

    # -- mapping -------------------------------------------------------------------------

    def _offer(self, item: Mapping[str, Any]) -> Offer | None:
        product_id = item.get("productId")
        if not product_id:
            return None
        release = parse_date(item.get("releaseDate"))
        regions = item.get("regions") or []
        region = ", ".join(str(r) for r in regions) if isinstance(regions, list) else str(regions)
        return Offer(
            provider=NAME,
            external_id=str(product_id),
            name=str(item.get("name") or product_id),
            cost_minor=_default_price_minor(item.get("prices")),
            currency=CURRENCY,
            stock=max(0, parse_int(item.get("quantity")) or 0),
            is_preorder=bool(item.get("isPreorder"))
            or (release is not None and release > datetime.now(UTC).date()),
            release_date=release,
            platform=item.get("platform") or None,
            region=region or None,
            cover_url=_cover(item.get("images")),
        )

    def _result(
        self, body: Mapping[str, Any], *, reference: str, requested: int | None
    ) -> PurchaseResult:
        order_id = str(body.get("orderId"))
        keys: list[DeliveredKey] = []
        outstanding = preorder = False
        count = 0
        for product in body.get("products") or []:
            for code in product.get("codes") or []:
                count += 1
                kind = _code_kind(code)
                if kind == "preorder":
                    outstanding = preorder = True
                    continue
                key = self._key(code, kind)
                if key is None:
                    outstanding = True
                else:
                    keys.append(key)
        status = str(body.get("status") or "").upper()
        state: PurchaseState = "pending" if outstanding else "completed"
        if status in _FAILED_STATUSES:
            state = "failed"
        elif count == 0 and requested:
            state = "pending"
        total = body.get("totalPrice")
        return PurchaseResult(
            provider_order_id=order_id,
            reference=str(body.get("clientOrderId") or reference),
            state=state,
            keys=keys,
            quantity=count or (requested or 0),
            total_cost_minor=to_minor(str(total)) if is_number(total) else None,
            currency=CURRENCY,
            preorder=preorder,
        )

    def _key(self, code: Mapping[str, Any], kind: str) -> DeliveredKey | None:
        """The key of one code entry, fetching it when the order answer left ``code``
        empty; ``None`` when it cannot be had right now (the purchase stays pending)."""
        code_id = str(code.get("codeId") or "")
        value = code.get("code")
        link = self._self_link(code)
        if not value and (code_id or link):
            # an empty code is fetched through its rel=self link (CWSDK Code.php,
            # Resource.php), else by id (GET /v2/codes/{codeId})
            try:
                fetched = self._json(
                    "GET", link or f"/v2/codes/{code_id}", not_found=ProviderRejected
                )
            except (ProviderTransientError, ProviderRejected):
                return None
            if not isinstance(fetched, dict):
                return None
            code = {**code, **{k: v for k, v in fetched.items() if v not in (None, "")}}
            kind = _code_kind(code)
            if kind == "preorder":
                return None
            value = code.get("code")
        if not value:
            return None
        if kind == "image":
            try:
                image = base64.b64decode(str(value), validate=False)
            except (binascii.Error, ValueError):
                return None
            filename = str(code.get("filename") or code.get("fileName") or "")
            return DeliveredKey(
                external_id=code_id, image=image, image_type=_image_type(filename, image)
            )
        return DeliveredKey(external_id=code_id, code=str(value))

    def _self_link(self, code: Mapping[str, Any]) -> str | None:
        """The code's ``rel=self`` link, if it points at our CodesWholesale host (the
        bearer token never goes anywhere else); relative links are taken from the base."""
        links = code.get("links")
        for link in links if isinstance(links, list) else []:
            if not isinstance(link, dict) or str(link.get("rel") or "").lower() != "self":
                continue
            href = str(link.get("href") or "")
            if href.startswith(self.base_url + "/"):
                return href
            if href.startswith("/") and not href.startswith("//"):
                return href
        return None


# -- helpers -------------------------------------------------------------------------------


def _read_token(body: Any) -> tuple[str | None, float]:
    if not isinstance(body, dict):
        return None, 0.0
    token = body.get("access_token") or body.get("value") or body.get("accessToken")
    lifetime = body.get("expires_in", body.get("expiresIn"))
    try:
        seconds = float(lifetime) if lifetime is not None else 300.0
    except (TypeError, ValueError):
        seconds = 300.0
    return (str(token) if token else None), max(0.0, seconds)


def _refused_client(response: httpx.Response, body: Any) -> bool:
    """The token endpoint refused the credentials as sent (not a server failure)."""
    if response.status_code not in (400, 401):
        return False
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    return error in ("", "invalid_client", "invalid_request", "unauthorized_client")


def _is_invalid_token(body: Any) -> bool:
    return isinstance(body, dict) and str(body.get("error") or "").lower() == "invalid_token"


def _items(body: Any, *keys: str) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


def _code_kind(code: Mapping[str, Any]) -> str:
    for field_name in ("codeType", "status", "type"):
        value = str(code.get(field_name) or "").strip().upper()
        if value in _PREORDER:
            return "preorder"
        if value in _IMAGE:
            return "image"
        if value in _TEXT:
            return "text"
    return "image" if code.get("filename") or code.get("fileName") else "text"


def _cover(images: object) -> str | None:
    """The largest of the product's ``images`` ({format: SMALL|MEDIUM, image: URL},
    CWSDK Resource/Product.php)."""
    if not isinstance(images, list):
        return None
    found = {
        str(i.get("format", "")).upper(): cover_url_or_none(i.get("image"))
        for i in images
        if isinstance(i, Mapping)
    }
    return (
        found.get("MEDIUM")
        or found.get("SMALL")
        or next((url for url in found.values() if url), None)
    )


def _image_type(filename: str, data: bytes) -> str:
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    if guessed and guessed.startswith("image/"):
        return guessed
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return "application/octet-stream"


def _default_price_minor(prices: Any) -> int | None:
    if not isinstance(prices, list) or not prices:
        return None
    tiers = [p for p in prices if isinstance(p, dict) and is_number(p.get("value"))]
    if not tiers:
        return None
    default = next((p for p in tiers if parse_int(p.get("from")) == 1), None)
    if default is None:
        default = min(tiers, key=lambda p: parse_int(p.get("from")) or 0)
    return to_minor(default["value"])
