"""Provider purchases: open one (committed before the call), call the provider, record
its answer (keys stored encrypted, never twice), and settle purchases whose answer was
lost. A provider is never paid twice: a purchase of unknown outcome is asked about by
our reference and sent again only when the provider positively lacks it and our last
request cannot still be in flight (DESIGN §4 invariant 3; the package docstring)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import crypto, tracing
from core.config import Settings, get_settings
from core.db import session_scope
from core.models import (
    AlertKind,
    Key,
    KeyStatus,
    Order,
    OrderLine,
    Product,
    ProviderOffer,
    ProviderPurchase,
    new_uuid,
    row_id,
    utcnow,
)
from core.providers.base import (
    Absent,
    DeliveredKey,
    Found,
    InsufficientBalance,
    OutOfStock,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderTransientError,
    PurchaseResult,
)
from core.services.alerts import raise_alert
from core.services.fulfilment.state import (
    ACTIVE,
    FulfilmentResult,
    P,
    Retry,
    line_needs,
)
from core.services.reservations import choose_offers, drop_line_hold

log = logging.getLogger(__name__)

_clients_cache: dict[tuple[str, ...], dict[str, ProviderClient]] = {}


def provider_clients(settings: Settings | None = None) -> dict[str, ProviderClient]:
    """The configured clients, built once per process (they keep connections open)."""
    from core.providers.registry import build_clients

    settings = settings or get_settings()
    cache_key = (
        settings.provider_chain,
        settings.codeswholesale_base_url or "",
        settings.kinguin_base_url or "",
        settings.simulator_url,
    )
    if cache_key not in _clients_cache:
        _clients_cache[cache_key] = build_clients(settings)
    return _clients_cache[cache_key]


# -- 2. open purchases --------------------------------------------------------------------------


def resolve_open_purchases(
    order_id: int,
    clients: Mapping[str, ProviderClient],
    retry: Retry,
    result: FulfilmentResult,
    settings: Settings,
    at: datetime,
    resend_purchase_id: int | None = None,
) -> None:
    with session_scope(write=False) as session:
        purchases = session.exec(
            select(ProviderPurchase)
            .join(OrderLine, col(OrderLine.id) == ProviderPurchase.order_line_id)
            .where(OrderLine.order_id == order_id, col(ProviderPurchase.status).in_(ACTIVE))
            .order_by(col(ProviderPurchase.id))
        ).all()
    for purchase in purchases:
        client = clients.get(purchase.provider)
        if client is None:
            # Never failed (that would buy the line again elsewhere): it may exist there.
            _hold(purchase, f"provider {purchase.provider} is not configured", result, settings, at)
            continue
        if purchase.status == P.PENDING:
            _collect_pending(purchase, client, result)
        elif purchase.id == resend_purchase_id:
            _call_provider(row_id(purchase.id), client, retry, result, settings, at)
        else:
            _settle_unknown(purchase, client, retry, result, settings, at)


def _collect_pending(
    purchase: ProviderPurchase, client: ProviderClient, result: FulfilmentResult
) -> None:
    try:
        if purchase.provider_order_id:
            answer = client.fetch_keys(
                provider_order_id=purchase.provider_order_id, reference=purchase.reference
            )
        else:
            lookup = client.find_purchase(
                reference=purchase.reference, placed_at=purchase.created_at
            )
            if not isinstance(lookup, Found):
                return
            answer = lookup.purchase
    except ProviderError as exc:
        log.info("keys of purchase %s not collectable yet: %s", purchase.reference, exc.code)
        return
    result.from_providers += _record_result(row_id(purchase.id), answer, result)


def _settle_unknown(
    purchase: ProviderPurchase,
    client: ProviderClient,
    retry: Retry,
    result: FulfilmentResult,
    settings: Settings,
    at: datetime,
) -> None:
    """Invariant 3: a purchase whose answer was lost is asked about by our reference; it
    is sent again only when the provider positively shows it has no such order and the
    last request cannot still be in flight; otherwise it waits (:func:`_hold`)."""
    reason = "not asked"
    for attempt in range(retry.attempts):
        lookup = client.find_purchase(reference=purchase.reference, placed_at=purchase.created_at)
        if isinstance(lookup, Found):
            result.from_providers += _record_result(row_id(purchase.id), lookup.purchase, result)
            return
        if isinstance(lookup, Absent):
            if at - purchase.updated_at >= _in_flight(settings):
                log.info("purchase %s: %s; sending it again", purchase.reference, lookup.evidence)
                _call_provider(row_id(purchase.id), client, retry, result, settings, at)
                return
            reason = (
                f"{lookup.evidence}, but the last request may still be in flight "
                f"(asking again after {_in_flight(settings).total_seconds():g} s)"
            )
            break
        reason = lookup.reason
        retry.sleep(retry.delay(attempt))
    _hold(purchase, reason, result, settings, at)


def _in_flight(settings: Settings) -> timedelta:
    """How long after our last request an "absent" answer can be trusted: the request
    may still be on its way through the provider for as long as we waited for it."""
    return timedelta(seconds=2 * settings.provider_timeout_seconds)


def _hold(
    purchase: ProviderPurchase,
    reason: str,
    result: FulfilmentResult,
    settings: Settings,
    at: datetime,
) -> None:
    """The purchase's outcome stays unknown: it is never sent again and its units stay
    "on their way" (its line is not bought elsewhere). Recorded for the operator; past
    ``KEYSHOP_UNKNOWN_PURCHASE_SECONDS`` the order goes to needs_attention."""
    note = f"outcome unknown: {reason}"[:2000]
    with session_scope() as session:
        # updated_at is left alone: it dates our last request to the provider
        session.execute(
            update(ProviderPurchase)
            .where(
                col(ProviderPurchase.id) == purchase.id, col(ProviderPurchase.status).in_(ACTIVE)
            )
            .values(
                status=case(
                    (col(ProviderPurchase.status) == P.PENDING, P.PENDING), else_=P.UNKNOWN
                ),
                error=note,
            )
            .execution_options(synchronize_session=False)
        )
    result.unsettled.append(
        f"purchase {purchase.reference} at {purchase.provider} ({purchase.quantity} unit(s) "
        f"for line {purchase.order_line_id}, since {purchase.created_at:%Y-%m-%d %H:%M} UTC): "
        f"{reason}. It is not sent again until the provider shows it has no such order: "
        "confirm it was not charged and send it again, or enter what was bought"
    )
    if at - purchase.created_at >= timedelta(seconds=settings.unknown_purchase_seconds):
        result.unsettled_overdue = True


# -- 4. providers ----------------------------------------------------------------------------------


def buy_missing(
    order_id: int,
    clients: Mapping[str, ProviderClient],
    settings: Settings,
    retry: Retry,
    result: FulfilmentResult,
    at: datetime,
) -> None:
    with session_scope(write=False) as session:
        needs = [n for n in line_needs(session, order_id) if n.missing > 0]
        order = session.get(Order, order_id)
        assert order is not None
        order_number = order.number
    for need in needs:
        tried: set[int] = set()
        while True:
            with session_scope(write=False) as session:
                current = next(
                    n for n in line_needs(session, order_id) if n.line_id == need.line_id
                )
                if current.missing <= 0:
                    break
                product = session.get(Product, need.product_id)
                assert product is not None
                offers = [
                    o
                    for o in choose_offers(
                        session,
                        product=product,
                        quantity=current.missing,
                        settings=settings,
                        except_order_id=order_id,
                    )
                    if o.id not in tried and o.provider in clients
                ]
            if not offers:
                result.problems.append(
                    f"line {need.line_id} ({product.title}): {current.missing} missing; no provider offer with stock "
                    f"within the {settings.min_margin_percent:g}% margin is left"
                )
                break
            offer = offers[0]
            client = clients[offer.provider]
            # A provider may cap the units of one order (Kinguin: 9 per offer): the line is
            # then bought in several purchases, each under its own reference.
            cap = getattr(client, "max_units_per_purchase", None) or current.missing
            purchase_id = _open_purchase(
                order_number, need.line_id, offer, min(current.missing, cap)
            )
            with tracing.span(
                "provider purchase",
                **{"keyshop.purchase_id": purchase_id, "keyshop.provider": offer.provider},
            ):
                outcome = _call_provider(purchase_id, client, retry, result, settings, at)
            if outcome is not None:
                result.problems.append(f"line {need.line_id} at {offer.provider}: {outcome}")
            if outcome is not None or _purchase_status(purchase_id) == P.FAILED:
                tried.add(row_id(offer.id))  # this offer is done for the line


def _purchase_status(purchase_id: int) -> str:
    with session_scope(write=False) as session:
        purchase = session.get(ProviderPurchase, purchase_id)
        assert purchase is not None
        return purchase.status


def _open_purchase(order_number: str, line_id: int, offer: ProviderOffer, quantity: int) -> int:
    """Record the intent and commit it before the provider is called (invariant 3). The
    line's checkout hold on provider units (if any) goes in the same transaction."""
    with session_scope() as session:
        purchase = ProviderPurchase(
            order_line_id=line_id,
            provider=offer.provider,
            reference=f"{order_number}-{line_id}-{secrets.token_hex(4)}".lower(),
            offer_id=offer.id,
            quantity=quantity,
            unit_cost_minor=offer.cost_minor,
            currency=offer.currency,
            status=P.REQUESTED,
        )
        session.add(purchase)
        drop_line_hold(session=session, line_id=line_id)  # the purchase stands for it now
        session.flush()
        return purchase.id  # type: ignore[return-value]


