"""Fulfilment: a paid order becomes delivered keys — from our own stock first, then from
the wholesale providers — without ever losing the order, delivering a key twice or
paying a provider twice (DESIGN §4 invariants 1 to 3, §5.3).

:func:`fulfil_order` is idempotent and safe to run any number of times, from any number
of workers, at any moment (the Huey task, reconciliation, an operator's retry):

1. **Lease.** One worker at a time: a compare-and-set on ``orders.fulfilment_lease_until``
   (only ``paid`` orders). A worker that dies leaves a lease that expires; reconciliation
   then runs the order again.
2. **Open purchases first.** A :class:`ProviderPurchase` left ``requested`` or ``unknown``
   by an earlier attempt (its answer was lost) is resolved by asking the provider *by our
   reference* before anything else (invariant 3). Found: its keys are collected.
   Positively absent (:class:`~core.providers.base.Absent`) and the last request older
   than twice ``KEYSHOP_PROVIDER_TIMEOUT`` (so it cannot still be in flight): sent again
   under the *same* reference. Anything else — the lookup failed, or cannot rule the
   order out — and the purchase is *not* sent again: it waits (the run ends in
   :class:`FulfilmentRetry`; reconciliation asks again), and once it has been unknown
   for ``KEYSHOP_UNKNOWN_PURCHASE_SECONDS`` the order goes to ``needs_attention`` with
   the purchase named, for an operator to confirm it was not charged (send again) or
   enter what was bought (core.services.operator). Neither provider documents that it
   de-duplicates a repeated reference (shared/docs/providers.md, Corrections), so
   nothing here relies on it. An unknown purchase's units count as on their way, so its
   line is never bought from the next provider meanwhile. ``pending`` purchases
   (pre-orders, late keys) collect whatever keys are out.
3. **Stock.** The keys checkout reserved for the order (``core.services.reservations``)
   are delivered; each line claims what it still lacks from stock (one atomic statement)
   and the claimed keys are delivered in the same transaction. The common case — every
   line reserved at checkout, or all of it in stock — is one transaction
   (:func:`_fulfil_from_stock_at_once`).
4. **Providers.** For what is still missing, walk the provider chain
   (``KEYSHOP_PROVIDER_CHAIN``, default CodesWholesale then Kinguin). At each provider
   take its cheapest mapped offer with enough free units (stock minus other orders'
   checkout holds) whose cost keeps the minimum margin
   (``KEYSHOP_MIN_MARGIN_PERCENT``; offers in another currency than the product's price
   are skipped — there is no exchange-rate guess). A ``requested`` purchase is committed
   *before* the call; the outcome is recorded after it. Transient errors are retried with
   exponential backoff and jitter; permanent ones fall through to the next provider.
5. **Finish.** Every line complete → ``fulfilled`` and the delivery e-mail. Keys still on
   their way (pre-order, late keys) → the order stays ``paid`` and waits (what was
   delivered stays delivered). Nothing left to try → ``needs_attention`` with a reason an
   operator can act on, and an alert.

No row lock is held while a provider is called. Key plaintext exists only in memory
between the provider's answer and its encryption.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, exists, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import crypto, jobs
from core.config import Settings, get_settings
from core.db import session_scope
from core.errors import InsufficientStock, NotFound
from core.models import (
    Key,
    KeyStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    ProviderOffer,
    ProviderPurchase,
    PurchaseStatus,
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
from core.services.audit import Actor
from core.services.inventory import ClaimedKey, claim_for_lines, claim_keys, deliver_lines
from core.services.orders import transition_order
from core.services.reservations import choose_offers, drop_line_hold

log = logging.getLogger(__name__)

S = OrderStatus
P = PurchaseStatus
SYSTEM = Actor.system("fulfilment")
ACTIVE = (P.REQUESTED, P.UNKNOWN, P.PENDING)
HELD = (KeyStatus.RESERVED, KeyStatus.DELIVERED)


class FulfilmentRetry(Exception):
    """Raised when the order must be tried again later (a purchase whose outcome is still
    unknown, providers temporarily unreachable). The task layer retries with backoff;
    reconciliation is the safety net. Not a DomainError: nothing is wrong with the input."""


@dataclass
class FulfilmentResult:
    order_id: int
    outcome: str  # fulfilled | waiting | needs_attention | busy | skipped
    from_stock: int = 0
    from_providers: int = 0
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    # purchases whose outcome is still unknown after this run (never sent again)
    unsettled: list[str] = field(default_factory=list)
    unsettled_overdue: bool = False  # one of them waited KEYSHOP_UNKNOWN_PURCHASE_SECONDS


@dataclass
class Retry:
    """Backoff policy for transient provider errors inside one run."""

    attempts: int = 3
    base_seconds: float = 0.2
    max_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        # exponential backoff with full jitter
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2**attempt))


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


# -- the use case -------------------------------------------------------------------------


def fulfil_order(
    *,
    order_id: int,
    clients: Mapping[str, ProviderClient] | None = None,
    retry: Retry | None = None,
    now: Callable[[], datetime] = utcnow,
    buy_from: str | None = None,
    min_margin_percent: float | None = None,
    resend_purchase_id: int | None = None,
) -> FulfilmentResult:
    """Fulfil a paid order as far as possible now. Owns its transactions.

    ``buy_from`` restricts new purchases to one provider and ``min_margin_percent``
    overrides the configured margin: an operator's choice for an order that needs
    attention (open purchases at any provider are still settled first).
    ``resend_purchase_id``: an operator confirmed that this purchase of unknown outcome
    was not charged; it is sent again under its reference without asking first."""
    settings = get_settings()
    if min_margin_percent is not None:
        settings = settings.model_copy(update={"min_margin_percent": min_margin_percent})
    retry = retry or Retry()
    quick = _fulfil_from_stock_at_once(order_id, now())
    if quick is not None:
        return quick
    result = FulfilmentResult(order_id=order_id, outcome="skipped")
    if not _take_lease(order_id, now()):
        with session_scope(write=False) as session:
            order = session.get(Order, order_id)
            if order is None:
                raise NotFound(f"order {order_id} does not exist")
            result.outcome = "busy" if order.status == S.PAID else "skipped"
            result.detail = f"order is {order.status}"
        return result
    try:
        chain = clients if clients is not None else provider_clients(settings)
        at = now()
        _resolve_open_purchases(order_id, chain, retry, result, settings, at, resend_purchase_id)
        _deliver_from_stock(order_id, result)
        buyers = {name: c for name, c in chain.items() if buy_from is None or name == buy_from}
        _buy_missing(order_id, buyers, settings, retry, result, at)
        _finish(order_id, result)
    finally:
        _release_lease(order_id)
    if result.unsettled and result.outcome == "waiting":
        raise FulfilmentRetry("; ".join(result.unsettled))
    return result


# The fast path's one read: the order (locked; loaded, so transition_order finds it in
# the session), its lines, how many keys checkout reserved for each, and whether anything
# else was ever started on them (a key in another status or a purchase on any line hands
# the order to the general path).
_L = OrderLine.__table__  # type: ignore[attr-defined]
_K = Key.__table__  # type: ignore[attr-defined]
_PP = ProviderPurchase.__table__  # type: ignore[attr-defined]
_FAST_PATH_READ = (
    sa_select(
        Order,
        _L.c.id,
        _L.c.product_id,
        _L.c.quantity,
        sa_select(func.count())
        .select_from(_K)
        .where(_K.c.order_line_id == _L.c.id, _K.c.status == KeyStatus.RESERVED.value)
        .correlate(_L)
        .scalar_subquery()
        .label("reserved"),
        (
            exists().where(_K.c.order_line_id == _L.c.id, _K.c.status != KeyStatus.RESERVED.value)
            | exists().where(_PP.c.order_line_id == _L.c.id)
        ).label("started"),
    )
    .outerjoin(_L, _L.c.order_id == col(Order.id))
    .where(col(Order.id) == bindparam("order_id"))
    .order_by(_L.c.id)
    .with_for_update(of=Order)
)


def _fulfil_from_stock_at_once(order_id: int, at: datetime) -> FulfilmentResult | None:
    """The common case in one transaction: a paid order nobody has started on, whose
    every line stock serves — with the keys checkout reserved for it, and a claim (product
    order, all or nothing) for what was not reserved. Locks the order row and reads its
    lines in one statement, delivers, marks the order fulfilled and queues the e-mail.
    Returns None — having changed nothing — whenever the general path must decide."""
    with session_scope() as session:
        rows = session.execute(_FAST_PATH_READ, {"order_id": order_id}).all()
        if not rows:
            raise NotFound(f"order {order_id} does not exist")
        order = rows[0][0]
        lease = order.fulfilment_lease_until
        if order.status != S.PAID or (lease is not None and lease > at):
            return None
        if rows[0][1] is None or any(row[5] for row in rows):
            return None  # no lines, or an earlier attempt started: the general path decides
        ids = [int(row[1]) for row in rows]
        requests = [
            (int(row[1]), int(row[2]), int(row[3]) - int(row[4]))
            for row in rows
            if int(row[3]) > int(row[4])
        ]
        if requests:
            try:
                claim_for_lines(session=session, requests=requests)
            except InsufficientStock:
                return None  # nothing more stays reserved; the general path buys the rest
        delivered = deliver_lines(session=session, line_ids=ids)
        transition_order(
            session=session,
            order_id=order_id,
            to_status=S.FULFILLED,
            actor=SYSTEM,
            reason=f"{delivered} keys delivered from stock",
            expected_from=S.PAID,
        )
        jobs.enqueue_after_commit(session, "send_order_email", order_id, "delivered")
        return FulfilmentResult(order_id=order_id, outcome="fulfilled", from_stock=delivered)


def _take_lease(order_id: int, at: datetime) -> bool:
    with session_scope() as session:
        taken = session.execute(
            update(Order)
            .where(
                col(Order.id) == order_id,
                col(Order.status) == S.PAID,
                (col(Order.fulfilment_lease_until).is_(None))
                | (col(Order.fulfilment_lease_until) < at),
            )
            .values(
                fulfilment_lease_until=at
                + timedelta(seconds=get_settings().fulfilment_lease_seconds),
                fulfilment_attempts=Order.fulfilment_attempts + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        return taken == 1


def _release_lease(order_id: int) -> None:
    with session_scope() as session:
        session.execute(
            update(Order)
            .where(col(Order.id) == order_id)
            .values(fulfilment_lease_until=None)
            .execution_options(synchronize_session=False)
        )


# -- what each line still needs ---------------------------------------------------------------


@dataclass
class LineNeed:
    line_id: int
    product_id: int
    quantity: int
    held: int  # keys reserved or delivered for the line
    on_the_way: int  # units in purchases still open or pending

    @property
    def missing(self) -> int:
        return max(0, self.quantity - self.held - self.on_the_way)


_DELIVERED_TO_PURCHASE = (
    sa_select(func.count())
    .select_from(_K)
    .where(_K.c.provider_purchase_id == _PP.c.id)
    .correlate(_PP)
    .scalar_subquery()
)
_LINE_NEEDS = (
    sa_select(
        _L.c.id,
        _L.c.product_id,
        _L.c.quantity,
        sa_select(func.count())
        .select_from(_K)
        .where(_K.c.order_line_id == _L.c.id, _K.c.status.in_(HELD))
        .correlate(_L)
        .scalar_subquery(),
        # units of open or pending purchases not delivered yet
        sa_select(
            func.coalesce(
                func.sum(
                    case(
                        (
                            _PP.c.quantity > _DELIVERED_TO_PURCHASE,
                            _PP.c.quantity - _DELIVERED_TO_PURCHASE,
                        ),
                        else_=0,
                    )
                ),
                0,
            )
        )
        .select_from(_PP)
        .where(_PP.c.order_line_id == _L.c.id, _PP.c.status.in_(ACTIVE))
        .correlate(_L)
        .scalar_subquery(),
    )
    .where(_L.c.order_id == bindparam("order_id"))
    .order_by(_L.c.id)
)


def line_needs(session: Session, order_id: int) -> list[LineNeed]:
    """What each line of the order holds, has on its way and still lacks: one statement."""
    return [
        LineNeed(
            line_id=int(line_id),
            product_id=int(product_id),
            quantity=int(quantity),
            held=int(held),
            on_the_way=int(on_the_way),
        )
        for line_id, product_id, quantity, held, on_the_way in session.execute(
            _LINE_NEEDS, {"order_id": order_id}
        )
    ]


# -- 2. open purchases --------------------------------------------------------------------------


def _resolve_open_purchases(
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


# -- 3. stock -------------------------------------------------------------------------------------


def deliver_missing_from_stock(*, session: Session, order_id: int) -> dict[int, list[ClaimedKey]]:
    """Claim from stock what each line of the order still lacks (as much as there is) and
    deliver it, with the keys reserved for the order at checkout. Returns the keys
    claimed now, by line. Runs in the caller's transaction and never commits."""
    return _claim_and_deliver(session, order_id)[0]


