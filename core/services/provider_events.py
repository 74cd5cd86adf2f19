"""Webhooks from the wholesale providers, registered with core.services.webhooks.

- Kinguin: ``X-Event-Secret`` must equal the configured secret (constant-time compare).
  An event name we do not handle is stored and answered 2xx (Kinguin may disable an
  endpoint that keeps failing, KG ``features/Webhooks.md``).
  ``product.update`` applies stock (``textQty``: we order text keys; ``qty`` for a
  pre-order; older ``updatedAt`` ignored); ``order.status`` queues
  fulfilment of the order whose purchase carries that ``orderExternalId`` (fulfilment then
  asks Kinguin for the truth, so a status that arrives late or twice does no harm).
  Kinguin sends no event id: the de-duplication key is the event name, the object's id
  and its ``updatedAt``, which a redelivery repeats.
- CodesWholesale: ``authHash`` must equal sha256(client id + client signature). ``STOCK``
  applies stock and the single-unit price; ``PREORDER`` queues fulfilment of the order
  whose purchase has that CodesWholesale order id. The de-duplication key is a hash of
  the body (CodesWholesale sends no id either).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select

from core import jobs
from core.config import get_settings
from core.jobs import Job
from core.models import OrderLine, ProviderOffer, ProviderPurchase, WebhookEvent
from core.providers import codeswholesale_postbacks as cw
from core.providers import kinguin as kg
from core.providers.base import to_minor
from core.providers.registry import codeswholesale_postback_credentials, kinguin_webhook_secret
from core.services.provider_sync import apply_stock_change
from core.services.webhook_types import Verified, WebhookRejected, parse_json_object


def authenticate_kinguin(headers: Mapping[str, str], body: bytes) -> Verified:
    if not kg.verify_webhook(headers, kinguin_webhook_secret(get_settings())):
        raise WebhookRejected("X-Event-Secret does not match", 401)
    payload = parse_json_object(body)
    try:
        event = kg.parse_webhook(headers, payload)
    except kg.WebhookPayloadError as exc:
        raise WebhookRejected(str(exc), 400) from None
    if isinstance(event, kg.OrderStatusEvent):
        subject = f"{event.order_id}:{event.status}"
    elif isinstance(event, kg.ProductUpdateEvent):
        subject = event.product_id
    else:  # an event we do not handle: stored, answered 2xx, keyed by its body
        subject = hashlib.sha256(body).hexdigest()[:16]
    stamp = (
        event.updated_at.isoformat() if event.updated_at else hashlib.sha256(body).hexdigest()[:16]
    )
    return Verified(
        event_id=f"{event.name}:{subject}:{stamp}", event_type=event.name, payload=payload
    )


def _fulfil_purchase_order(session: Session, purchase: ProviderPurchase | None, what: str) -> str:
    if purchase is None:
        return f"{what}: no purchase of ours"
    line = session.get(OrderLine, purchase.order_line_id)
    assert line is not None
    jobs.enqueue_after_commit(session, Job.FULFIL_ORDER, line.order_id)
    return f"{what}: fulfilment of order {line.order_id} queued"


def handle_kinguin(session: Session, event: WebhookEvent, payload: dict[str, Any]) -> str:
    parsed = kg.parse_webhook({"X-Event-Name": event.event_type}, payload)
    if isinstance(parsed, kg.OtherEvent):
        return f"ignored {parsed.name}"
    if isinstance(parsed, kg.ProductUpdateEvent):
        preorder = session.exec(
            select(ProviderOffer.is_preorder).where(
                ProviderOffer.provider == "kinguin",
                ProviderOffer.external_id == parsed.product_id,
            )
        ).first()
        stock = (
            kg.stock_for_us(parsed.qty, parsed.text_qty, bool(preorder))
            if parsed.qty is not None or parsed.text_qty is not None
            else None
        )
        return apply_stock_change(
            session=session,
            provider="kinguin",
            external_id=parsed.product_id,
            stock=stock,
            updated_at=parsed.updated_at,
        )
    purchase = None
    if parsed.order_external_id:
        purchase = session.exec(
            select(ProviderPurchase).where(ProviderPurchase.reference == parsed.order_external_id)
        ).first()
    if purchase is None:
        purchase = session.exec(
            select(ProviderPurchase).where(
                ProviderPurchase.provider == "kinguin",
                ProviderPurchase.provider_order_id == parsed.order_id,
            )
        ).first()
    return _fulfil_purchase_order(
        session, purchase, f"kinguin order {parsed.order_id} {parsed.status}"
    )


def authenticate_codeswholesale(headers: Mapping[str, str], body: bytes) -> Verified:
    payload = parse_json_object(body)
    client_id, signature = codeswholesale_postback_credentials(get_settings())
    if not cw.verify_postback(payload, client_id, signature):
        raise WebhookRejected("authHash does not match", 401)
    kind = str(payload.get("type") or "").upper()
    if not kind:
        raise WebhookRejected("postback has no type", 400)
    return Verified(
        event_id=f"{kind}:{hashlib.sha256(body).hexdigest()}", event_type=kind, payload=payload
    )


def handle_codeswholesale(session: Session, event: WebhookEvent, payload: dict[str, Any]) -> str:
    parsed = cw.parse_postback(payload)
    if isinstance(parsed, cw.StockPostback):
        outcomes = []
        for change in parsed.products:
            unit = change.unit_price()
            outcomes.append(
                apply_stock_change(
                    session=session,
                    provider="codeswholesale",
                    external_id=change.product_id,
                    stock=change.quantity,
                    cost_minor=to_minor(unit) if unit is not None else None,
                )
            )
        return "; ".join(outcomes) or "empty STOCK postback"
    if isinstance(parsed, cw.PreorderPostback):
        purchase = None
        if parsed.order_id:
            purchase = session.exec(
                select(ProviderPurchase).where(
                    ProviderPurchase.provider == "codeswholesale",
                    ProviderPurchase.provider_order_id == parsed.order_id,
                )
            ).first()
        return _fulfil_purchase_order(
            session, purchase, f"codeswholesale pre-order {parsed.order_id}"
        )
    return f"ignored {parsed.type}"
