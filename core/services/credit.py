"""Store credit and gift-card balances: one double-entry ledger (``core.models.credit``).

Every movement takes an amount from one account and gives it to another (its
counter-account), with a reason (:class:`Reason`) and an idempotency key; it is written
as two entries, minus on the account it leaves and plus on the one it reaches, so the
ledger sums to zero in every currency. A balance is the sum of an account's entries —
never a stored number.

Accounts (refs are unique; created the first time they are needed):

- ``customer:<id>:<CUR>``: a customer's store credit in one currency;
- ``gift_card:<id>``: a gift card's balance (in the card's currency);
- ``shop:<name>:<CUR>``: the shop's counter-accounts, which may go below zero (they are
  where credit comes from and goes to): ``adjustments`` (operators), ``refunds`` (card
  money refunded as credit), ``orders`` (credit and gift cards spent on orders),
  ``referrals``, ``gift_card_sales`` (cards bought in the shop), ``gift_cards_issued``
  (cards an operator issued), ``gift_cards_voided``.

Customer and gift-card accounts ("holders") never go below zero: :func:`post_movement`
locks the holder accounts it touches (``FOR UPDATE``, primary-key order,
:func:`core.services.locking.lock_ledger_accounts`), reads the balance under the lock and
refuses an overdraft with :class:`InsufficientBalance`. A movement whose idempotency key
was already used moves nothing and returns the first one, so a replayed payment or refund
webhook, a retried command or two workers racing never move credit twice.

Paying an order (:func:`apply_tenders`): gift cards first, in the order given, then the
customer's credit, each up to what is still due; the rest is paid by card. Each part is a
movement to ``shop:orders`` with the order's id. Whatever later happens to the order,
each part comes back at most once (:func:`return_order_tenders`, key
``order:<id>:return:<movement id>``): to where it came from when the order is cancelled
or refunded to its source, or to the customer's credit on a refund to store credit.

All functions here run in the caller's transaction and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import bindparam, func, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from core.errors import DomainError, InvalidInput, NotFound
from core.i18n import N_
from core.models import (
    AccountKind,
    Customer,
    GiftCard,
    LedgerAccount,
    LedgerEntry,
    LedgerMovement,
    Order,
    row_id,
    utcnow,
)
from core.money import format_money, normalise_currency
from core.services import locking
from core.services.audit import Actor, record_audit


class Reason(StrEnum):
    """Why credit moved. The issue's four customer-facing reasons, and the movements
    that paying orders and selling gift cards need."""

    GIFT_CARD_REDEMPTION = "gift_card_redemption"  # a gift card's balance into credit
    REFUND_TO_CREDIT = "refund_to_credit"  # an order refunded as store credit
    REFERRAL_REWARD = "referral_reward"
    CASHBACK = "cashback"  # a cashback campaign's share of an order
    OPERATOR_ADJUSTMENT = "operator_adjustment"
    ORDER_PAYMENT = "order_payment"  # credit or a gift card paying (part of) an order
    ORDER_RELEASE = "order_release"  # a cancelled order gives its part back
    REFUND = "refund"  # a refunded order gives its part back to where it came from
    GIFT_CARD_SALE = "gift_card_sale"  # a gift card bought in the shop
    GIFT_CARD_ISSUE = "gift_card_issue"  # a gift card issued by an operator
    GIFT_CARD_VOID = "gift_card_void"  # what was left on a voided card
    GIFT_CARD_ADJUSTMENT = "gift_card_adjustment"


#: The shop's counter-accounts (``shop:<name>:<CUR>``).
SHOP_ACCOUNTS: Final = (
    "adjustments",
    "refunds",
    "orders",
    "referrals",
    "gift_card_sales",
    "gift_cards_issued",
    "gift_cards_voided",
)
#: Reasons in customer words (the account page, the console ledger).
REASON_LABELS: Final[dict[str, str]] = {
    Reason.GIFT_CARD_REDEMPTION: N_("Gift card redeemed"),
    Reason.REFUND_TO_CREDIT: N_("Refund to store credit"),
    Reason.REFERRAL_REWARD: N_("Referral reward"),
    Reason.CASHBACK: N_("Cashback"),
    Reason.OPERATOR_ADJUSTMENT: N_("Adjustment by the shop"),
    Reason.ORDER_PAYMENT: N_("Paid an order"),
    Reason.ORDER_RELEASE: N_("Order cancelled: given back"),
    Reason.REFUND: N_("Order refunded: given back"),
    Reason.GIFT_CARD_SALE: N_("Gift card bought"),
    Reason.GIFT_CARD_ISSUE: N_("Gift card issued"),
    Reason.GIFT_CARD_VOID: N_("Gift card voided"),
    Reason.GIFT_CARD_ADJUSTMENT: N_("Gift card adjusted by the shop"),
}


class InsufficientBalance(DomainError):
    """A customer's credit or a gift card does not hold the amount asked for."""

    code = "insufficient_balance"
    http_status = 409


