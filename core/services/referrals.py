"""Referrals: each account has a referral link; a customer who signs up through it is
recorded as referred, and when their first paid order has stayed paid (not refunded or
disputed) for ``KEYSHOP_REFERRAL_HOLD_DAYS``, both get store credit
(``KEYSHOP_REFERRAL_REWARD``: per currency, ``EUR:5,USD:5``, or ``10%`` of that order),
reason ``referral_reward`` in the credit ledger (:mod:`core.services.credit`), once
each (idempotency keys ``referral:<id>:referrer`` / ``:referred``).

Refused, never silently (the referral is kept with status ``refused`` and the reason,
and the customer is told): a link to one's own account; the same e-mail domain as the
referrer's (``ana@acme.com`` referring ``bob@acme.com``), unless the domain is a
public mailbox provider (:data:`PUBLIC_DOMAINS`); the same address with ``+tags`` or
dots removed (``a.na+x@gmail.com`` is ``ana@gmail.com``); a loop (the referrer was
referred by the new customer). An unknown or forged link is refused with an error and
nothing recorded.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

from sqlmodel import Session, col, select

from core.config import get_settings
from core.errors import InvalidInput
from core.models import (
    CashbackCampaign,
    Customer,
    Order,
    OrderStatus,
    Referral,
    ReferralStatus,
    row_id,
    utcnow,
)
from core.money import normalise_currency, parse_amount
from core.services import credit
from core.services.audit import Actor, record_audit
from core.signing import secret_key

S = OrderStatus
#: Mailbox providers whose users are strangers to each other: a shared domain there
#: says nothing.
PUBLIC_DOMAINS: Final = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "t-online.de",
        "mail.com",
        "aol.com",
        "yandex.ru",
        "example.com",
    }
)
#: Orders that count as paid and kept.
KEPT: Final = (S.PAID, S.FULFILLED, S.NEEDS_ATTENTION)


def referral_code(customer_id: int) -> str:
    """The customer's referral code: their id and a keyed check (``12-3fa9c1d2e4``)."""
    mac = hmac.new(secret_key(), f"referral:{customer_id}".encode(), hashlib.sha256)
    return f"{customer_id}-{mac.hexdigest()[:10]}"


def referrer_of(code: str) -> int:
    """The customer a referral code names; InvalidInput for anything else."""
    head, _, check = (code or "").strip().partition("-")
    if (
        not head.isdigit()
        or len(head) > 12
        or not hmac.compare_digest(referral_code(int(head)), f"{head}-{check}")
    ):
        raise InvalidInput("that referral link is not valid", field="referral")
    return int(head)


def _mailbox(email: str) -> tuple[str, str]:
    local, _, domain = email.lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return local, domain


def refusal(referrer: Customer, referred: Customer, *, referrer_referred_by: int | None) -> str:
    """Why this referral cannot be rewarded ("" when it can): the heuristics above."""
    if referrer.id == referred.id:
        return "a referral link cannot be used by its own account"
    if referrer_referred_by is not None and referrer_referred_by == referred.id:
        return "referral loop: the referrer was referred by this customer"
    mine, theirs = _mailbox(referrer.email), _mailbox(referred.email)
    if mine == theirs:
        return "the same mailbox as the referrer's"
    if mine[1] == theirs[1] and mine[1] not in PUBLIC_DOMAINS:
        return f"the same e-mail domain as the referrer ({mine[1]})"
    return ""


def record_referral(*, session: Session, code: str, referred_id: int) -> Referral:
    """Record that ``referred_id`` signed up through ``code``'s link. A customer is
    referred at most once (a second link is refused: InvalidInput). A referral the
    heuristics refuse is recorded as ``refused`` with the reason (returned; the caller
    tells the customer). Runs in the caller's transaction."""
    referrer_id = referrer_of(code)
    referrer, referred = session.get(Customer, referrer_id), session.get(Customer, referred_id)
    if referrer is None or referred is None:
        raise InvalidInput("that referral link is not valid", field="referral")
    if session.exec(select(Referral).where(Referral.referred_id == referred_id)).first():
        raise InvalidInput("this account was already referred", field="referral")
    upstream = session.exec(
        select(Referral.referrer_id).where(Referral.referred_id == referrer_id)
    ).first()
    why = refusal(referrer, referred, referrer_referred_by=upstream)
    referral = Referral(
        referrer_id=referrer_id,
        referred_id=referred_id,
        status=ReferralStatus.REFUSED if why else ReferralStatus.PENDING,
        reason=why,
        decided_at=utcnow() if why else None,
    )
    session.add(referral)
    session.flush()
    return referral


