"""Store credit and gift cards: one double-entry ledger (core.services.credit).

- :class:`LedgerAccount`: a customer's credit in one currency, a gift card's balance, or
  one of the shop's own counter-accounts (``shop`` kind: where credit comes from and goes
  to: adjustments, refunds, orders, gift-card sales…). Only customer and gift-card
  accounts ("holder" accounts) are held to a balance that is never negative.
- :class:`LedgerMovement`: one movement of money between two accounts, with a reason and
  an idempotency key (unique: a replayed webhook or a retried command moves nothing).
- :class:`LedgerEntry`: the two sides of a movement (minus on the account it leaves,
  plus on the one it reaches); an account's balance is the sum of its entries.
- :class:`GiftCard`: a code stored like a key (encrypted, with a keyed fingerprint to find
  it) and an account of its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, String, Text, Uuid
from sqlmodel import Field, SQLModel

from core.models.base import UTCDateTime, utcnow


class AccountKind(StrEnum):
    CUSTOMER = "customer"
    GIFT_CARD = "gift_card"
    SHOP = "shop"


class LedgerAccount(SQLModel, table=True):
    __tablename__ = "ledger_accounts"

    id: int | None = Field(default=None, primary_key=True)
    #: ``customer:5:EUR``, ``gift_card:12``, ``shop:refunds:EUR``: one row per account.
    ref: str = Field(sa_column=Column(String(80), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(20), nullable=False))
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    gift_card_id: int | None = Field(default=None, foreign_key="gift_cards.id", index=True)
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class LedgerMovement(SQLModel, table=True):
    __tablename__ = "ledger_movements"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(sa_column=Column(String(160), nullable=False, unique=True))
    reason: str = Field(sa_column=Column(String(30), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    from_account_id: int = Field(foreign_key="ledger_accounts.id", nullable=False)
    to_account_id: int = Field(foreign_key="ledger_accounts.id", nullable=False)
    order_id: int | None = Field(default=None, foreign_key="orders.id", index=True)
    actor: str = Field(default="system", sa_column=Column(String(160), nullable=False))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entries"

    id: int | None = Field(default=None, primary_key=True)
    movement_id: int = Field(foreign_key="ledger_movements.id", index=True, nullable=False)
    account_id: int = Field(foreign_key="ledger_accounts.id", index=True, nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))


class GiftCardStatus(StrEnum):
    ACTIVE = "active"
    VOID = "void"
    #: Stock of a gift-card product, not sold yet: no balance until its key is delivered.
    UNSOLD = "unsold"


class GiftCard(SQLModel, table=True):
    __tablename__ = "gift_cards"

    id: int | None = Field(default=None, primary_key=True)
    #: The associated data the code's ciphertext is bound to (as keys: core.crypto).
    uid: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=Column(Uuid, nullable=False, unique=True)
    )
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_version: int = Field(sa_column=Column(Integer, nullable=False))
    fingerprint: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    #: The code's last four characters, for operators and receipts.
    last4: str = Field(sa_column=Column(String(4), nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    initial_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default=GiftCardStatus.ACTIVE, sa_column=Column(String(10), nullable=False))
    #: The paid order line that bought it (None: issued by an operator).
    order_line_id: int | None = Field(default=None, foreign_key="order_lines.id", index=True)
    #: The key that sells it: stock of a gift-card product (core.services.giftcards).
    key_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("keys.id"), nullable=True, unique=True)
    )
    issued_by: str = Field(default="system", sa_column=Column(String(160), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def __repr__(self) -> str:  # never show the ciphertext or fingerprint
        return f"GiftCard(id={self.id}, …{self.last4}, {self.currency}, {self.status})"


class ReferralStatus(StrEnum):
    PENDING = "pending"  # waiting for the referred customer's first paid order and the hold
    REWARDED = "rewarded"  # both got their credit
    REFUSED = "refused"  # self-referral or a loop: never rewarded (reason says why)
    VOID = "void"  # the first order was refunded or disputed


class Referral(SQLModel, table=True):
    """One customer brought by another's referral link (core.services.referrals)."""

    __tablename__ = "referrals"

    id: int | None = Field(default=None, primary_key=True)
    referrer_id: int = Field(foreign_key="customers.id", index=True, nullable=False)
    referred_id: int = Field(foreign_key="customers.id", unique=True, nullable=False)
    status: str = Field(
        default=ReferralStatus.PENDING, sa_column=Column(String(10), nullable=False)
    )
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    order_id: int | None = Field(default=None, foreign_key="orders.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CashbackCampaign(SQLModel, table=True):
    """A percent of qualifying orders given back as store credit after the referral
    hold (core.services.referrals.pay_cashback): orders of signed-in customers paid
    between ``starts_at`` and ``ends_at`` and kept (not refunded or disputed)."""

    __tablename__ = "cashback_campaigns"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(80), nullable=False, unique=True))
    #: Basis points of the order's total: 500 = 5 %.
    percent_bp: int = Field(sa_column=Column(Integer, nullable=False))
    starts_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    ends_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_by: str = Field(default="system", sa_column=Column(String(160), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
