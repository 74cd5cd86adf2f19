"""The order flow of fulfilment: the lease (one worker at a time), the fast path (the
whole order from stock in one transaction), delivery from stock, and the finish
(fulfilled, waiting or needs_attention). Everything about provider purchases is in
:mod:`.purchases`; the package docstring tells the whole run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from core import tracing
from core.config import Settings, get_settings
from core.db import session_scope
from core.errors import InsufficientStock, NotFound
from core.models import (
    AlertKind,
    KeyStatus,
    Order,
    utcnow,
)
from core.providers.base import (
    ProviderClient,
)
from core.services import locking
from core.services.alerts import raise_alert
from core.services.fulfilment.purchases import buy_missing, resolve_open_purchases
from core.services.fulfilment.state import (
    _K,
    _L,
    _PP,
    SYSTEM,
    FulfilmentResult,
    FulfilmentRetry,
    Retry,
    S,
    line_needs,
)
from core.services.inventory import ClaimedKey, claim_for_lines, claim_keys, deliver_lines
from core.services.notifications import queue_order_email
from core.services.orders import record_transition, transition_order

# -- the use case -------------------------------------------------------------------------


@tracing.traced("order fulfil", "order_id", "buy_from")
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
        chain = clients if clients is not None else _provider_clients(settings)
        at = now()
        resolve_open_purchases(order_id, chain, retry, result, settings, at, resend_purchase_id)
        _deliver_from_stock(order_id, result)
        buyers = {name: c for name, c in chain.items() if buy_from is None or name == buy_from}
        buy_missing(order_id, buyers, settings, retry, result, at)
        _finish(order_id, result)
    finally:
        _release_lease(order_id)
    if result.unsettled and result.outcome == "waiting":
        raise FulfilmentRetry("; ".join(result.unsettled))
    return result


def _provider_clients(settings: Settings) -> Mapping[str, ProviderClient]:
    # Looked up on the package, where tasks and tests see (and replace) it.
    from core.services import fulfilment

    return fulfilment.provider_clients(settings)


# The fast path's one read: the order's status and lease (its row locked; columns, not an
# ORM object: the hot path keeps the ORM off its statements, bench/NOTES.md), its lines,
# how many keys checkout reserved for each, and whether anything else was ever started on
# them (a key in another status or a purchase on any line hands the order to the general
# path).
_O = Order.__table__  # type: ignore[attr-defined]
_FAST_PATH_READ = locking.locking_the_order(
    sa_select(
        _O.c.status,
        _O.c.fulfilment_lease_until,
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
    .select_from(_O)
    .outerjoin(_L, _L.c.order_id == _O.c.id)
    .where(_O.c.id == bindparam("order_id"))
    .order_by(_L.c.id)
)


def _fulfil_from_stock_at_once(order_id: int, at: datetime) -> FulfilmentResult | None:
    """The common case in one transaction: a paid order nobody has started on, whose
    every line stock serves — with the keys checkout reserved for it, and a claim (product
    order, all or nothing) for what was not reserved. Locks the order row and reads its
    lines in one statement, delivers, marks the order fulfilled and queues the e-mail.
    Returns None — having changed nothing — whenever the general path must decide."""
    with session_scope() as session:
        rows = session.connection().execute(_FAST_PATH_READ, {"order_id": order_id}).all()
        if not rows:
            raise NotFound(f"order {order_id} does not exist")
        status, lease = rows[0][0], rows[0][1]
        if status != S.PAID or (lease is not None and lease > at):
            return None
        if rows[0][2] is None or any(row[6] for row in rows):
            return None  # no lines, or an earlier attempt started: the general path decides
        ids = [int(row[2]) for row in rows]
        requests = [
            (int(row[2]), int(row[3]), int(row[4]) - int(row[5]))
            for row in rows
            if int(row[4]) > int(row[5])
        ]
        if requests:
            try:
                claim_for_lines(session=session, requests=requests)
            except InsufficientStock:
                return None  # nothing more stays reserved; the general path buys the rest
        delivered = deliver_lines(session=session, line_ids=ids)
        record_transition(
            session=session,
            order_id=order_id,
            to_status=S.FULFILLED,
            actor=SYSTEM,
            reason=f"{delivered} keys delivered from stock",
            expected_from=S.PAID,
        )
        queue_order_email(session=session, order_id=order_id, kind="delivered")
        return FulfilmentResult(order_id=order_id, outcome="fulfilled", from_stock=delivered)


def _take_lease(order_id: int, at: datetime) -> bool:
    with session_scope() as session:
        taken: int = session.execute(
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
            queue_order_email(session=session, order_id=order_id, kind="delivered")
            result.outcome = "fulfilled"
        elif missing == 0 and not result.unsettled_overdue:
            result.outcome = "waiting"
            result.detail = (
                f"{delivered} of {total} keys delivered; {waiting} on their way from providers"
            )
            if order.fulfilment_attempts == 1:
                queue_order_email(session=session, order_id=order_id, kind="waiting")
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
                kind=AlertKind.NEEDS_ATTENTION,
                subject=f"order:{order.number}",
                message=reason[:4000],
            )
            queue_order_email(session=session, order_id=order_id, kind="attention")
            result.outcome = "needs_attention"
            result.detail = reason