def _claim_and_deliver(session: Session, order_id: int) -> tuple[dict[int, list[ClaimedKey]], int]:
    """:func:`deliver_missing_from_stock`, also returning how many keys were delivered
    (claimed now or reserved at checkout)."""
    claimed: dict[int, list[ClaimedKey]] = {}
    needs = line_needs(session, order_id)
    for need in needs:
        if need.missing <= 0:
            continue
        keys = claim_keys(
            session=session,
            product_id=need.product_id,
            quantity=need.missing,
            line_id=need.line_id,
            allow_partial=True,
        )
        if keys:
            claimed[need.line_id] = keys
    delivered = deliver_lines(session=session, line_ids=[n.line_id for n in needs])
    return claimed, delivered


def _deliver_from_stock(order_id: int, result: FulfilmentResult) -> None:
    with session_scope() as session:
        result.from_stock += _claim_and_deliver(session, order_id)[1]


# -- 4. providers ----------------------------------------------------------------------------------


def _buy_missing(
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
                kind="low_balance",
                subject=f"provider:{purchase.provider}",
                message=f"{purchase.provider} refused a purchase for lack of balance; top it up",
                severity="error",
            )
        if isinstance(exc, ProviderAuthError):
            raise_alert(
                session=session,
                kind="provider_down",
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


# -- 5. finish ------------------------------------------------------------------------------------


def _finish(order_id: int, result: FulfilmentResult) -> None:
    with session_scope() as session:
        order = session.get(Order, order_id)
        assert order is not None
        if order.status != S.PAID:
            result.outcome = "skipped"
            return
        needs = line_needs(session, order_id)
        missing = sum(n.missing for n in needs)
        waiting = sum(n.on_the_way for n in needs)
        delivered = sum(min(n.held, n.quantity) for n in needs)
        total = sum(n.quantity for n in needs)
        if missing == 0 and waiting == 0:
            transition_order(
                session=session,
                order_id=order_id,
                to_status=S.FULFILLED,
                actor=SYSTEM,
                reason=f"{total} keys delivered ({result.from_stock} from stock, "
                f"{result.from_providers} from providers in this run)",
            )
            jobs.enqueue_after_commit(session, "send_order_email", order_id, "delivered")
            result.outcome = "fulfilled"
        elif missing == 0 and not result.unsettled_overdue:
            result.outcome = "waiting"
            result.detail = (
                f"{delivered} of {total} keys delivered; {waiting} on their way from providers"
            )
            if order.fulfilment_attempts == 1:
                jobs.enqueue_after_commit(session, "send_order_email", order_id, "waiting")
        else:
            reason = (
                "; ".join(result.unsettled + result.problems)
                or f"{missing} keys could not be sourced"
            )
            reason = f"{delivered} of {total} keys delivered. {reason}"
            transition_order(
                session=session,
                order_id=order_id,
                to_status=S.NEEDS_ATTENTION,
                actor=SYSTEM,
                reason=reason[:4000],
            )
            raise_alert(
                session=session,
                kind="needs_attention",
                subject=f"order:{order.number}",
                message=reason[:4000],
            )
            jobs.enqueue_after_commit(session, "send_order_email", order_id, "attention")
            result.outcome = "needs_attention"
            result.detail = reason
