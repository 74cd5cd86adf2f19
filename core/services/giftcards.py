"""Gift cards: codes, issuing, voiding, adjusting, balance look-up and redemption.

A gift card is a payment instrument with a balance in one currency. Its balance is its
account in the credit ledger (:mod:`core.services.credit`, ``gift_card:<id>``): issuing
moves the face value in from a shop account (``gift_card_sales`` when bought in the
shop, ``gift_cards_issued`` when an operator issues it), paying an order moves it out to
``shop:orders``, voiding moves what is left to ``gift_cards_voided``.

Codes (:func:`new_code`): ``GC-`` then 20 random Crockford base-32 characters (100 bits)
and one check character (Luhn mod 32, which catches any single mistyped character and any
swap of two neighbours), grouped by five: ``GC-7K2QD-M9XZT-4HBCE-R8WNP-F``. Case, spaces
and hyphens do not matter. A code is stored like a key (:mod:`core.crypto`): encrypted
(bound to the card's row) plus a keyed fingerprint to find it; its plaintext is shown
once, to whoever issued or bought it, and is never logged.

Looking a balance up by code (:func:`check_balance`) is rate limited per client address
(``giftcard-balance:ip``, :mod:`core.services.ratelimit`), failures and successes alike,
so codes cannot be guessed through it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, col, select

from core import crypto
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.models import (
    GiftCard,
    GiftCardStatus,
    Key,
    KeyStatus,
    LedgerAccount,
    OrderLine,
    Product,
    row_id,
    utcnow,
)
from core.money import format_money, normalise_currency
from core.services import credit, locking, ratelimit
from core.services.audit import Actor, record_audit
from core.services.credit import Reason

PREFIX: Final = "GC"
ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32
RANDOM_CHARS: Final = 20  # 100 bits
#: (scope, limit, window seconds) of balance look-ups, per client address.
BALANCE_LIMIT: Final = ("giftcard-balance:ip", 10, 600)
#: The largest face value accepted, in minor units (a sanity bound: 10,000.00).
MAX_FACE_MINOR: Final = 1_000_000


_CROCKFORD_READING: Final = str.maketrans("OIL", "011")


class UnknownGiftCard(NotFound):
    code = "unknown_gift_card"


def check_char(body: str) -> str | None:
    """The check character of ``body`` (characters of :data:`ALPHABET`): Crockford's
    base-32 check, the body read as a base-32 number modulo 37 (the least prime above 32).
    Unlike Luhn mod 32 (which let a swap of "0" and "Z" side by side through) it catches
    every single wrong character and every swap of two different neighbours, the check
    character included. Values 32 to 36 would need Crockford's extra symbols (``*~$=U``);
    :func:`new_code` draws bodies until the check is one of :data:`ALPHABET` instead,
    and such a body is never a code (None)."""
    total = 0
    for char in body:
        total = (total * len(ALPHABET) + ALPHABET.index(char)) % 37
    return ALPHABET[total] if total < len(ALPHABET) else None


def new_code() -> str:
    """A fresh gift-card code, as shown to people: ``GC-XXXXX-XXXXX-XXXXX-XXXXX-C``."""
    body, check = "", None
    while check is None:  # 5 bodies in 37 have no check character in the alphabet
        body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
        check = check_char(body)
    full = body + check
    groups = [full[i : i + 5] for i in range(0, RANDOM_CHARS, 5)]
    return "-".join([PREFIX, *groups, full[RANDOM_CHARS:]])


def parse_code(text: str) -> str:
    """A person's code text as its canonical form (``GC`` and 21 characters), or
    InvalidInput when it cannot be a gift card code (wrong length or characters, or a
    check character that does not match: a typo)."""
    raw = crypto.normalise_code(text or "")
    raw = raw.translate(_CROCKFORD_READING)  # Crockford reading
    if raw.startswith(PREFIX):
        raw = raw[len(PREFIX) :]
    if len(raw) != RANDOM_CHARS + 1 or any(c not in ALPHABET for c in raw):
        raise InvalidInput("that is not a gift card code", field="gift_cards")
    if check_char(raw[:RANDOM_CHARS]) != raw[RANDOM_CHARS]:
        raise InvalidInput(
            "that gift card code has a typo (its check character does not match)",
            field="gift_cards",
        )
    return PREFIX + raw


def find(session: Session, code: str) -> GiftCard | None:
    """The card with this code (any status), found by fingerprint; None when unknown.
    Raises InvalidInput for text that is not a code."""
    canonical = parse_code(code)
    fingerprint = crypto.get_vault().fingerprint(canonical)
    return session.exec(select(GiftCard).where(GiftCard.fingerprint == fingerprint)).first()


def cards_for_checkout(session: Session, codes: Sequence[str]) -> list[GiftCard]:
    """The cards a customer entered, in order, each once. Unknown or malformed codes are
    refused (InvalidInput naming every one, by position), nothing written."""
    if len(codes) > 5:
        raise InvalidInput("at most 5 gift cards per order", field="gift_cards")
    cards: list[GiftCard] = []
    problems: list[str] = []
    for n, code in enumerate(codes, start=1):
        try:
            card = find(session, code)
        except InvalidInput as exc:
            problems.append(f"gift card {n}: {exc.message}")
            continue
        if card is None:
            problems.append(f"gift card {n}: no gift card has that code")
        elif all(c.id != card.id for c in cards):
            cards.append(card)
    if problems:
        raise InvalidInput(" ".join(problems), field="gift_cards", problems=problems)
    return cards


def balance_of(session: Session, card: GiftCard) -> int:
    """The card's balance (reads only: a card without an account yet holds zero)."""
    found = session.exec(
        select(LedgerAccount.id).where(LedgerAccount.gift_card_id == card.id)
    ).first()
    return credit.balance(session, account_id=int(found)) if found is not None else 0


