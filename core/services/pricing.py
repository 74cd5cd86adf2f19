"""Pricing rules: the one home of how a price is computed from a rule and an offer's cost.

A rule (:class:`core.models.PricingRule`) is ``fixed`` or ``cost_plus``. Cost-plus takes
the cheapest usable offer (mapped to the product, in stock, with a cost in the rule's
currency), adds the margin, keeps the result between the floor and the ceiling, and with
``charm`` moves it up to the next charm price (…99, see :func:`charm_up`) unless that
passes the ceiling, in which case it stays unrounded (so rounding never crosses the
floor nor gives up margin).

Which rule applies: one for the product wins; otherwise the rule whose platform, region
and genre all match the product and which names the most of them (a rule naming none is
the shop's default), the oldest first on a tie; only rules in the product's currency.

:func:`reprice` computes every product's price, records each change with its reason in
``price_changes`` (``codeswholesale cost 12.40 → 13.10 EUR, +20 %, charm``) and audits
it, or with ``dry_run`` only says what would change. It runs after each provider sync.
:func:`check_margins` raises an alert when an offer's cost rises above what a fixed price
can carry with the rule's (or the shop's) minimum margin. :func:`cost_floors` is the
lowest price a discount may leave (promo codes, :mod:`core.services.promos`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, col, select

from core import money
from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.models import (
    AlertKind,
    PriceChange,
    PricingRule,
    Product,
    ProviderOffer,
    row_id,
    utcnow,
)
from core.services.alerts import raise_alert
from core.services.audit import Actor, record_audit

FIXED: Final = "fixed"
COST_PLUS: Final = "cost_plus"
MODES: Final = (FIXED, COST_PLUS)
MAX_MARGIN_BP: Final = 100_000  # 1000 %


# -- arithmetic (pure) -------------------------------------------------------------------


def _charm_modulus(currency: str) -> tuple[int, int]:
    """(modulus, ending): a charm price ``p`` has ``p % modulus == ending``: ``x.99`` in
    two-decimal currencies, ``x.990`` in three-decimal ones, ``…9`` in whole units."""
    places = money.exponent(currency)
    if places >= 2:
        modulus = 10**places
        return modulus, modulus - 10 ** (places - 2)
    return 10, 9


def is_charm(price_minor: int, currency: str) -> bool:
    modulus, ending = _charm_modulus(currency)
    return price_minor % modulus == ending


def charm_up(price_minor: int, currency: str) -> int:
    """The smallest charm price at or above ``price_minor``."""
    modulus, ending = _charm_modulus(currency)
    base = price_minor - price_minor % modulus + ending
    return base if base >= price_minor else base + modulus


def with_margin(cost_minor: int, margin_bp: int) -> int:
    """``cost_minor`` plus ``margin_bp`` basis points, rounded up to a whole minor unit."""
    return -(-cost_minor * (10_000 + margin_bp) // 10_000)


def cost_plus_price(
    *,
    cost_minor: int,
    margin_bp: int,
    currency: str,
    floor_minor: int | None = None,
    ceiling_minor: int | None = None,
    charm: bool = True,
) -> int:
    """The cost-plus price: margin, then floor and ceiling, then charm rounding up to
    the next charm price unless that passes the ceiling (then the price stays as it is:
    rounding down would give up margin or cross the floor). The floor wins over the
    ceiling if they cross (rules are refused when they do)."""
    price = with_margin(cost_minor, margin_bp)
    if ceiling_minor is not None:
        price = min(price, ceiling_minor)
    if floor_minor is not None:
        price = max(price, floor_minor)
    if not charm or is_charm(price, currency):
        return price
    candidate = charm_up(price, currency)
    if ceiling_minor is not None and candidate > ceiling_minor:
        return price  # rounding down would give up margin or cross the floor
    return candidate


# -- rules -------------------------------------------------------------------------------


class UnknownRule(NotFound):
    code = "unknown_rule"


@dataclass(frozen=True)
class RuleInput:
    """A rule as the owner states it (money in minor units of ``currency``)."""

    currency: str
    mode: str
    product_id: int | None = None
    platform: str | None = None
    region: str | None = None
    genre: str | None = None
    fixed_price_minor: int | None = None
    margin_bp: int | None = None
    floor_minor: int | None = None
    ceiling_minor: int | None = None
    charm: bool = True
    min_margin_bp: int | None = None


def check_rule(rule: RuleInput) -> None:
    """Refuse a rule that cannot price anything (InvalidInput naming the field)."""
    if rule.mode not in MODES:
        raise InvalidInput("mode must be fixed or cost_plus", field="mode")
    money.normalise_currency(rule.currency)
    if rule.mode == FIXED and (rule.fixed_price_minor is None or rule.fixed_price_minor < 0):
        raise InvalidInput("a fixed rule needs a price of 0 or more", field="price")
    if rule.mode == COST_PLUS and (
        rule.margin_bp is None or not (-10_000 < rule.margin_bp <= MAX_MARGIN_BP)
    ):
        raise InvalidInput("a cost-plus rule needs a margin from -99 % to 1000 %", field="margin")
    for name in ("floor_minor", "ceiling_minor", "fixed_price_minor"):
        value = getattr(rule, name)
        if value is not None and value < 0:
            raise InvalidInput(f"{name.removesuffix('_minor')} cannot be negative", field=name)
    if (
        rule.floor_minor is not None
        and rule.ceiling_minor is not None
        and rule.floor_minor > rule.ceiling_minor
    ):
        raise InvalidInput("the floor is above the ceiling", field="floor")
    if rule.min_margin_bp is not None and not (0 <= rule.min_margin_bp <= MAX_MARGIN_BP):
        raise InvalidInput("the minimum margin must be from 0 % to 1000 %", field="min_margin")


def add_rule(*, rule: RuleInput, actor: Actor) -> int:
    """Store a rule (audited ``pricing.rule_add``); returns its id. Owns its transaction."""
    check_rule(rule)
    with session_scope() as session:
        row = PricingRule(
            **{k: v for k, v in rule.__dict__.items()},
            created_by=str(actor),
        )
        row.currency = money.normalise_currency(rule.currency)
        session.add(row)
        session.flush()
        assert row.id is not None
        record_audit(
            session=session,
            actor=actor,
            action="pricing.rule_add",
            object_type="pricing_rule",
            object_id=row.id,
            data={k: v for k, v in rule.__dict__.items() if v is not None},
        )
        return row.id


def remove_rule(*, rule_id: int, actor: Actor) -> None:
    with session_scope() as session:
        row = session.get(PricingRule, rule_id)
        if row is None:
            raise UnknownRule(f"no pricing rule #{rule_id}", rule_id=rule_id)
        session.delete(row)
        record_audit(
            session=session,
            actor=actor,
            action="pricing.rule_remove",
            object_type="pricing_rule",
            object_id=rule_id,
            data={"mode": row.mode, "product_id": row.product_id},
        )


def rules(*, session: Session) -> list[PricingRule]:
    return list(session.exec(select(PricingRule).order_by(col(PricingRule.id))))


def rule_product_slugs(*, session: Session, found: Iterable[PricingRule]) -> dict[int, str]:
    """The slugs of the products the rules ``found`` are for (by product id), so a rule
    can name its product instead of an internal id."""
    ids = {r.product_id for r in found if r.product_id is not None}
    if not ids:
        return {}
    query = select(col(Product.id), col(Product.slug)).where(col(Product.id).in_(ids))
    return {row_id(pid): slug for pid, slug in session.exec(query)}


def rule_for(product: Product, candidates: Iterable[PricingRule]) -> PricingRule | None:
    """The rule that prices ``product`` (see the module docstring)."""
    best: tuple[int, int] | None = None
    chosen = None
    for rule in candidates:
        if rule.currency != product.currency:
            continue
        if rule.product_id is not None:
            if rule.product_id != product.id:
                continue
            score = 10
        else:
            named = [
                (rule.platform, product.platform),
                (rule.region, product.region),
                (rule.genre, product.genre),
            ]
            if any(want is not None and want.lower() != have.lower() for want, have in named):
                continue
            score = sum(1 for want, _ in named if want is not None)
        key = (-score, rule.id or 0)
        if best is None or key < best:
            best, chosen = key, rule
    return chosen


# -- repricing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PricePlan:
    """What a rule makes of one product's price."""

    product_id: int
    slug: str
    currency: str
    old_minor: int
    new_minor: int
    rule_id: int | None
    reason: str
    cost_minor: int | None = None

    @property
    def changes(self) -> bool:
        return self.new_minor != self.old_minor


