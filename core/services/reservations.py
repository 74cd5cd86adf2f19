"""Stock reservations: what an order will be served from, held from checkout on.

DESIGN §5.1, after Saleor's stock reservations. When an order is placed,
:func:`reserve_order` holds, in the same transaction as the order itself:

- **own keys**: as many as there are, up to each line's quantity, claimed for the line
  (``reserved``, bound to it, with ``reserved_at``) by the same atomic claim fulfilment
  uses (``inventory.claim_keys``). They are out of ``available`` stock at once, so the
  product page, the console and the next checkout no longer count them. They are held
  until the order is paid (fulfilment then delivers exactly these keys) or until it
  leaves ``pending_payment`` unpaid; an order nobody pays is cancelled by
  ``maintenance.expire_unpaid_orders`` after ``KEYSHOP_UNPAID_ORDER_MINUTES``, which is
  therefore the reservation's expiry.
- **provider units** for the rest of a line: an :class:`~core.models.OfferHold` on the
  offer fulfilment would buy from (:func:`offer_choices`). An offer's free units are its
  reported stock minus the holds of orders still ``pending_payment`` or ``paid``
  (:func:`held_units`); the offers are locked (``locking.lock_offers``) while they are
  counted and the hold written, so two checkouts never count the same units. A hold goes
  when the order is cancelled, or when fulfilment opens the purchase it stood for.

If a line cannot be covered, :class:`NothingToServe` is raised with every shortfall and
the caller's transaction rolls back: nothing is written.

:func:`release_reservation` is the one rule for giving it back: a cancelled order holds
nothing. ``orders.transition_order`` calls it on every move to ``cancelled`` (expiry,
Stripe refusing the session, a checkout that failed after its commit, an operator).

Every function runs in the caller's transaction and never commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from core.config import Settings, get_settings
from core.errors import InsufficientStock
from core.models import OfferHold, Order, OrderLine, OrderStatus, Product, ProviderOffer, row_id
from core.services import locking
from core.services.catalogue import note_stock_changed
from core.services.inventory import claim_keys

__all__ = [
    "NothingToServe",
    "OfferChoice",
    "choose_offers",
    "held_units",
    "offer_choices",
    "release_reservation",
    "reserve_order",
]

_HOLDS = OfferHold.__table__  # type: ignore[attr-defined]
_ORDERS = Order.__table__  # type: ignore[attr-defined]
#: Orders whose holds still count: not paid yet, or paid and not yet bought for.
_HOLDING = (OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value)


class NothingToServe(InsufficientStock):
    """Some lines of the order cannot be covered by own keys plus free provider units.
    ``details`` holds ``{"product_id", "requested", "available"}`` per product short."""

    code = "nothing_to_serve"


# -- provider offers and holds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferChoice:
    """An offer fulfilment would buy from, and how many of its units no order holds."""

    offer: ProviderOffer
    free: int


def held_units(
    *, session: Session, offer_ids: Iterable[int], except_order_id: int | None = None
) -> dict[int, int]:
    """Units held per offer by orders still ``pending_payment`` or ``paid`` (absent: 0),
    in one grouped query; ``except_order_id`` leaves that order's own holds out (the
    order being fulfilled does not compete with itself). Read-only."""
    wanted = sorted(set(offer_ids))
    if not wanted:
        return {}
    query = (
        select(_HOLDS.c.offer_id, func.sum(_HOLDS.c.quantity))
        .join(_ORDERS, _ORDERS.c.id == _HOLDS.c.order_id)
        .where(_HOLDS.c.offer_id.in_(wanted), _ORDERS.c.status.in_(_HOLDING))
        .group_by(_HOLDS.c.offer_id)
    )
    if except_order_id is not None:
        query = query.where(_HOLDS.c.order_id != except_order_id)
    return {int(oid): int(n) for oid, n in session.connection().execute(query)}


def offer_choices(
    session: Session,
    *,
    product: Product,
    quantity: int,
    settings: Settings,
    except_order_id: int | None = None,
) -> list[OfferChoice]:
    """The offers to try for ``quantity`` units of ``product``, in order: for each provider
    in the chain, its cheapest mapped offer (priced in the product's currency) whose free
    units (stock minus holds) cover ``quantity`` and whose cost keeps the minimum margin.
    Two queries whatever the number of providers."""
    ceiling = product.price_minor * (100 - settings.min_margin_percent) / 100
    providers = list(settings.providers)
    offers = session.scalars(
        select(ProviderOffer)
        .where(
            col(ProviderOffer.product_id) == product.id,
            col(ProviderOffer.provider).in_(providers),
            col(ProviderOffer.stock) >= quantity,
            col(ProviderOffer.cost_minor).is_not(None),
            col(ProviderOffer.currency) == product.currency,
        )
        .order_by(col(ProviderOffer.cost_minor), col(ProviderOffer.id))
    ).all()
    offers = [o for o in offers if o.cost_minor is not None and o.cost_minor <= ceiling]
    held = held_units(
        session=session,
        offer_ids=[o.id for o in offers if o.id is not None],
        except_order_id=except_order_id,
    )
    best: dict[str, OfferChoice] = {}
    for offer in offers:
        free = offer.stock - held.get(offer.id or 0, 0)
        if offer.provider not in best and free >= quantity:
            best[offer.provider] = OfferChoice(offer, free)
    return [best[p] for p in providers if p in best]


def choose_offers(
    session: Session,
    *,
    product: Product,
    quantity: int,
    settings: Settings,
    except_order_id: int | None = None,
) -> list[ProviderOffer]:
    """:func:`offer_choices` without the free counts (fulfilment's view)."""
    return [
        c.offer
        for c in offer_choices(
            session,
            product=product,
            quantity=quantity,
            settings=settings,
            except_order_id=except_order_id,
        )
    ]


# -- reserve and release ------------------------------------------------------------------


def reserve_order(
    *, session: Session, order_id: int, settings: Settings | None = None
) -> dict[int, int]:
    """Reserve what will serve every line of a new order: own keys first, the rest as a
    hold on one provider offer. Returns ``{line_id: units held at a provider}`` (empty
    when own stock covers the order). Raises :class:`NothingToServe`, listing every
    product short, when a line cannot be covered; the caller must then roll back (keys
    already claimed in this transaction go back with it). Runs in the caller's
    transaction and never commits."""
    settings = settings or get_settings()
    lines = session.execute(
        select(OrderLine.id, OrderLine.product_id, OrderLine.quantity)  # type: ignore[call-overload]
        .where(OrderLine.order_id == order_id)
        .order_by(OrderLine.product_id, OrderLine.id)
    ).all()
    rest: dict[int, tuple[int, int, int]] = {}  # line id -> (product, quantity, from stock)
    for line_id, product_id, quantity in lines:
        keys = claim_keys(
            session=session,
            product_id=product_id,
            quantity=quantity,
            line_id=line_id,
            allow_partial=True,
        )
        if len(keys) < quantity:
            rest[line_id] = (product_id, quantity, len(keys))
    if not rest:
        return {}
    locking.lock_offers(session, product_ids=[p for p, _, _ in rest.values()])
    held: dict[int, int] = {}
    short: dict[int, dict[str, int]] = defaultdict(lambda: {"requested": 0, "available": 0})
    for line_id, (product_id, quantity, from_stock) in sorted(rest.items()):
        product = session.get(Product, product_id)
        assert product is not None
        missing = quantity - from_stock
        usable = offer_choices(session, product=product, quantity=missing, settings=settings)
        if usable:
            session.add(
                OfferHold(
                    order_line_id=line_id,
                    order_id=order_id,
                    offer_id=row_id(usable[0].offer.id),
                    quantity=missing,
                )
            )
            held[line_id] = missing
            continue
        some = offer_choices(session, product=product, quantity=1, settings=settings)
        short[product_id]["requested"] += quantity
        short[product_id]["available"] += from_stock + max((c.free for c in some), default=0)
    if short:
        raise NothingToServe(
            "not enough stock to serve the order",
            shortfalls={pid: s["requested"] - s["available"] for pid, s in short.items()},
            details=[{"product_id": pid, **s} for pid, s in sorted(short.items())],
        )
    session.flush()
    return held


def release_reservation(*, session: Session, order_id: int) -> int:
    """Give back what a cancelled order held: keys still ``reserved`` for its lines go
    back to ``available`` (their products' ``in_stock`` flags are refreshed at commit),
    and its offer holds are dropped. Delivered keys are never touched. Returns how many
    keys went back. Harmless when there is nothing to release. Runs in the caller's
    transaction and never commits."""
    products = locking.unreserve_order_keys(session, order_id=order_id)
    if products:
        note_stock_changed(session=session, product_ids=set(products))
    session.execute(delete(OfferHold).where(col(OfferHold.order_id) == order_id))
    return len(products)


def drop_line_hold(*, session: Session, line_id: int) -> None:
    """A purchase now stands for the line's held units: drop the hold. Never commits."""
    session.execute(delete(OfferHold).where(col(OfferHold.order_line_id) == line_id))