@dataclass(frozen=True, slots=True)
class Issued:
    gift_card_id: int
    code: str  # the plaintext, shown once
    last4: str
    currency: str
    amount_minor: int


def issue(
    *,
    session: Session,
    amount_minor: int,
    currency: str,
    actor: Actor,
    note: str = "",
    order_line_id: int | None = None,
    idempotency_key: str | None = None,
) -> Issued:
    """A new card of ``amount_minor`` (bought on ``order_line_id``, or issued by an
    operator), its face value moved onto it in the ledger; audited. Returns the code in
    plaintext (show it once). Runs in the caller's transaction."""
    code = normalise_currency(currency)
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise InvalidInput("a gift card needs a positive amount", field="amount")
    if amount_minor > MAX_FACE_MINOR:
        raise InvalidInput(
            f"a gift card holds at most {format_money(MAX_FACE_MINOR, code)}", field="amount"
        )
    plaintext = new_code()
    canonical = parse_code(plaintext)
    vault = crypto.get_vault()
    card = GiftCard(
        ciphertext=b"",
        key_version=0,
        fingerprint=vault.fingerprint(canonical),
        last4=canonical[-4:],
        currency=code,
        initial_minor=amount_minor,
        order_line_id=order_line_id,
        issued_by=str(actor)[:160],
    )
    card.key_version, card.ciphertext = vault.encrypt(canonical.encode(), row_id=card.uid)
    session.add(card)
    session.flush()
    card_id = row_id(card.id)
    sold = order_line_id is not None
    credit.post_movement(
        session=session,
        from_account=credit.shop_account(
            session, name="gift_card_sales" if sold else "gift_cards_issued", currency=code
        ),
        to_account=credit.gift_card_account(session, card=card),
        amount_minor=amount_minor,
        reason=Reason.GIFT_CARD_SALE if sold else Reason.GIFT_CARD_ISSUE,
        idempotency_key=idempotency_key or f"gift_card:{card_id}:issue",
        actor=actor,
        note=note,
    )
    record_audit(
        session=session,
        actor=actor,
        action="giftcard.issue",
        object_type="gift_card",
        object_id=card_id,
        data={"amount_minor": amount_minor, "currency": code, "note": note, "last4": card.last4},
    )
    return Issued(card_id, plaintext, card.last4, code, amount_minor)


def get_card(session: Session, gift_card_id: int) -> GiftCard:
    """The card by id (UnknownGiftCard when there is none)."""
    card = session.get(GiftCard, gift_card_id)
    if card is None:
        raise UnknownGiftCard(f"no gift card {gift_card_id}")
    return card