def _cheapest_offer(
    offers: list[ProviderOffer], currency: str
) -> tuple[ProviderOffer | None, int | None]:
    usable = [
        o for o in offers if o.stock > 0 and o.cost_minor is not None and o.currency == currency
    ]
    if not usable:
        return None, None
    best = min(usable, key=lambda o: (o.cost_minor or 0, o.id or 0))
    return best, best.cost_minor


def _fmt(minor: int, currency: str) -> str:
    return f"{money.to_decimal(minor, currency):.{money.exponent(currency)}f}"


def plan_price(
    product: Product,
    rule: PricingRule,
    offers: list[ProviderOffer],
    last_cost: int | None,
) -> PricePlan | None:
    """The price ``rule`` gives ``product`` (None: cost-plus without a usable offer)."""
    assert product.id is not None
    cur = product.currency
    if rule.mode == FIXED:
        new = rule.fixed_price_minor or 0
        return PricePlan(
            product.id, product.slug, cur, product.price_minor, new, rule.id,
            f"fixed price {_fmt(new, cur)} {cur} (rule #{rule.id})",
        )  # fmt: skip
    offer, cost = _cheapest_offer(offers, cur)
    if offer is None or cost is None:
        return None
    margin = rule.margin_bp or 0
    new = cost_plus_price(
        cost_minor=cost,
        margin_bp=margin,
        currency=cur,
        floor_minor=rule.floor_minor,
        ceiling_minor=rule.ceiling_minor,
        charm=rule.charm,
    )
    basis = f"{offer.provider} cost {_fmt(cost, cur)}"
    if last_cost is not None and last_cost != cost:
        basis = f"{offer.provider} cost {_fmt(last_cost, cur)} → {_fmt(cost, cur)}"
    notes = [f"{basis} {cur}", f"+{margin / 100:g} %"]
    raw = with_margin(cost, margin)
    if rule.floor_minor is not None and raw < rule.floor_minor and new >= rule.floor_minor:
        notes.append(f"floor {_fmt(rule.floor_minor, cur)}")
    if rule.ceiling_minor is not None and raw > rule.ceiling_minor:
        notes.append(f"ceiling {_fmt(rule.ceiling_minor, cur)}")
    if rule.charm and is_charm(new, cur):
        notes.append("charm")
    return PricePlan(
        product.id, product.slug, cur, product.price_minor, new, rule.id,
        f"{', '.join(notes)} (rule #{rule.id})", cost,
    )  # fmt: skip