def reward_minor(order: Order, setting: str) -> int:
    """The reward for one side, in the order's currency: a per-currency amount
    (``EUR:5,USD:5``: 0 for a currency not listed) or a percent of the order's total
    (``10%``, rounded down). Malformed: InvalidInput naming the setting."""
    text = setting.strip()
    if not text:
        return 0
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            raise InvalidInput(f"KEYSHOP_REFERRAL_REWARD: {text!r} is not a percent") from None
        if not 0 < percent <= 100:
            raise InvalidInput("KEYSHOP_REFERRAL_REWARD: a percent is 0 to 100")
        return order.total_minor * round(percent * 100) // 10_000
    for part in text.split(","):
        currency, _, amount = part.partition(":")
        if normalise_currency(currency) == order.currency:
            return parse_amount(amount, order.currency, field="KEYSHOP_REFERRAL_REWARD")
    return 0


@dataclass(frozen=True, slots=True)
class Payout:
    rewarded: int
    voided: int
    cashback: int = 0  # orders credited by cashback campaigns (pay_due only)


def pay_due_referrals(*, session: Session, actor: Actor | None = None) -> Payout:
    """Decide every pending referral whose referred customer has a paid order: the first
    one paid, once it has been paid for the hold, gives both customers their reward (or
    voids the referral when it was refunded or disputed). Idempotent: run it as often as
    you like (a periodic task does, daily). Runs in the caller's transaction."""
    settings = get_settings()
    actor = actor or Actor.system("referrals")
    cutoff = utcnow() - timedelta(days=settings.referral_hold_days)
    rewarded = voided = 0
    pending = session.exec(
        select(Referral)
        .where(Referral.status == ReferralStatus.PENDING.value)
        .order_by(col(Referral.id))
    ).all()
    for referral in pending:
        first = session.exec(
            select(Order)
            .where(Order.customer_id == referral.referred_id, col(Order.paid_at).is_not(None))
            .order_by(col(Order.paid_at), col(Order.id))
        ).first()
        if first is None or first.paid_at is None:
            continue
        referral.order_id = first.id
        if first.status not in KEPT:
            referral.status, referral.reason = (
                ReferralStatus.VOID,
                f"order {first.number} {first.status}",
            )
            referral.decided_at = utcnow()
            voided += 1
            session.add(referral)
            continue
        if first.paid_at > cutoff:
            session.add(referral)
            continue
        amount = reward_minor(first, settings.referral_reward)
        referral_id = row_id(referral.id)
        if amount > 0:
            for side, customer_id in (
                ("referrer", referral.referrer_id),
                ("referred", referral.referred_id),
            ):
                credit.adjust_customer_credit(
                    session=session,
                    customer_id=customer_id,
                    amount_minor=amount,
                    currency=first.currency,
                    actor=actor,
                    note=f"referral reward (order {first.number})",
                    idempotency_key=f"referral:{referral_id}:{side}",
                    reason=credit.Reason.REFERRAL_REWARD,
                )
        referral.status = ReferralStatus.REWARDED
        referral.reason = "" if amount else f"no reward set for {first.currency}"
        referral.decided_at = utcnow()
        session.add(referral)
        rewarded += 1
    session.flush()
    return Payout(rewarded, voided)


def pay_due() -> Payout:
    """:func:`pay_due_referrals` and :func:`pay_cashback` in a transaction of their own
    (the hourly task)."""
    from core.db import session_scope

    with session_scope() as session:
        payout = pay_due_referrals(session=session)
        cashback = pay_cashback(session=session)
    return Payout(payout.rewarded, payout.voided, cashback)


#: A referral's status in the referrer's words (the account page).
STATUS_WORDS: Final[dict[str, str]] = {
    ReferralStatus.PENDING: "waiting for their first order to be kept",
    ReferralStatus.REWARDED: "rewarded: store credit for you both",
    ReferralStatus.VOID: "no reward: their first order was refunded",
    ReferralStatus.REFUSED: "no reward",
}


def invitations(*, customer_id: int) -> tuple[str, list[tuple[str, str, datetime]]]:
    """The account page's referral part: the customer's own link, and the customers who
    came through it (masked e-mail, the status in words with a refusal's reason). Owns
    its (read-only) transaction."""
    from core.db import session_scope

    link = f"{get_settings().public_url}/signup?ref={referral_code(customer_id)}"
    with session_scope(write=False) as session:
        rows = session.exec(
            select(Referral, Customer.email)
            .join(Customer, col(Customer.id) == col(Referral.referred_id))
            .where(Referral.referrer_id == customer_id)
            .order_by(col(Referral.id).desc())
        ).all()
    invited = []
    for referral, email in rows:
        local, _, domain = email.partition("@")
        words = STATUS_WORDS.get(referral.status, referral.status)
        if referral.reason and referral.status == ReferralStatus.REFUSED:
            words = f"{words} ({referral.reason})"
        invited.append((f"{local[:2]}…@{domain}", words, referral.created_at))
    return link, invited


