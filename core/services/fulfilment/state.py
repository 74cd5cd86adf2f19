"""What one fulfilment run reports, its backoff policy, and what each line of an order
still needs (held, on its way, missing): read in one statement by both the order flow
(:mod:`.flow`) and the purchases (:mod:`.purchases`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from core.models import (
    Key,
    KeyStatus,
    OrderLine,
    OrderStatus,
    ProviderPurchase,
    PurchaseStatus,
)
from core.services.audit import Actor

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

    @property
    def failed(self) -> bool:
        """The run could not serve the order: it is (back) in needs_attention, and
        ``detail`` says why."""
        return self.outcome == "needs_attention"


@dataclass
class Retry:
    """Backoff policy for transient provider errors inside one run."""

    attempts: int = 3
    base_seconds: float = 0.2
    max_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        # exponential backoff with full jitter
        cap = min(self.max_seconds, self.base_seconds * 2**attempt)
        return random.uniform(0, cap)  # noqa: S311 (retry jitter, not a secret)


_L = OrderLine.__table__  # type: ignore[attr-defined]
_K = Key.__table__  # type: ignore[attr-defined]
_PP = ProviderPurchase.__table__  # type: ignore[attr-defined]


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