def _take_all_off(session: Session, card: GiftCard, *, key: str, actor: Actor, note: str) -> int:
    """Move what is left on ``card`` to ``shop:gift_cards_voided`` under its account's
    lock (reason ``gift_card_void``, idempotency ``key``); returns the amount."""
    account = credit.gift_card_account(session, card=card)
    locking.lock_ledger_accounts(session, [account])
    left = credit.balance(session, account_id=account)
    if left > 0:
        credit.post_movement(
            session=session,
            from_account=account,
            to_account=credit.shop_account(
                session, name="gift_cards_voided", currency=card.currency
            ),
            amount_minor=left,
            reason=Reason.GIFT_CARD_VOID,
            idempotency_key=key,
            actor=actor,
            note=note,
        )
    return left


def void(*, session: Session, gift_card_id: int, actor: Actor, note: str) -> int:
    """Void a card: what is left on it goes to ``shop:gift_cards_voided`` and it can no
    longer pay. A note is required; audited. Returns the amount taken off. Voiding a
    voided card is refused. Runs in the caller's transaction."""
    if not note.strip():
        raise InvalidInput("voiding a gift card needs a note saying why", field="note")
    card = get_card(session, gift_card_id)
    if card.status == GiftCardStatus.VOID:
        raise InvalidInput(f"gift card {gift_card_id} is already void")
    if card.status == GiftCardStatus.UNSOLD:
        raise InvalidInput(f"gift card {gift_card_id} is unsold stock of a product, not a card yet")
    left = _take_all_off(
        session, card, key=f"gift_card:{gift_card_id}:void", actor=actor, note=note.strip()
    )
    card.status = GiftCardStatus.VOID
    card.voided_at = utcnow()
    session.add(card)
    record_audit(
        session=session,
        actor=actor,
        action="giftcard.void",
        object_type="gift_card",
        object_id=gift_card_id,
        data={"balance_removed_minor": left, "note": note.strip()},
    )
    session.flush()
    return left


def adjust(
    *,
    session: Session,
    gift_card_id: int,
    amount_minor: int,
    actor: Actor,
    note: str,
    idempotency_key: str,
) -> credit.Posted:
    """Add to (> 0) or take from (< 0) an active card's balance, against
    ``shop:adjustments``; never below zero (InsufficientBalance). A note is required;
    audited. Runs in the caller's transaction."""
    if not note.strip():
        raise InvalidInput("an adjustment needs a note saying why", field="note")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor == 0:
        raise InvalidInput("the adjustment must be a non-zero amount", field="amount")
    card = get_card(session, gift_card_id)
    if card.status != GiftCardStatus.ACTIVE:
        raise InvalidInput(f"gift card {gift_card_id} is void")
    mine = credit.gift_card_account(session, card=card)
    shop = credit.shop_account(session, name="adjustments", currency=card.currency)
    source, target = (shop, mine) if amount_minor > 0 else (mine, shop)
    posted = credit.post_movement(
        session=session,
        from_account=source,
        to_account=target,
        amount_minor=abs(amount_minor),
        reason=Reason.GIFT_CARD_ADJUSTMENT,
        idempotency_key=idempotency_key,
        actor=actor,
        note=note.strip(),
    )
    if not posted.replayed:
        record_audit(
            session=session,
            actor=actor,
            action="giftcard.adjust",
            object_type="gift_card",
            object_id=gift_card_id,
            data={"amount_minor": amount_minor, "note": note.strip()},
        )
    return posted


def redeem_to_credit(*, session: Session, code: str, customer_id: int, actor: Actor) -> int:
    """Move a card's whole balance into a customer's store credit (reason
    ``gift_card_redemption``). Unknown code: UnknownGiftCard; void or empty card:
    InvalidInput. Returns the amount moved. Runs in the caller's transaction."""
    card = find(session, code)
    if card is None:
        raise UnknownGiftCard("no gift card has that code")
    if card.status != GiftCardStatus.ACTIVE:
        raise InvalidInput("that gift card is no longer valid", field="code")
    account = credit.gift_card_account(session, card=card)
    locking.lock_ledger_accounts(session, [account])
    left = credit.balance(session, account_id=account)
    if left <= 0:
        raise InvalidInput("that gift card has no balance left", field="code")
    credit.post_movement(
        session=session,
        from_account=account,
        to_account=credit.customer_account(
            session, customer_id=customer_id, currency=card.currency
        ),
        amount_minor=left,
        reason=Reason.GIFT_CARD_REDEMPTION,
        idempotency_key=f"gift_card:{row_id(card.id)}:redeem:{secrets.token_hex(8)}",
        actor=actor,
    )
    return left


