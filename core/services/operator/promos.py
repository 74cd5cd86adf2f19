"""Promo codes as the owner runs them: create one, generate single-use codes in bulk,
pause and resume (one code or a whole campaign), list, and see each code's usage.

:func:`promo_spec` is the one validation of promo input (the CLI and the console build a
:class:`PromoInput` from what the operator typed); what a code then takes off a cart is
:mod:`core.services.promos`. Every change is audited (``promo.create``,
``promo.generate``, ``promo.pause``, ``promo.resume``). Functions that change something
own their transaction; reads take a session.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db import session_scope
from core.errors import DomainError, InvalidInput, NotFound
from core.models import Order, Product, PromoCode, PromoKind, PromoRedemption, PromoScope
from core.money import normalise_currency, parse_amount
from core.services.audit import Actor, record_audit
from core.services.promos import CODE_RE, normalise_code

MAX_GENERATE: Final = 100_000
#: Crockford base32 without I, L, O, U: nothing to misread on a flyer.
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
GENERATED_LENGTH: Final = 10  # 50 random bits per code
_BATCH: Final = 1000


class UnknownPromo(NotFound):
    code = "unknown_promo"


class DuplicatePromo(DomainError):
    code = "duplicate_promo"
    http_status = 409


@dataclass
class PromoInput:
    """A code as the operator types it. ``percent`` (``"10"``, ``"12.5"``) or ``amounts``
    (``"EUR=5, USD=5.50"``); ``minimum`` in the same form; ``scope_values`` are product
    slugs, platform names or genre names for the scopes of those names."""

    code: str | None = None
    percent: str | None = None
    amounts: str | None = None
    minimum: str | None = None
    scope: str = PromoScope.SHOP
    scope_values: list[str] = field(default_factory=list)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_uses: int | None = None
    per_customer: int | None = None
    stackable: bool = False
    below_cost: bool = False
    campaign: str | None = None
    note: str = ""


def parse_amounts(text: str | None, *, field_name: str) -> dict[str, int]:
    """``"EUR=5, USD=5.50"`` → ``{"EUR": 500, "USD": 550}`` (core.money parses each)."""
    out: dict[str, int] = {}
    for part in re.split(r"[;\s]+|,(?=\s*[A-Za-z]{3}\s*=)", (text or "").strip()):
        if not part:
            continue
        cur, sep, amount = part.partition("=")
        if not sep:
            raise InvalidInput(
                f"{field_name}: write amounts as CURRENCY=AMOUNT, e.g. EUR=5", field=field_name
            )
        code = normalise_currency(cur)
        if code in out:
            raise InvalidInput(f"{field_name}: {code} given twice", field=field_name)
        out[code] = parse_amount(amount, code, field=field_name)
    return out


def _percent_bp(text: str) -> int:
    try:
        value = Decimal(text.strip().rstrip("%").strip())
    except (InvalidOperation, AttributeError):
        raise InvalidInput(f"percent: {text!r} is not a number", field="percent") from None
    bp = value * 100
    if not value.is_finite() or bp != bp.to_integral_value() or not (0 < bp <= 10_000):
        raise InvalidInput("percent: from 0.01 to 100, at most two decimals", field="percent")
    return int(bp)


def _positive(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name}: a whole number of at least 1", field=name)
    return value


def promo_spec(*, session: Session, data: PromoInput) -> dict[str, Any]:
    """The columns of a :class:`PromoCode` from ``data`` (without ``code``), or
    InvalidInput naming the field: percent or amounts (exactly one), amounts and minimums
    per currency, a known scope with values (unknown product slugs refused), an end
    after the start, limits of at least 1. Read-only."""
    if (data.percent is None or not data.percent.strip()) == (not (data.amounts or "").strip()):
        raise InvalidInput("give a percent or fixed amounts, not both", field="percent")
    kind = PromoKind.PERCENT if data.percent and data.percent.strip() else PromoKind.FIXED
    spec: dict[str, Any] = {
        "kind": kind,
        "percent_bp": _percent_bp(data.percent or "") if kind == PromoKind.PERCENT else None,
        "amounts": parse_amounts(data.amounts, field_name="amount")
        if kind == PromoKind.FIXED
        else {},
        "minimums": parse_amounts(data.minimum, field_name="minimum"),
    }
    if kind == PromoKind.FIXED and any(v <= 0 for v in spec["amounts"].values()):
        raise InvalidInput("amount: more than zero", field="amount")
    if data.scope not in tuple(PromoScope):
        raise InvalidInput(f"scope: one of {', '.join(s.value for s in PromoScope)}", field="scope")
    values = [v.strip() for v in data.scope_values if v and v.strip()]
    if data.scope != PromoScope.SHOP and not values:
        raise InvalidInput(f"scope {data.scope}: name at least one", field="scope_values")
    if data.scope == PromoScope.SHOP and values:
        raise InvalidInput("a shop-wide code names no products", field="scope_values")
    if data.scope == PromoScope.PRODUCTS:
        found = {
            slug: pid
            for slug, pid in session.exec(
                select(Product.slug, Product.id).where(col(Product.slug).in_(values))
            )
        }
        missing = [v for v in values if v not in found]
        if missing:
            raise InvalidInput(f"no product {', '.join(missing)}", field="scope_values")
        scope_values: list[Any] = sorted({found[v] for v in values})
    else:
        scope_values = sorted({v.lower() for v in values})
    if data.starts_at and data.ends_at and data.ends_at <= data.starts_at:
        raise InvalidInput("the end must come after the start", field="ends_at")
    campaign = (data.campaign or "").strip() or None
    if campaign and len(campaign) > 80:
        raise InvalidInput("campaign: at most 80 characters", field="campaign")
    spec.update(
        scope=data.scope,
        scope_values=scope_values,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        max_uses=_positive(data.max_uses, "max_uses"),
        per_customer=_positive(data.per_customer, "per_customer"),
        stackable=bool(data.stackable),
        below_cost=bool(data.below_cost),
        campaign=campaign,
        note=data.note or "",
    )
    return spec


def _audit_data(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in spec.items()
        if v not in (None, "", [], {})
    }


def create_promo(*, data: PromoInput, actor: Actor) -> str:
    """Store one code (audited ``promo.create``); returns it. DuplicatePromo when the
    code exists. Owns its transaction."""
    code = normalise_code(data.code or "")
    with session_scope() as session:
        spec = promo_spec(session=session, data=data)
        if session.exec(select(PromoCode.id).where(PromoCode.code == code)).first():
            raise DuplicatePromo(f"promo code {code} already exists", code_text=code)
        session.add(PromoCode(code=code, created_by=str(actor), **spec))
        try:
            session.flush()
        except IntegrityError:
            raise DuplicatePromo(f"promo code {code} already exists", code_text=code) from None
        record_audit(
            session=session,
            actor=actor,
            action="promo.create",
            object_type="promo_code",
            object_id=code,
            data=_audit_data(spec),
        )
    return code


def new_code(prefix: str = "") -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_LENGTH))
    return f"{prefix}-{body}" if prefix else body


def generate_codes(*, data: PromoInput, count: int, prefix: str = "", actor: Actor) -> list[str]:
    """``count`` single-use codes (``PREFIX-XXXXXXXXXX``, 50 random bits each) with the
    terms of ``data`` (its ``max_uses`` is ignored: each code is used once; its
    ``campaign`` names the batch, default the prefix). All or nothing; audited once
    (``promo.generate``). Owns its transaction; returns the codes."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_GENERATE:
        raise InvalidInput(f"count: from 1 to {MAX_GENERATE}", field="count")
    prefix = (prefix or "").strip().upper()
    if prefix and not (re.fullmatch(r"[A-Z0-9]{1,12}", prefix)):
        raise InvalidInput("prefix: at most 12 letters and digits", field="prefix")
    data.max_uses = 1
    data.campaign = data.campaign or prefix or None
    with session_scope() as session:
        spec = promo_spec(session=session, data=data)
        codes: list[str] = []
        seen: set[str] = set()
        while len(codes) < count:
            batch: list[str] = []
            while len(batch) < min(_BATCH, count - len(codes)):
                code = new_code(prefix)
                if code not in seen and CODE_RE.fullmatch(code):
                    seen.add(code)
                    batch.append(code)
            taken = set(session.exec(select(PromoCode.code).where(col(PromoCode.code).in_(batch))))
            batch = [c for c in batch if c not in taken]  # a 1-in-10^15 collision: drawn again
            session.add_all(PromoCode(code=c, created_by=str(actor), **spec) for c in batch)
            session.flush()
            codes.extend(batch)
        record_audit(
            session=session,
            actor=actor,
            action="promo.generate",
            object_type="promo_campaign",
            object_id=spec["campaign"] or "-",
            data={"count": count, "prefix": prefix, **_audit_data(spec)},
        )
    return codes


