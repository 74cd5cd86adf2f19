"""CodesWholesale postbacks (its webhooks, docs/providers.md §2): the signature check
and the body read into one typed postback. The client is
:mod:`core.providers.codeswholesale`."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.providers.http import parse_decimal, parse_int


@dataclass(frozen=True)
class StockChange:
    product_id: str
    quantity: int | None
    prices: list[tuple[str, Decimal]] = field(default_factory=list)  # (priceRangeLabel, price)

    def unit_price(self) -> Decimal | None:
        """The price of one unit: the tier whose range holds a quantity of 1 (labels are
        ranges such as ``1-9``, ``10 - 99``, ``100+``; the exact spellings are not
        confirmed, CWFW stock handler, providers.md Corrections), else the tier with the
        lowest lower bound. None when no label reads as a range."""
        tiers = [(r, price) for label, price in self.prices if (r := price_range(label))]
        for (low, high), price in tiers:
            if low <= 1 and (high is None or high >= 1):
                return price
        return min(tiers, key=lambda t: t[0][0])[1] if tiers else None


_RANGE = re.compile(r"^\s*(\d+)\s*(?:(\+)|(?:-|\u2013|to)\s*(\d+)?)?\s*$", re.IGNORECASE)


def price_range(label: str) -> tuple[int, int | None] | None:
    """A postback ``priceRangeLabel`` as ``(from, to)`` (``to`` None: open-ended):
    ``"1-9"`` → (1, 9), ``"100+"`` → (100, None), ``"10"`` → (10, 10)."""
    match = _RANGE.match(label or "")
    if match is None:
        return None
    low = int(match.group(1))
    if match.group(2):
        return low, None
    if match.group(3):
        return low, int(match.group(3))
    if any(mark in label.lower() for mark in ("-", "\u2013", "to")):
        return low, None  # "10-": open-ended
    return low, low


@dataclass(frozen=True)
class StockPostback:
    products: list[StockChange]
    type: str = "STOCK"


@dataclass(frozen=True)
class PreorderPostback:
    """A pre-ordered code was assigned: fetch the order (``order_id``) or the code."""

    order_id: str | None
    code_id: str | None
    type: str = "PREORDER"


@dataclass(frozen=True)
class ProductPostback:
    """``NEW_PRODUCT``, ``PRODUCT_UPDATED``, ``PRODUCT_HIDDEN`` or ``NEW_FULL_PRODUCT``."""

    type: str
    product_ids: list[str]


@dataclass(frozen=True)
class OtherPostback:
    type: str


Postback = StockPostback | PreorderPostback | ProductPostback | OtherPostback


def postback_hash(client_id: str, client_signature: str) -> str:
    return hashlib.sha256((client_id + client_signature).encode()).hexdigest()


def verify_postback(body: Mapping[str, Any], client_id: str, client_signature: str) -> bool:
    """``authHash == sha256(clientId + clientSignature)`` (hex), compared in constant
    time. False when anything is missing. The hash is a static value, not a signature
    over the body: it proves the sender knows our credentials, nothing more."""
    received = body.get("authHash") if isinstance(body, Mapping) else None
    if not received or not isinstance(received, str) or not client_id or not client_signature:
        return False
    return hmac.compare_digest(
        received.strip().lower().encode(), postback_hash(client_id, client_signature).encode()
    )


def parse_postback(body: Mapping[str, Any]) -> Postback:
    kind = str(body.get("type") or "").upper()
    if kind == "STOCK":
        changes = []
        for p in body.get("products") or []:
            if not isinstance(p, dict) or not p.get("productId"):
                continue
            prices = []
            for pr in p.get("prices") or []:
                value = parse_decimal(pr.get("price", pr.get("value")))
                if value is not None:
                    prices.append((str(pr.get("priceRangeLabel") or pr.get("from") or ""), value))
            changes.append(
                StockChange(
                    product_id=str(p["productId"]),
                    quantity=parse_int(p.get("quantity")),
                    prices=prices,
                )
            )
        return StockPostback(products=changes)
    if kind == "PREORDER":
        order_id = body.get("orderId")
        code_id = body.get("codeId")
        return PreorderPostback(
            order_id=str(order_id) if order_id else None, code_id=str(code_id) if code_id else None
        )
    if kind in ("NEW_PRODUCT", "PRODUCT_UPDATED", "PRODUCT_HIDDEN", "NEW_FULL_PRODUCT"):
        ids = [str(body["productId"])] if body.get("productId") else []
        ids += [
            str(p["productId"])
            for p in body.get("products") or []
            if isinstance(p, dict) and p.get("productId")
        ]
        return ProductPostback(type=kind, product_ids=ids)
    return OtherPostback(type=kind)