@dataclass(frozen=True, slots=True)
class Posted:
    movement_id: int
    replayed: bool  # the idempotency key had been used: nothing moved this time


# -- accounts -------------------------------------------------------------------------------


def _get_or_create(
    session: Session,
    *,
    ref: str,
    kind: AccountKind,
    currency: str,
    customer_id: int | None = None,
    gift_card_id: int | None = None,
) -> int:
    """The account's id, created if it is not there yet. Two transactions creating the
    same account at once both end up with the one row (``ON CONFLICT DO NOTHING``)."""
    found = session.exec(select(LedgerAccount.id).where(LedgerAccount.ref == ref)).first()
    if found is not None:
        return row_id(found)
    table = LedgerAccount.__table__  # type: ignore[attr-defined]
    values = {
        "ref": ref,
        "kind": str(kind),
        "currency": currency,
        "customer_id": customer_id,
        "gift_card_id": gift_card_id,
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    statement = (
        postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=["ref"])
        if dialect == "postgresql"
        else sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=["ref"])
        if dialect == "sqlite"
        else insert(table).values(**values)
    )
    session.execute(statement)
    return row_id(session.exec(select(LedgerAccount.id).where(LedgerAccount.ref == ref)).one())


def customer_account(session: Session, *, customer_id: int, currency: str) -> int:
    code = normalise_currency(currency)
    return _get_or_create(
        session,
        ref=f"customer:{customer_id}:{code}",
        kind=AccountKind.CUSTOMER,
        currency=code,
        customer_id=customer_id,
    )


def gift_card_account(session: Session, *, card: GiftCard) -> int:
    return _get_or_create(
        session,
        ref=f"gift_card:{card.id}",
        kind=AccountKind.GIFT_CARD,
        currency=card.currency,
        gift_card_id=card.id,
    )


def shop_account(session: Session, *, name: str, currency: str) -> int:
    if name not in SHOP_ACCOUNTS:
        raise InvalidInput(f"no shop account {name!r}")
    code = normalise_currency(currency)
    return _get_or_create(session, ref=f"shop:{name}:{code}", kind=AccountKind.SHOP, currency=code)


def balance(session: Session, *, account_id: int) -> int:
    """The account's balance: the sum of its entries (minor units)."""
    total = session.exec(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
            LedgerEntry.account_id == account_id
        )
    ).one()
    return int(total)


# -- moving money ------------------------------------------------------------------------------