def set_paused(
    *, code: str | None = None, campaign: str | None = None, paused: bool, actor: Actor
) -> int:
    """Pause (or resume) one code or every code of a campaign (audited ``promo.pause``
    / ``promo.resume``); returns how many changed. UnknownPromo when none matches. A
    paused code is refused at checkout; orders already placed keep their discount."""
    if (code is None) == (campaign is None):
        raise InvalidInput("name a code or a campaign", field="code")
    with session_scope() as session:
        query = select(PromoCode)
        if code is not None:
            query = query.where(PromoCode.code == normalise_code(code))
        else:
            query = query.where(PromoCode.campaign == campaign)
        rows = list(session.exec(query))
        if not rows:
            raise UnknownPromo(f"no promo code {code or 'in campaign ' + str(campaign)}")
        changed = [r for r in rows if r.paused != paused]
        for row in changed:
            row.paused = paused
            session.add(row)
        record_audit(
            session=session,
            actor=actor,
            action="promo.pause" if paused else "promo.resume",
            object_type="promo_code" if code is not None else "promo_campaign",
            object_id=rows[0].code if code is not None else str(campaign),
            data={"changed": len(changed)},
        )
    return len(changed)


# -- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromoRow:
    code: str
    kind: str
    percent_bp: int | None
    amounts: dict[str, int]
    scope: str
    uses: int
    max_uses: int | None
    paused: bool
    starts_at: datetime | None
    ends_at: datetime | None
    campaign: str | None