def _last_costs(session: Session, product_ids: list[int]) -> dict[int, int]:
    if not product_ids:
        return {}
    latest: dict[int, int] = {}
    for pid, cost in session.exec(
        select(PriceChange.product_id, PriceChange.cost_minor)
        .where(col(PriceChange.product_id).in_(product_ids))
        .order_by(col(PriceChange.id))
    ):
        if cost is not None:
            latest[pid] = cost
    return latest


def plan_prices(*, session: Session, product_ids: list[int] | None = None) -> list[PricePlan]:
    """What the rules make of the prices of the products (all on sale by default)."""
    stmt = select(Product).where(col(Product.active))
    if product_ids is not None:
        stmt = stmt.where(col(Product.id).in_(product_ids))
    products = list(session.exec(stmt.order_by(col(Product.id))))
    all_rules = rules(session=session)
    if not products or not all_rules:
        return []
    ids = [p.id for p in products if p.id is not None]
    offers: dict[int, list[ProviderOffer]] = {}
    for offer in session.exec(select(ProviderOffer).where(col(ProviderOffer.product_id).in_(ids))):
        offers.setdefault(offer.product_id or 0, []).append(offer)
    last = _last_costs(session, ids)
    plans = []
    for product in products:
        rule = rule_for(product, all_rules)
        if rule is None:
            continue
        assert product.id is not None
        plan = plan_price(product, rule, offers.get(product.id, []), last.get(product.id))
        if plan is not None:
            plans.append(plan)
    return plans


def reprice(
    *, actor: Actor, product_ids: list[int] | None = None, dry_run: bool = False
) -> list[PricePlan]:
    """Apply the rules: each price that changes is recorded in ``price_changes`` with its
    reason and audited (``product.price``); every product a rule priced gets
    ``priced_at``. ``dry_run``: only return the plans. Returns the plans that change a
    price. Owns its transaction."""
    with session_scope() as session:
        plans = plan_prices(session=session, product_ids=product_ids)
        changed = [p for p in plans if p.changes]
        if dry_run:
            session.rollback()
            return changed
        now = utcnow()
        for plan in plans:
            product = session.get(Product, plan.product_id)
            assert product is not None
            product.priced_at = now
            if plan.changes:
                product.price_minor = plan.new_minor
                product.updated_at = now
                session.add(
                    PriceChange(
                        product_id=plan.product_id,
                        currency=plan.currency,
                        old_minor=plan.old_minor,
                        new_minor=plan.new_minor,
                        rule_id=plan.rule_id,
                        reason=plan.reason,
                        cost_minor=plan.cost_minor,
                        actor=str(actor),
                    )
                )
                record_audit(
                    session=session,
                    actor=actor,
                    action="product.price",
                    object_type="product",
                    object_id=plan.product_id,
                    data={
                        "slug": plan.slug,
                        "from": plan.old_minor,
                        "to": plan.new_minor,
                        "currency": plan.currency,
                        "reason": plan.reason,
                    },
                )
            session.add(product)
        check_margins(session=session, product_ids=product_ids)
        return changed