def post_movement(
    *,
    session: Session,
    from_account: int,
    to_account: int,
    amount_minor: int,
    reason: Reason,
    idempotency_key: str,
    actor: Actor,
    order_id: int | None = None,
    note: str = "",
) -> Posted:
    """Move ``amount_minor`` from one account to the other, once per ``idempotency_key``.

    Refuses (InvalidInput, nothing written): an amount that is not a positive whole
    number of minor units, the same account on both sides, accounts in two currencies,
    an unknown reason, an empty key. A holder account (customer, gift card) that would go
    below zero: :class:`InsufficientBalance`. Runs in the caller's transaction."""
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise InvalidInput("an amount moved must be a positive amount", field="amount")
    if from_account == to_account:
        raise InvalidInput("a movement needs two different accounts")
    if not idempotency_key or len(idempotency_key) > 160:
        raise InvalidInput("a movement needs an idempotency key of at most 160 characters")
    reason = Reason(reason)
    accounts = {
        a.id: a
        for a in session.exec(
            select(LedgerAccount).where(col(LedgerAccount.id).in_([from_account, to_account]))
        ).all()
    }
    if len(accounts) != 2:
        raise NotFound("no such ledger account")
    source, target = accounts[from_account], accounts[to_account]
    if source.currency != target.currency:
        raise InvalidInput(f"cannot move {source.currency} into a {target.currency} account")
    holders = [a.id for a in (source, target) if a.kind != AccountKind.SHOP and a.id is not None]
    locking.lock_ledger_accounts(session, holders)
    done = session.exec(
        select(LedgerMovement.id).where(LedgerMovement.idempotency_key == idempotency_key)
    ).first()
    if done is not None:
        return Posted(int(done), replayed=True)
    if source.kind != AccountKind.SHOP:
        available = balance(session, account_id=from_account)
        if available < amount_minor:
            raise InsufficientBalance(
                f"the balance is {format_money(available, source.currency)}, less than "
                f"{format_money(amount_minor, source.currency)}",
                available_minor=available,
                currency=source.currency,
            )
    movement = LedgerMovement(
        idempotency_key=idempotency_key,
        reason=str(reason),
        currency=source.currency,
        amount_minor=amount_minor,
        from_account_id=from_account,
        to_account_id=to_account,
        order_id=order_id,
        actor=str(actor)[:160],
        note=note,
    )
    session.add(movement)
    session.flush()
    movement_id = row_id(movement.id)
    session.add(
        LedgerEntry(movement_id=movement_id, account_id=from_account, amount_minor=-amount_minor)
    )
    session.add(
        LedgerEntry(movement_id=movement_id, account_id=to_account, amount_minor=amount_minor)
    )
    session.flush()
    return Posted(movement_id, replayed=False)


def find_customer(session: Session, who: str) -> int:
    """A customer's id from their id or e-mail address (NotFound otherwise): how
    operators name a customer in the CLI and the console."""
    text = (who or "").strip()
    if text.isdigit():
        found = session.get(Customer, int(text))
    else:
        found = session.exec(select(Customer).where(Customer.email == text.lower())).first()
    if found is None or found.id is None:
        raise NotFound(f"no customer {text!r}")
    return found.id


def adjust_customer_credit(
    *,
    session: Session,
    customer_id: int,
    amount_minor: int,
    currency: str,
    actor: Actor,
    note: str,
    idempotency_key: str,
    reason: Reason = Reason.OPERATOR_ADJUSTMENT,
) -> Posted:
    """Add credit (``amount_minor`` > 0) to a customer's balance or take it away (< 0),
    against the shop's ``adjustments`` (or ``referrals``) account; audited. A note is
    required for an operator adjustment. Refuses taking more than the balance
    (InsufficientBalance) and an unknown customer (NotFound). Runs in the caller's
    transaction."""
    if reason not in (Reason.OPERATOR_ADJUSTMENT, Reason.REFERRAL_REWARD, Reason.CASHBACK):
        raise InvalidInput("customer credit is adjusted by an operator, a referral or cashback")
    if reason == Reason.OPERATOR_ADJUSTMENT and not note.strip():
        raise InvalidInput("an adjustment needs a note saying why", field="note")
    if session.get(Customer, customer_id) is None:
        raise NotFound(f"no customer {customer_id}", customer_id=customer_id)
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor == 0:
        raise InvalidInput("the adjustment must be a non-zero amount", field="amount")
    code = normalise_currency(currency)
    mine = customer_account(session, customer_id=customer_id, currency=code)
    shop = shop_account(
        session,
        name="adjustments" if reason == Reason.OPERATOR_ADJUSTMENT else "referrals",
        currency=code,
    )
    source, target = (shop, mine) if amount_minor > 0 else (mine, shop)
    posted = post_movement(
        session=session,
        from_account=source,
        to_account=target,
        amount_minor=abs(amount_minor),
        reason=reason,
        idempotency_key=idempotency_key,
        actor=actor,
        note=note.strip(),
    )
    if not posted.replayed:
        record_audit(
            session=session,
            actor=actor,
            action="credit.adjust",
            object_type="customer",
            object_id=customer_id,
            data={
                "amount_minor": amount_minor,
                "currency": code,
                "note": note.strip(),
                "reason": str(reason),
            },
        )
    return posted