def _call_provider(
    purchase_id: int,
    client: ProviderClient,
    retry: Retry,
    result: FulfilmentResult,
    settings: Settings,
    at: datetime,
) -> str | None:
    """Send the purchase (again, under the same reference); record the outcome. Returns
    a problem description when the purchase failed for good, else None (completed,
    pending, or held with its outcome unknown: see :func:`_hold`)."""
    with session_scope(write=False) as session:
        purchase = session.get(ProviderPurchase, purchase_id)
        assert purchase is not None
        offer = session.get(ProviderOffer, purchase.offer_id) if purchase.offer_id else None
        line = session.get(OrderLine, purchase.order_line_id)
        product = session.get(Product, line.product_id) if line else None
        # A pre-order is bought as one; anything else must not turn into a pre-order at the
        # provider (CodesWholesale turns a shortfall into pre-ordered codes when allowed).
        preorder = bool(product and product.is_preorder)
    if offer is None:
        if purchase.status != P.REQUESTED or purchase.attempts:
            # it may have been sent: never fail it (the line would be bought elsewhere)
            _hold(purchase, "the offer it was bought under no longer exists", result, settings, at)
            return None
        _record_failure(purchase_id, "the offer it was bought under no longer exists")
        return "offer gone"
    for attempt in range(retry.attempts):
        _bump_attempts(purchase_id)
        try:
            answer = client.purchase(
                reference=purchase.reference,
                external_id=offer.external_id,
                quantity=purchase.quantity,
                max_unit_cost_minor=purchase.unit_cost_minor or 0,
                currency=purchase.currency,
                allow_preorder=preorder,
            )
        except ProviderOutcomeUnknown as exc:
            _mark(purchase_id, P.UNKNOWN, exc.message)
            # Ask before anything else. Found: collect. Absent right after a lost answer
            # proves nothing (the request may still be in flight), and a failed lookup
            # proves nothing either: the purchase waits, never sent again here.
            lookup = client.find_purchase(
                reference=purchase.reference, placed_at=purchase.created_at
            )
            if isinstance(lookup, Found):
                result.from_providers += _record_result(purchase_id, lookup.purchase, result)
                return None
            why = (
                f"{exc.message}; {lookup.evidence}, but the request may still be in flight"
                if isinstance(lookup, Absent)
                else f"{exc.message}; lookup: {lookup.reason}"
            )
            with session_scope(write=False) as session:
                held = session.get(ProviderPurchase, purchase_id)
                assert held is not None
            _hold(held, why, result, settings, at)
            return None
        except ProviderTransientError as exc:
            _mark(purchase_id, P.REQUESTED, exc.message)
            retry.sleep(retry.delay(attempt))
            continue
        except ProviderError as exc:
            _record_failure(purchase_id, exc.message, exc=exc, offer_id=offer.id)
            return exc.message
        result.from_providers += _record_result(purchase_id, answer, result)
        return None
    with session_scope(write=False) as session:
        state = session.get(ProviderPurchase, purchase_id)
        assert state is not None
    # Only errors raised before the request could take effect (connection refused, 429,
    # a 5xx to a read) end here: the provider never took the order.
    _record_failure(purchase_id, f"still failing after {retry.attempts} attempts: {state.error}")
    return f"{purchase.provider} unreachable ({state.error})"