def referrals_of(session: Session, *, customer_id: int) -> list[Referral]:
    """The customers someone referred, newest first."""
    return list(
        session.exec(
            select(Referral)
            .where(Referral.referrer_id == customer_id)
            .order_by(col(Referral.id).desc())
        ).all()
    )


# -- cashback campaigns -------------------------------------------------------------------


def create_campaign(
    *,
    session: Session,
    name: str,
    percent: str,
    starts_at: datetime,
    ends_at: datetime,
    actor: Actor,
) -> CashbackCampaign:
    """A cashback campaign: ``percent`` (``"5"``, ``"2.5"``; 0.01 to 50) of each
    qualifying order's total back as store credit. Refused (InvalidInput, nothing
    written): an empty or taken name, a bad percent, an end before the start. Audited.
    Runs in the caller's transaction."""
    label = (name or "").strip()
    if not label or len(label) > 80:
        raise InvalidInput("a campaign needs a name of at most 80 characters", field="name")
    try:
        bp = Decimal(percent.strip().rstrip("%")) * 100
    except (InvalidOperation, AttributeError):
        raise InvalidInput(f"{percent!r} is not a percent", field="percent") from None
    if bp != bp.to_integral_value() or not 1 <= bp <= 5000:
        raise InvalidInput("cashback is 0.01 to 50 percent", field="percent")
    if ends_at <= starts_at:
        raise InvalidInput("a campaign ends after it starts", field="ends_at")
    if session.exec(select(CashbackCampaign).where(CashbackCampaign.name == label)).first():
        raise InvalidInput(f"there is already a campaign {label!r}", field="name")
    campaign = CashbackCampaign(
        name=label,
        percent_bp=int(bp),
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=str(actor)[:160],
    )
    session.add(campaign)
    session.flush()
    record_audit(
        session=session,
        actor=actor,
        action="cashback.create",
        object_type="cashback_campaign",
        object_id=row_id(campaign.id),
        data={"name": label, "percent_bp": int(bp)},
    )
    return campaign


def pay_cashback(*, session: Session, actor: Actor | None = None) -> int:
    """Credit each campaign's qualifying orders whose hold has passed: orders of a
    signed-in customer, paid within the campaign, still kept (not refunded or disputed)
    ``KEYSHOP_REFERRAL_HOLD_DAYS`` after payment; ``percent`` of the order total (rounded
    down), from ``shop:referrals``, reason ``cashback``. Once per order and campaign
    (idempotency key ``cashback:<campaign>:<order>``). Returns how many orders were credited this time.
    Runs in the caller's transaction."""
    settings = get_settings()
    actor = actor or Actor.system("cashback")
    cutoff = utcnow() - timedelta(days=settings.referral_hold_days)
    paid = 0
    campaigns = session.exec(
        select(CashbackCampaign)
        .where(col(CashbackCampaign.starts_at) <= cutoff)
        .order_by(col(CashbackCampaign.id))
    ).all()
    for campaign in campaigns:
        orders = session.exec(
            select(Order)
            .where(
                col(Order.customer_id).is_not(None),
                col(Order.paid_at) >= campaign.starts_at,
                col(Order.paid_at) < campaign.ends_at,
                col(Order.paid_at) <= cutoff,
                col(Order.status).in_([str(s) for s in KEPT]),
            )
            .order_by(col(Order.id))
        ).all()
        for order in orders:
            amount = order.total_minor * campaign.percent_bp // 10_000
            if amount <= 0 or order.customer_id is None:
                continue
            posted = credit.adjust_customer_credit(
                session=session,
                customer_id=order.customer_id,
                amount_minor=amount,
                currency=order.currency,
                actor=actor,
                note=f"cashback {campaign.name} (order {order.number})",
                idempotency_key=f"cashback:{campaign.id}:{order.id}",
                reason=credit.Reason.CASHBACK,
            )
            paid += 0 if posted.replayed else 1
    return paid


@dataclass(frozen=True, slots=True)
class ReferralRow:
    created_at: datetime
    referrer: str
    referred: str
    status: str
    reason: str


def recent(session: Session, *, limit: int = 100) -> list[ReferralRow]:
    """The latest referrals with both e-mail addresses (operators)."""
    referred = Customer.__table__.alias("referred")  # type: ignore[attr-defined]
    rows = session.execute(
        select(Referral, Customer.email, referred.c.email)
        .join(Customer, col(Customer.id) == col(Referral.referrer_id))
        .join(referred, referred.c.id == col(Referral.referred_id))
        .order_by(col(Referral.id).desc())
        .limit(limit)
    ).all()
    return [
        ReferralRow(r.created_at, referrer_email, referred_email, r.status, r.reason)
        for r, referrer_email, referred_email in rows
    ]


def campaigns(session: Session) -> list[CashbackCampaign]:
    """Every cashback campaign, newest first."""
    return list(
        session.exec(select(CashbackCampaign).order_by(col(CashbackCampaign.id).desc())).all()
    )