# -- orders --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tender:
    """One part of an order paid from the ledger."""

    movement_id: int
    account_id: int
    kind: str  # customer or gift_card
    amount_minor: int
    gift_card_id: int | None
    customer_id: int | None


def apply_tenders(
    *,
    session: Session,
    order: Order,
    gift_cards: Sequence[GiftCard],
    use_credit: bool,
    actor: Actor,
) -> int:
    """Pay what can be paid of ``order`` from its gift cards (in the order given), then
    from its customer's credit, each up to what is still due; returns the amount covered
    (the rest is paid by card). Each card and the credit are locked while their balance
    is read and spent, so concurrent checkouts never spend the same balance twice. A card
    with nothing left, voided, or in another currency is refused (InvalidInput naming
    it), as is ``use_credit`` without a customer. Runs in the caller's transaction."""
    order_id = row_id(order.id)
    due = order.total_minor
    covered = 0
    orders_account = shop_account(session, name="orders", currency=order.currency)
    for card in gift_cards:
        tail = f"gift card …{card.last4}"
        if card.currency != order.currency:
            raise InvalidInput(
                f"{tail} is in {card.currency}; this order is in {order.currency}",
                field="gift_cards",
            )
        if card.status != "active":
            raise InvalidInput(f"{tail} is no longer valid", field="gift_cards")
        if covered >= due:
            break
        account = gift_card_account(session, card=card)
        locking.lock_ledger_accounts(session, [account])
        spend = min(balance(session, account_id=account), due - covered)
        if spend <= 0:
            raise InvalidInput(f"{tail} has no balance left", field="gift_cards")
        post_movement(
            session=session,
            from_account=account,
            to_account=orders_account,
            amount_minor=spend,
            reason=Reason.ORDER_PAYMENT,
            idempotency_key=f"order:{order_id}:pay:{account}",
            actor=actor,
            order_id=order_id,
        )
        covered += spend
    if use_credit:
        if order.customer_id is None:
            raise InvalidInput("sign in to pay with store credit", field="use_credit")
        if covered < due:
            account = customer_account(
                session, customer_id=order.customer_id, currency=order.currency
            )
            locking.lock_ledger_accounts(session, [account])
            spend = min(balance(session, account_id=account), due - covered)
            if spend > 0:
                post_movement(
                    session=session,
                    from_account=account,
                    to_account=orders_account,
                    amount_minor=spend,
                    reason=Reason.ORDER_PAYMENT,
                    idempotency_key=f"order:{order_id}:pay:{account}",
                    actor=actor,
                    order_id=order_id,
                )
                covered += spend
    return covered


def order_tenders(session: Session, *, order_id: int) -> list[Tender]:
    """The parts of an order paid from the ledger (gift cards, then credit)."""
    rows = session.exec(
        select(LedgerMovement, LedgerAccount)
        .join(LedgerAccount, col(LedgerAccount.id) == col(LedgerMovement.from_account_id))
        .where(
            LedgerMovement.order_id == order_id,
            LedgerMovement.reason == Reason.ORDER_PAYMENT.value,
        )
        .order_by(col(LedgerMovement.id))
    ).all()
    return [
        Tender(
            movement_id=row_id(m.id),
            account_id=row_id(a.id),
            kind=a.kind,
            amount_minor=m.amount_minor,
            gift_card_id=a.gift_card_id,
            customer_id=a.customer_id,
        )
        for m, a in rows
    ]