def _row(p: PromoCode) -> PromoRow:
    return PromoRow(
        code=p.code, kind=p.kind, percent_bp=p.percent_bp, amounts=dict(p.amounts or {}),
        scope=p.scope, uses=p.uses, max_uses=p.max_uses, paused=p.paused,
        starts_at=p.starts_at, ends_at=p.ends_at, campaign=p.campaign,
    )  # fmt: skip


def list_promos(
    *, session: Session, query: str = "", campaign: str | None = None, limit: int = 200
) -> list[PromoRow]:
    """Codes, newest first; ``query`` matches the start of the code."""
    stmt = select(PromoCode).order_by(col(PromoCode.id).desc()).limit(limit)
    if query.strip():
        stmt = stmt.where(col(PromoCode.code).startswith(query.strip().upper(), autoescape=True))
    if campaign:
        stmt = stmt.where(PromoCode.campaign == campaign)
    return [_row(p) for p in session.exec(stmt)]


@dataclass(frozen=True, slots=True)
class UseRow:
    order: str
    status: str
    email: str
    currency: str
    discount_minor: int
    created_at: datetime
    released: bool


@dataclass(frozen=True, slots=True)
class PromoUsage:
    promo: PromoRow
    live: int  # uses held by orders not cancelled
    released: int  # uses given back by cancelled or expired orders
    discount: dict[str, int]  # discount of the live uses, per currency
    uses: list[UseRow]


def promo_usage(*, session: Session, code: str, limit: int = 50) -> PromoUsage:
    """One code's usage: live and released uses, discount given per currency, and its
    latest ``limit`` uses with their orders. UnknownPromo when there is no such code."""
    promo = session.exec(select(PromoCode).where(PromoCode.code == normalise_code(code))).first()
    if promo is None:
        raise UnknownPromo(f"no promo code {code}")
    counts = {
        released: int(n)
        for released, n in session.exec(
            select(col(PromoRedemption.released_at).is_not(None), func.count())
            .where(PromoRedemption.promo_id == promo.id)
            .group_by(col(PromoRedemption.released_at).is_not(None))
        )
    }
    discount = {
        cur: int(total)
        for cur, total in session.exec(
            select(PromoRedemption.currency, func.sum(PromoRedemption.discount_minor))
            .where(PromoRedemption.promo_id == promo.id, col(PromoRedemption.released_at).is_(None))
            .group_by(PromoRedemption.currency)
        )
    }
    rows = [
        UseRow(
            order=number,
            status=status,
            email=r.email,
            currency=r.currency,
            discount_minor=r.discount_minor,
            created_at=r.created_at,
            released=r.released_at is not None,
        )
        for r, number, status in session.exec(
            select(PromoRedemption, Order.number, Order.status)
            .join(Order, col(Order.id) == col(PromoRedemption.order_id))
            .where(PromoRedemption.promo_id == promo.id)
            .order_by(col(PromoRedemption.id).desc())
            .limit(limit)
        )
    ]
    return PromoUsage(
        promo=_row(promo),
        live=counts.get(False, 0),
        released=counts.get(True, 0),
        discount=discount,
        uses=rows,
    )