def redeem_for_customer(*, code: str, customer_id: int, ip: str | None) -> tuple[int, str]:
    """The account page's "add a gift card to my credit": rate limited like a balance
    look-up (:data:`BALANCE_LIMIT`), then :func:`redeem_to_credit` in its own
    transaction. Returns (amount, currency)."""
    if ip:
        scope, limit, window = BALANCE_LIMIT
        ratelimit.check_rate(scope=scope, subject=ip, limit=limit, window_seconds=window)
    with session_scope() as session:
        card = find(session, code)
        currency = card.currency if card is not None else ""
        amount = redeem_to_credit(
            session=session,
            code=code,
            customer_id=customer_id,
            actor=Actor.customer(customer_id, ip=ip),
        )
    return amount, currency


@dataclass(frozen=True, slots=True)
class Balance:
    last4: str
    currency: str
    balance_minor: int
    initial_minor: int
    active: bool


def check_balance(*, code: str, ip: str | None) -> Balance:
    """A card's balance by its code, for anyone holding it. Rate limited per address
    (:data:`BALANCE_LIMIT`; every look-up counts, RateLimited past it). Malformed code:
    InvalidInput; unknown: UnknownGiftCard. Owns its transactions."""
    if ip:
        scope, limit, window = BALANCE_LIMIT
        ratelimit.check_rate(scope=scope, subject=ip, limit=limit, window_seconds=window)
    with session_scope(write=False) as session:
        card = find(session, code)
        if card is None:
            raise UnknownGiftCard("no gift card has that code")
        amount = balance_of(session, card)
        return Balance(
            last4=card.last4,
            currency=card.currency,
            balance_minor=amount,
            initial_minor=card.initial_minor,
            active=card.status == GiftCardStatus.ACTIVE,
        )


# -- gift cards sold as products ------------------------------------------------------------------