_MOVEMENTS = LedgerMovement.__table__  # type: ignore[attr-defined]
# Built once: every payment asks it (core.services.payments.amount_due). The same rows as
# order_tenders (a movement's account always exists: a foreign key), summed in the query.
_COVERED = select(func.coalesce(func.sum(_MOVEMENTS.c.amount_minor), 0)).where(
    _MOVEMENTS.c.order_id == bindparam("b_order"),
    _MOVEMENTS.c.reason == Reason.ORDER_PAYMENT.value,
)


def covered_minor(session: Session, *, order_id: int) -> int:
    """How much of the order gift cards and credit paid (so the card pays the rest)."""
    session.flush()
    return int(session.connection().execute(_COVERED, {"b_order": order_id}).scalar_one())


def return_order_tenders(
    *,
    session: Session,
    order: Order,
    reason: Reason,
    actor: Actor,
    to_credit: bool = False,
) -> int:
    """Give back each part of ``order`` paid from the ledger, at most once whatever path
    asks (idempotency key ``order:<id>:return:<movement id>``): to where it came from
    (``reason`` ORDER_RELEASE on cancellation, REFUND on a refund), or all to the
    customer's credit (``to_credit``, reason REFUND_TO_CREDIT). Returns the amount given
    back this time. Runs in the caller's transaction."""
    order_id = row_id(order.id)
    orders_account = shop_account(session, name="orders", currency=order.currency)
    returned = 0
    for tender in order_tenders(session, order_id=order_id):
        target = tender.account_id
        if to_credit:
            if order.customer_id is None:
                raise InvalidInput(f"order {order.number} has no account to credit")
            target = customer_account(
                session, customer_id=order.customer_id, currency=order.currency
            )
        posted = post_movement(
            session=session,
            from_account=orders_account,
            to_account=target,
            amount_minor=tender.amount_minor,
            reason=Reason.REFUND_TO_CREDIT if to_credit else reason,
            idempotency_key=f"order:{order_id}:return:{tender.movement_id}",
            actor=actor,
            order_id=order_id,
        )
        if not posted.replayed:
            returned += tender.amount_minor
    return returned


def card_part_to_credit(*, session: Session, order: Order, actor: Actor) -> int:
    """A refund to store credit of what the card paid and has not had back (a partial
    refund in Stripe went to the card already: ``refunded_minor``): that amount from the
    shop's ``refunds`` account to the customer's credit, once per order. Returns the
    amount."""
    if order.customer_id is None:
        raise InvalidInput(f"order {order.number} has no account to credit")
    order_id = row_id(order.id)
    card_part = order.total_minor - covered_minor(session, order_id=order_id) - order.refunded_minor
    if card_part <= 0:
        return 0
    posted = post_movement(
        session=session,
        from_account=shop_account(session, name="refunds", currency=order.currency),
        to_account=customer_account(
            session, customer_id=order.customer_id, currency=order.currency
        ),
        amount_minor=card_part,
        reason=Reason.REFUND_TO_CREDIT,
        idempotency_key=f"order:{order_id}:card-to-credit",
        actor=actor,
        order_id=order_id,
    )
    return 0 if posted.replayed else card_part


# -- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerLine:
    at: datetime
    reason: str
    label: str
    amount_minor: int  # signed: plus reached this account, minus left it
    currency: str
    balance_minor: int  # the account's balance after this line
    note: str
    actor: str
    order_number: str | None


