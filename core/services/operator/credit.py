"""Store credit and gift cards as an operator changes them (console and CLI): each
function owns its transaction and returns what the operator is shown afterwards. The
ledger rules themselves are :mod:`core.services.credit` and :mod:`core.services.giftcards`;
every change there is audited and carries an idempotency key, so a retried command moves
nothing twice."""

from __future__ import annotations

from dataclasses import dataclass

from core import money
from core.db import session_scope
from core.services import credit, giftcards
from core.services.audit import Actor


@dataclass(frozen=True)
class Adjusted:
    """An adjustment's outcome: whose balance (customer or gift card id), the balance
    after it, its currency, and whether the key was already used (nothing moved)."""

    id: int
    balance_minor: int
    currency: str
    replayed: bool


def adjust_customer_credit(
    *, customer: str, amount_minor: int, currency: str, actor: Actor, note: str, key: str
) -> Adjusted:
    """Add to (or with a negative amount take from) a customer's store credit; the
    customer is found by id or e-mail (:func:`core.services.credit.find_customer`)."""
    code = money.normalise_currency(currency)
    with session_scope() as session:
        customer_id = credit.find_customer(session, customer)
        posted = credit.adjust_customer_credit(
            session=session,
            customer_id=customer_id,
            amount_minor=amount_minor,
            currency=code,
            actor=actor,
            note=note,
            idempotency_key=key,
        )
        left = credit.customer_balances(session, customer_id=customer_id).get(code, 0)
    return Adjusted(customer_id, left, code, posted.replayed)


def issue_gift_card(
    *, amount_minor: int, currency: str, actor: Actor, note: str
) -> giftcards.Issued:
    """A new gift card with ``amount_minor`` on it; its code is in the result, once."""
    with session_scope() as session:
        return giftcards.issue(
            session=session, amount_minor=amount_minor, currency=currency, actor=actor, note=note
        )


def adjust_gift_card(
    *, gift_card_id: int, amount: str, actor: Actor, note: str, key: str
) -> Adjusted:
    """Add to or take from a gift card; ``amount`` is typed in the card's currency
    (``"5"``, ``"-2.50"``)."""
    with session_scope() as session:
        card = giftcards.get_card(session, gift_card_id)
        minor = money.parse_amount(amount, card.currency, allow_negative=True)
        posted = giftcards.adjust(
            session=session,
            gift_card_id=gift_card_id,
            amount_minor=minor,
            actor=actor,
            note=note,
            idempotency_key=key,
        )
        left = giftcards.balance_of(session, card)
    return Adjusted(gift_card_id, left, card.currency, posted.replayed)


def void_gift_card(*, gift_card_id: int, actor: Actor, note: str) -> tuple[int, str]:
    """Void a gift card; returns what was left on it (taken off) and its currency."""
    with session_scope() as session:
        currency = giftcards.get_card(session, gift_card_id).currency
        taken = giftcards.void(session=session, gift_card_id=gift_card_id, actor=actor, note=note)
    return taken, currency