def stock_product(*, session: Session, product_id: int, count: int, actor: Actor) -> int:
    """Make ``count`` new gift cards the stock of a product (a "Gift card €25" product
    whose price in each currency is its denomination): each code becomes an available
    key of the product, encrypted and fingerprinted like imported keys, and a gift card
    with status ``unsold`` and no balance. The storefront, checkout, reservations,
    fulfilment and the key portal treat them as any key; when a key is delivered its
    card gets the line's unit price as its balance (:func:`activate_delivered`).
    Audited. Runs in the caller's transaction."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        raise InvalidInput("stock 1 to 10,000 gift cards at a time", field="count")
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"no product {product_id}")
    vault = crypto.get_vault()
    keys: list[Key] = []
    cards: list[GiftCard] = []
    for _ in range(count):
        plaintext = new_code()
        canonical = parse_code(plaintext)
        key = Key(product_id=product_id, ciphertext=b"", key_version=0, fingerprint=b"")
        key.key_version, key.ciphertext = vault.encrypt(plaintext.encode(), row_id=key.id)
        key.fingerprint = vault.fingerprint(plaintext)
        key.supplier = "gift cards"
        card = GiftCard(
            ciphertext=b"",
            key_version=0,
            fingerprint=vault.fingerprint(canonical),
            last4=canonical[-4:],
            currency=product.currency,
            initial_minor=0,
            status=GiftCardStatus.UNSOLD,
            key_id=key.id,
            issued_by=str(actor)[:160],
        )
        card.key_version, card.ciphertext = vault.encrypt(canonical.encode(), row_id=card.uid)
        keys.append(key)
        cards.append(card)
    session.add_all(keys)
    session.flush()  # the keys first: each card refers to its key
    session.add_all(cards)
    session.flush()
    record_audit(
        session=session,
        actor=actor,
        action="giftcard.stock",
        object_type="product",
        object_id=product_id,
        data={"count": count},
    )
    return count


def activate_delivered(*, session: Session, line_ids: Sequence[int]) -> int:
    """Give each unsold gift card whose key was just delivered to one of ``line_ids`` its
    balance: the line's unit price, in the line's currency (reason ``gift_card_sale``,
    from ``shop:gift_card_sales``). Called by every path that delivers keys
    (core.services.inventory); a card already active is left alone. Returns how many.
    Runs in the caller's transaction."""
    if not line_ids:
        return 0
    rows = session.exec(
        select(GiftCard, OrderLine)
        .join(Key, col(Key.id) == col(GiftCard.key_id))
        .join(OrderLine, col(OrderLine.id) == col(Key.order_line_id))
        .where(
            col(Key.order_line_id).in_(list(line_ids)),
            col(Key.status) == KeyStatus.DELIVERED,
            col(GiftCard.status) == GiftCardStatus.UNSOLD,
        )
        .order_by(col(GiftCard.id))
    ).all()
    for card, line in rows:
        card.status = GiftCardStatus.ACTIVE
        card.currency = line.currency
        card.initial_minor = line.unit_price_minor
        card.order_line_id = line.id
        session.add(card)
        session.flush()
        if line.unit_price_minor > 0:
            credit.post_movement(
                session=session,
                from_account=credit.shop_account(
                    session, name="gift_card_sales", currency=line.currency
                ),
                to_account=credit.gift_card_account(session, card=card),
                amount_minor=line.unit_price_minor,
                reason=Reason.GIFT_CARD_SALE,
                idempotency_key=f"gift_card:{card.id}:sale:{line.id}",
                actor=Actor.system("fulfilment"),
            )
    return len(rows)


def withdraw_for_order(*, session: Session, order_id: int, actor: Actor) -> int:
    """A refunded or disputed order that bought gift cards: what is left on each is
    taken off (reason ``gift_card_void``); a card whose key went back to stock (never
    revealed) is ``unsold`` again, ready to be sold anew; a card whose code the customer
    saw is void. What was already spent with it stays spent. Returns the amount taken
    off. Runs in the caller's transaction."""
    rows = session.exec(
        select(GiftCard, Key)
        .join(Key, col(Key.id) == col(GiftCard.key_id))
        .join(OrderLine, col(OrderLine.id) == col(GiftCard.order_line_id))
        .where(
            col(OrderLine.order_id) == order_id,
            col(GiftCard.status) == GiftCardStatus.ACTIVE,
        )
        .order_by(col(GiftCard.id))
    ).all()
    taken = 0
    for card, key in rows:
        taken += _take_all_off(
            session,
            card,
            key=f"gift_card:{card.id}:withdraw:{card.order_line_id}",
            actor=actor,
            note="order refunded or disputed",
        )
        if key.status == KeyStatus.AVAILABLE:
            card.status, card.order_line_id = GiftCardStatus.UNSOLD, None
        else:
            card.status, card.voided_at = GiftCardStatus.VOID, utcnow()
        session.add(card)
    session.flush()
    return taken


@dataclass(frozen=True, slots=True)
class CardRow:
    id: int
    last4: str
    currency: str
    initial_minor: int
    balance_minor: int
    status: str
    issued_by: str


def list_cards(session: Session, *, limit: int = 200) -> list[CardRow]:
    """The most recent cards with their balances (operators)."""
    cards = session.exec(
        select(GiftCard)
        .where(col(GiftCard.status) != GiftCardStatus.UNSOLD)
        .order_by(col(GiftCard.id).desc())
        .limit(limit)
    ).all()
    return [
        CardRow(
            id=row_id(c.id),
            last4=c.last4,
            currency=c.currency,
            initial_minor=c.initial_minor,
            balance_minor=balance_of(session, c),
            status=c.status,
            issued_by=c.issued_by,
        )
        for c in cards
    ]


def history(session: Session, *, gift_card_id: int) -> list[credit.LedgerLine]:
    card = get_card(session, gift_card_id)
    return credit.account_history(session, account_id=credit.gift_card_account(session, card=card))