def _bump_attempts(purchase_id: int) -> None:
    with session_scope() as session:
        session.execute(
            update(ProviderPurchase)
            .where(col(ProviderPurchase.id) == purchase_id)
            .values(attempts=ProviderPurchase.attempts + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _mark(purchase_id: int, status: str, error: str | None = None) -> None:
    with session_scope() as session:
        session.execute(
            update(ProviderPurchase)
            .where(col(ProviderPurchase.id) == purchase_id)
            .values(status=status, error=error, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _record_failure(
    purchase_id: int, reason: str, *, exc: ProviderError | None = None, offer_id: int | None = None
) -> None:
    with session_scope() as session:
        purchase = session.get(ProviderPurchase, purchase_id)
        assert purchase is not None
        purchase.status = P.FAILED
        purchase.error = reason[:2000]
        purchase.updated_at = utcnow()
        session.add(purchase)
        if isinstance(exc, OutOfStock) and offer_id is not None:
            offer = session.get(ProviderOffer, offer_id)
            if offer is not None:
                offer.stock = 0
                session.add(offer)
        if isinstance(exc, InsufficientBalance):
            raise_alert(
                session=session,
                kind=AlertKind.LOW_BALANCE,
                subject=f"provider:{purchase.provider}",
                message=f"{purchase.provider} refused a purchase for lack of balance; top it up",
                severity="error",
            )
        if isinstance(exc, ProviderAuthError):
            raise_alert(
                session=session,
                kind=AlertKind.PROVIDER_DOWN,
                subject=f"provider:{purchase.provider}",
                message=f"{purchase.provider} refused our credentials: {reason}",
                severity="error",
            )


def _record_result(purchase_id: int, answer: PurchaseResult, result: FulfilmentResult) -> int:
    """Store the keys the provider handed over and the purchase's new state in one
    transaction (:func:`store_purchase_result`). Returns how many new keys were stored."""
    with session_scope() as session:
        return store_purchase_result(
            session=session, purchase_id=purchase_id, answer=answer, problems=result.problems
        )


def store_purchase_result(
    *, session: Session, purchase_id: int, answer: PurchaseResult, problems: list[str]
) -> int:
    """Store the keys of ``answer`` (encrypted, delivered to the purchase's line) and the
    purchase's new state; what the operator should know goes to ``problems``. Returns
    how many new keys were stored. Keys already stored for this purchase (a second look
    at the same order) are skipped by their fingerprint. Runs in the caller's
    transaction and never commits."""
    from core.blobs import get_blob_store

    vault = crypto.get_vault()
    stored = 0
    purchase = session.get(ProviderPurchase, purchase_id)
    assert purchase is not None
    line = session.get(OrderLine, purchase.order_line_id)
    assert line is not None
    have = session.exec(
        select(func.count()).select_from(Key).where(Key.provider_purchase_id == purchase_id)
    ).one()
    now = utcnow()
    for delivered in answer.keys:
        if have + stored >= purchase.quantity:
            break
        fingerprint = _fingerprint(delivered, vault)
        if fingerprint is None:
            continue
        owner = session.exec(
            select(Key.provider_purchase_id).where(Key.fingerprint == fingerprint)
        ).first()
        if (
            owner is None
            and session.exec(select(Key.id).where(Key.fingerprint == fingerprint)).first() is None
        ):
            row = _key_row(delivered, fingerprint, purchase, line, vault, now, get_blob_store)
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
                stored += 1
                continue
            except IntegrityError:
                owner = session.exec(
                    select(Key.provider_purchase_id).where(Key.fingerprint == fingerprint)
                ).first()
        if owner != purchase_id:
            problems.append(
                f"{purchase.provider} delivered a key for purchase {purchase.reference} that is already in "
                "our inventory (not delivered again)"
            )
    complete = have + stored >= purchase.quantity
    purchase.provider_order_id = answer.provider_order_id or purchase.provider_order_id
    if answer.total_cost_minor is not None and purchase.quantity:
        purchase.unit_cost_minor = answer.total_cost_minor // purchase.quantity
    if complete:
        purchase.status = P.COMPLETED
    elif answer.state == "failed":
        purchase.status = P.FAILED
        purchase.error = "the provider cancelled or refunded the order"
    else:
        purchase.status = P.PENDING
    purchase.updated_at = now
    session.add(purchase)
    return stored


def _fingerprint(delivered: DeliveredKey, vault: crypto.KeyVault) -> bytes | None:
    if delivered.code and delivered.code.strip():
        return vault.fingerprint(delivered.code)
    if delivered.image:
        return vault.fingerprint("image:" + hashlib.sha256(delivered.image).hexdigest())
    return None


def _key_row(
    delivered: DeliveredKey,
    fingerprint: bytes,
    purchase: ProviderPurchase,
    line: OrderLine,
    vault: crypto.KeyVault,
    now: datetime,
    blob_store: Callable[[], Any],
) -> Key:
    """A delivered key row for ``line``. Text keys are encrypted in the row; an image key
    goes (encrypted) to the blob store and the row holds its name, encrypted."""
    row_id = new_uuid()
    if delivered.code and delivered.code.strip():
        plaintext, kind = delivered.code.strip().encode("utf-8"), "text"
    else:
        assert delivered.image is not None
        content_type = delivered.image_type or "image/png"
        name = f"keys/{row_id}.{content_type.split('/')[-1]}"
        blob_store().put(name, delivered.image, content_type=content_type)
        plaintext, kind = name.encode("utf-8"), "image"
    version, blob = vault.encrypt(plaintext, row_id=row_id)
    return Key(
        id=row_id,
        product_id=line.product_id,
        status=KeyStatus.DELIVERED,
        kind=kind,
        ciphertext=blob,
        key_version=version,
        fingerprint=fingerprint,
        provider_purchase_id=purchase.id,
        supplier=purchase.provider,
        cost_minor=purchase.unit_cost_minor,
        cost_currency=purchase.currency,
        order_line_id=line.id,
        created_at=now,
        delivered_at=now,
    )