def price_history(*, session: Session, product_id: int, limit: int = 50) -> list[PriceChange]:
    return list(
        session.exec(
            select(PriceChange)
            .where(PriceChange.product_id == product_id)
            .order_by(col(PriceChange.id).desc())
            .limit(limit)
        )
    )


def check_margins(*, session: Session, product_ids: list[int] | None = None) -> int:
    """Raise a ``margin`` alert for each product whose price (fixed by a rule or by hand)
    no longer keeps the minimum margin (the rule's, else ``KEYSHOP_MIN_MARGIN_PERCENT``)
    over a mapped offer's cost in stock. Caller's transaction; returns how many."""
    default_bp = round(get_settings().min_margin_percent * 100)
    stmt = select(Product, ProviderOffer).join(
        ProviderOffer, col(ProviderOffer.product_id) == col(Product.id)
    )
    stmt = stmt.where(col(Product.active), ProviderOffer.stock > 0)
    if product_ids is not None:
        stmt = stmt.where(col(Product.id).in_(product_ids))
    all_rules = rules(session=session)
    raised = 0
    for product, offer in session.exec(stmt):
        if offer.cost_minor is None or offer.currency != product.currency:
            continue
        rule = rule_for(product, all_rules)
        if rule is not None and rule.mode == COST_PLUS:
            continue  # cost-plus follows the cost
        floor_bp = rule.min_margin_bp if rule and rule.min_margin_bp is not None else default_bp
        needed = with_margin(offer.cost_minor, floor_bp)
        if product.price_minor < needed:
            cur = product.currency
            raise_alert(
                session=session,
                kind=AlertKind.MARGIN,
                subject=f"margin:{product.slug}:{offer.provider}"[:120],
                message=(
                    f"{product.title}: {offer.provider} cost {_fmt(offer.cost_minor, cur)} {cur} "
                    f"leaves less than {floor_bp / 100:g} % on the price "
                    f"{_fmt(product.price_minor, cur)} {cur} (needs {_fmt(needed, cur)})"
                ),
            )
            raised += 1
    return raised


def cost_floors(*, session: Session, products: list[Product], currency: str) -> dict[int, int]:
    """Per product id, the lowest unit price in ``currency`` a discount may leave: the
    higher of the floor of the pricing rule that prices it (rules are in the product's
    own currency) and the cost of its cheapest mapped offer in stock priced in
    ``currency`` (what the shop would pay for the key). A product with neither has no
    floor (absent). Read-only, the caller's transaction."""
    ids = [p.id for p in products if p.id is not None]
    if not ids:
        return {}
    floors: dict[int, int] = {}
    for pid, cost in session.exec(
        select(ProviderOffer.product_id, ProviderOffer.cost_minor).where(
            col(ProviderOffer.product_id).in_(ids),
            ProviderOffer.stock > 0,
            col(ProviderOffer.cost_minor).is_not(None),
            ProviderOffer.currency == currency,
        )
    ):
        if pid is not None and cost is not None:
            floors[pid] = min(cost, floors.get(pid, cost))
    all_rules = rules(session=session)
    for product in products:
        if product.id is None or product.currency != currency:
            continue
        rule = rule_for(product, all_rules)
        if rule is not None and rule.floor_minor is not None:
            floors[product.id] = max(rule.floor_minor, floors.get(product.id, 0))
    return floors


def reprice_after_sync(*, provider: str) -> list[PricePlan]:
    """Reprice the products with offers at ``provider`` (the sync's last step)."""
    with session_scope(write=False) as session:
        ids = sorted(
            {
                pid
                for pid in session.exec(
                    select(ProviderOffer.product_id).where(
                        ProviderOffer.provider == provider,
                        col(ProviderOffer.product_id).is_not(None),
                    )
                )
                if pid is not None
            }
        )
    if not ids:
        return []
    return reprice(actor=Actor.system(f"sync:{provider}"), product_ids=ids)