def customer_balances(session: Session, *, customer_id: int) -> dict[str, int]:
    """A customer's credit per currency (currencies with an account, zero included)."""
    rows = session.exec(
        select(LedgerAccount.currency, func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
        .select_from(LedgerAccount)
        .join(LedgerEntry, col(LedgerEntry.account_id) == col(LedgerAccount.id), isouter=True)
        .where(
            LedgerAccount.customer_id == customer_id,
            LedgerAccount.kind == AccountKind.CUSTOMER.value,
        )
        .group_by(col(LedgerAccount.currency))
        .order_by(col(LedgerAccount.currency))
    ).all()
    return {currency: int(amount) for currency, amount in rows}


def balance_in(*, customer_id: int, currency: str) -> int:
    """A customer's store credit in one currency (0 without an account). Owns its
    (read-only) transaction: for the storefront."""
    from core.db import session_scope

    with session_scope(write=False) as session:
        return customer_balances(session, customer_id=customer_id).get(
            normalise_currency(currency), 0
        )


def statement(*, customer_id: int) -> tuple[dict[str, int], list[LedgerLine]]:
    """A customer's credit per currency and their ledger, newest first. Owns its
    (read-only) transaction: for the account page."""
    from core.db import session_scope

    with session_scope(write=False) as session:
        balances = customer_balances(session, customer_id=customer_id)
        lines = customer_history(session, customer_id=customer_id)
    return balances, sorted(lines, key=lambda ln: ln.at, reverse=True)


def account_history(session: Session, *, account_id: int) -> list[LedgerLine]:
    """Every entry of one account, oldest first, with the running balance."""
    rows = session.exec(
        select(LedgerEntry, LedgerMovement, LedgerAccount.currency, Order.number)
        .join(LedgerMovement, col(LedgerMovement.id) == col(LedgerEntry.movement_id))
        .join(LedgerAccount, col(LedgerAccount.id) == col(LedgerEntry.account_id))
        .join(Order, col(Order.id) == col(LedgerMovement.order_id), isouter=True)
        .where(LedgerEntry.account_id == account_id)
        .order_by(col(LedgerEntry.id))
    ).all()
    running = 0
    lines = []
    for entry, movement, currency, number in rows:
        running += entry.amount_minor
        lines.append(
            LedgerLine(
                at=movement.created_at,
                reason=movement.reason,
                label=REASON_LABELS.get(movement.reason, movement.reason),
                amount_minor=entry.amount_minor,
                currency=currency,
                balance_minor=running,
                note=movement.note,
                actor=movement.actor,
                order_number=number,
            )
        )
    return lines


def customer_history(session: Session, *, customer_id: int) -> list[LedgerLine]:
    """A customer's credit ledger, every currency, oldest first."""
    ids = session.exec(
        select(LedgerAccount.id)
        .where(
            LedgerAccount.customer_id == customer_id,
            LedgerAccount.kind == AccountKind.CUSTOMER.value,
        )
        .order_by(col(LedgerAccount.currency))
    ).all()
    lines: list[LedgerLine] = []
    for account_id in ids:
        lines.extend(account_history(session, account_id=row_id(account_id)))
    return lines


@dataclass(frozen=True, slots=True)
class Outstanding:
    """Credit the shop owes (a liability), in one currency."""

    currency: str
    customer_credit_minor: int
    gift_cards_minor: int

    @property
    def total_minor(self) -> int:
        return self.customer_credit_minor + self.gift_cards_minor


def outstanding(session: Session) -> list[Outstanding]:
    """Store credit and gift-card balances outstanding per currency: the sum of every
    customer and gift-card account (what customers can still spend)."""
    rows = session.exec(
        select(
            LedgerAccount.currency,
            LedgerAccount.kind,
            func.coalesce(func.sum(LedgerEntry.amount_minor), 0),
        )
        .select_from(LedgerEntry)
        .join(LedgerAccount, col(LedgerAccount.id) == col(LedgerEntry.account_id))
        .where(col(LedgerAccount.kind) != AccountKind.SHOP.value)
        .group_by(col(LedgerAccount.currency), col(LedgerAccount.kind))
    ).all()
    by_currency: dict[str, dict[str, int]] = {}
    for currency, kind, amount in rows:
        by_currency.setdefault(currency, {})[kind] = int(amount)
    return [
        Outstanding(
            currency=currency,
            customer_credit_minor=kinds.get(AccountKind.CUSTOMER.value, 0),
            gift_cards_minor=kinds.get(AccountKind.GIFT_CARD.value, 0),
        )
        for currency, kinds in sorted(by_currency.items())
    ]
