"""Inventory services: claims, release, delivery, revoke, faulty, manual assignment,
stock counts and small-volume adds. Concurrency is in ``test_concurrency.py``."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from core.crypto import KeyVault
from core.errors import (
    DuplicateKey,
    InsufficientStock,
    InvalidInput,
    InvalidKeyState,
    NotFound,
    UnknownProduct,
)
from core.models import AuditEvent, Key, KeyStatus, Product, ProviderPurchase, utcnow
from core.services import inventory
from core.services.audit import Actor
from tests.factories import make_keys, make_order, make_product, order_lines

OPERATOR = Actor.operator("alice")


def _line(session: Session, product: Product, quantity: int = 1) -> int:
    order = make_order(session, [(product, quantity)])
    line_id = order_lines(session, order)[0].id
    assert line_id is not None
    return line_id


def _status(session: Session, key_id: uuid.UUID) -> Key:
    key = session.get(Key, key_id, populate_existing=True)
    assert key is not None
    return key


def _count(session: Session, **where: object) -> int:
    query = select(func.count()).select_from(Key)
    for name, value in where.items():
        query = query.where(getattr(Key, name) == value)
    return int(session.connection().execute(query).scalar_one())


def _audit(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# -- claim_keys --------------------------------------------------------------------------


def test_claim_reserves_the_oldest_keys_for_the_line(session: Session) -> None:
    product = make_product(session)
    keys = sorted(make_keys(session, product, 5), key=lambda k: k.id)
    line = _line(session, product, 2)

    claimed = inventory.claim_keys(session=session, product_id=product.id, quantity=2, line_id=line)  # type: ignore[arg-type]
    session.commit()

    assert [c.id for c in claimed] == [keys[0].id, keys[1].id]
    assert all(c.order_line_id == line and c.status == KeyStatus.RESERVED for c in claimed)
    stored = claimed[0].load(session)
    assert stored.status == KeyStatus.RESERVED
    assert stored.order_line_id == line
    assert stored.reserved_at is not None
    assert _count(session, status=KeyStatus.AVAILABLE) == 3


def test_a_short_claim_raises_and_leaves_nothing_reserved(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 2)
    line = _line(session, product, 3)

    with pytest.raises(InsufficientStock) as caught:
        inventory.claim_keys(session=session, product_id=product.id, quantity=3, line_id=line)  # type: ignore[arg-type]
    # Even before the caller rolls back, the transaction holds no reservation.
    assert _count(session, status=KeyStatus.RESERVED) == 0
    assert caught.value.data["shortfalls"] == {product.id: 1}
    assert caught.value.data["details"] == [
        {"product_id": product.id, "requested": 3, "available": 2}
    ]
    session.commit()
    assert _count(session, status=KeyStatus.AVAILABLE) == 2


def test_a_partial_claim_takes_what_there_is_when_asked(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 2)
    line = _line(session, product, 3)
    claimed = inventory.claim_keys(
        session=session,
        product_id=product.id,  # type: ignore[arg-type]
        quantity=3,
        line_id=line,
        allow_partial=True,
    )
    assert len(claimed) == 2


def test_claim_refuses_a_line_of_another_product_or_a_missing_line(session: Session) -> None:
    product, other = make_product(session), make_product(session)
    make_keys(session, product, 2)
    other_line = _line(session, other)
    with pytest.raises(InvalidInput):
        inventory.claim_keys(session=session, product_id=product.id, quantity=1, line_id=other_line)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        inventory.claim_keys(session=session, product_id=product.id, quantity=1, line_id=999_999)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        inventory.claim_keys(session=session, product_id=product.id, quantity=0, line_id=other_line)  # type: ignore[arg-type]
    assert _count(session, status=KeyStatus.AVAILABLE) == 2


def test_claim_skips_keys_that_are_not_available(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 2, status=KeyStatus.FAULTY)
    good = make_keys(session, product, 1)
    line = _line(session, product)
    claimed = inventory.claim_keys(session=session, product_id=product.id, quantity=1, line_id=line)  # type: ignore[arg-type]
    assert [c.id for c in claimed] == [good[0].id]


def test_claim_for_lines_collects_every_shortfall_and_claims_nothing(session: Session) -> None:
    a, b, c = make_product(session), make_product(session), make_product(session)
    make_keys(session, a, 1)
    make_keys(session, b, 5)
    order = make_order(session, [(a, 2), (b, 2), (c, 1), (b, 2)])
    la, lb, lc, lb2 = (line.id for line in order_lines(session, order))

    with pytest.raises(InsufficientStock) as caught:
        inventory.claim_for_lines(
            session=session,
            requests=[(lc, c.id, 1), (la, a.id, 2), (lb, b.id, 2), (lb2, b.id, 2)],  # type: ignore[list-item]
        )
    assert caught.value.data["shortfalls"] == {a.id: 1, c.id: 1}
    assert _count(session, status=KeyStatus.RESERVED) == 0

    got = inventory.claim_for_lines(
        session=session,
        requests=[(lb, b.id, 2), (lb2, b.id, 2)],  # type: ignore[list-item]
    )
    assert {k: len(v) for k, v in got.items()} == {lb: 2, lb2: 2}
    all_ids = [k.id for v in got.values() for k in v]
    assert len(set(all_ids)) == 4


# -- release / deliver -------------------------------------------------------------------


def test_release_puts_reserved_keys_back(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 3)
    line = _line(session, product, 3)
    claimed = inventory.claim_keys(session=session, product_id=product.id, quantity=3, line_id=line)  # type: ignore[arg-type]

    assert inventory.release_keys(session=session, line_id=line, key_ids=[claimed[0].id]) == 1
    key = _status(session, claimed[0].id)
    assert (key.status, key.order_line_id, key.reserved_at) == (KeyStatus.AVAILABLE, None, None)

    with pytest.raises(InvalidKeyState):  # no longer reserved for the line
        inventory.release_keys(
            session=session, line_id=line, key_ids=[claimed[0].id, claimed[1].id]
        )
    assert _status(session, claimed[1].id).status == KeyStatus.RESERVED

    assert inventory.release_keys(session=session, line_id=line) == 2
    assert _count(session, status=KeyStatus.AVAILABLE) == 3


def test_mark_delivered_delivers_the_lines_reserved_keys(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 3)
    line = _line(session, product, 2)
    inventory.claim_keys(session=session, product_id=product.id, quantity=2, line_id=line)  # type: ignore[arg-type]

    delivered = inventory.mark_delivered(session=session, line_id=line)
    assert len(delivered) == 2
    assert all(k.status == KeyStatus.DELIVERED and k.delivered_at for k in delivered)
    assert inventory.mark_delivered(session=session, line_id=line) == []  # retry: harmless
    # Delivered keys are never released.
    assert inventory.release_keys(session=session, line_id=line) == 0


# -- revoke / faulty ---------------------------------------------------------------------


def _delivered_key(session: Session, **overrides: object) -> tuple[Key, int]:
    product = make_product(session)
    line = _line(session, product)
    key = make_keys(
        session,
        product,
        1,
        status=KeyStatus.DELIVERED,
        order_line_id=line,
        delivered_at=utcnow(),
        **overrides,
    )[0]
    return key, line


def test_an_unrevealed_stock_key_goes_back_to_stock(session: Session) -> None:
    key, line = _delivered_key(session)
    revoked = inventory.revoke_key(
        session=session, key_id=key.id, actor=OPERATOR, reason="refund", to_stock=True
    )
    assert (revoked.status, revoked.order_line_id, revoked.delivered_at) == (
        KeyStatus.AVAILABLE,
        None,
        None,
    )
    [event] = _audit(session, "key.revoke")
    assert event.object_id == str(key.id)
    assert event.actor_id == "alice"
    assert event.data["to_stock"] is True
    assert event.data["order_line_id"] == line


def test_a_revealed_key_is_revoked_but_never_returns_to_stock(session: Session) -> None:
    key, _line_id = _delivered_key(session, revealed_at=utcnow())
    with pytest.raises(InvalidKeyState):
        inventory.revoke_key(
            session=session, key_id=key.id, actor=OPERATOR, reason="refund", to_stock=True
        )
    revoked = inventory.revoke_key(
        session=session, key_id=key.id, actor=OPERATOR, reason="chargeback"
    )
    assert revoked.status == KeyStatus.REVOKED
    assert revoked.revoked_at is not None
    assert revoked.status_note == "chargeback"
    [event] = _audit(session, "key.revoke")
    assert event.data["revealed"] is True
    with pytest.raises(InvalidKeyState):  # not twice
        inventory.revoke_key(session=session, key_id=key.id, actor=OPERATOR, reason="again")


def test_a_key_bought_from_a_provider_does_not_go_to_stock(session: Session) -> None:
    product = make_product(session)
    line = _line(session, product)
    purchase = ProviderPurchase(
        order_line_id=line, provider="kinguin", reference=f"ref-{uuid.uuid4().hex}", quantity=1
    )
    session.add(purchase)
    session.commit()
    key = make_keys(
        session,
        product,
        1,
        status=KeyStatus.DELIVERED,
        order_line_id=line,
        provider_purchase_id=purchase.id,
    )[0]
    with pytest.raises(InvalidKeyState):
        inventory.revoke_key(
            session=session, key_id=key.id, actor=OPERATOR, reason="refund", to_stock=True
        )
    assert (
        inventory.revoke_key(session=session, key_id=key.id, actor=OPERATOR, reason="refund").status
        == KeyStatus.REVOKED
    )
    with pytest.raises(NotFound):
        inventory.revoke_key(session=session, key_id=uuid.uuid4(), actor=OPERATOR, reason="x")


def test_mark_faulty_quarantines_and_audits(session: Session) -> None:
    key, line = _delivered_key(session)
    faulty = inventory.mark_faulty(session=session, key_id=key.id, actor=OPERATOR, reason="used")
    assert faulty.status == KeyStatus.FAULTY
    assert faulty.order_line_id == line  # kept for the replacement and the supplier claim
    [event] = _audit(session, "key.faulty")
    assert event.data == {"reason": "used", "from_status": "delivered", "order_line_id": line}
    with pytest.raises(InvalidKeyState):
        inventory.mark_faulty(session=session, key_id=key.id, actor=OPERATOR, reason="used")
    with pytest.raises(InvalidKeyState):
        inventory.revoke_key(session=session, key_id=key.id, actor=OPERATOR, reason="x")


# -- manual assignment -------------------------------------------------------------------


def test_an_operator_assigns_an_available_key(session: Session) -> None:
    product = make_product(session)
    key = make_keys(session, product, 1)[0]
    line = _line(session, product)
    assigned = inventory.assign_key_manually(
        session=session, key_id=key.id, line_id=line, actor=OPERATOR
    )
    assert (assigned.status, assigned.order_line_id) == (KeyStatus.DELIVERED, line)
    assert assigned.delivered_at is not None
    [event] = _audit(session, "key.assign")
    assert event.data["order_line_id"] == line
    assert event.actor_type == "operator"


def test_manual_assignment_refusals(session: Session) -> None:
    product, other = make_product(session), make_product(session)
    keys = make_keys(session, product, 2)
    other_key = make_keys(session, other, 1)[0]
    faulty = make_keys(session, product, 1, status=KeyStatus.FAULTY)[0]
    line = _line(session, product)

    with pytest.raises(InvalidKeyState):
        inventory.assign_key_manually(
            session=session, key_id=faulty.id, line_id=line, actor=OPERATOR
        )
    with pytest.raises(InvalidInput):
        inventory.assign_key_manually(
            session=session, key_id=other_key.id, line_id=line, actor=OPERATOR
        )
    with pytest.raises(NotFound):
        inventory.assign_key_manually(
            session=session, key_id=keys[0].id, line_id=999_999, actor=OPERATOR
        )
    inventory.assign_key_manually(session=session, key_id=keys[0].id, line_id=line, actor=OPERATOR)
    with pytest.raises(InvalidKeyState):  # the line (quantity 1) is full
        inventory.assign_key_manually(
            session=session, key_id=keys[1].id, line_id=line, actor=OPERATOR
        )
    assert len(_audit(session, "key.assign")) == 1


# -- stock -------------------------------------------------------------------------------


def test_stock_counts_group_by_product_and_status(session: Session) -> None:
    a, b, empty = make_product(session), make_product(session), make_product(session)
    make_keys(session, a, 3)
    make_keys(session, a, 2, status=KeyStatus.DELIVERED)
    make_keys(session, a, 1, status=KeyStatus.FAULTY)
    make_keys(session, b, 1, status=KeyStatus.REVOKED)

    counts = inventory.stock_counts(session=session)
    assert counts[a.id] == inventory.StockCount(available=3, delivered=2, faulty=1)  # type: ignore[index]
    assert counts[a.id].total == 6  # type: ignore[index]
    assert counts[b.id] == inventory.StockCount(revoked=1)  # type: ignore[index]
    assert empty.id not in counts
    only = inventory.stock_counts(session=session, product_ids=[b.id, empty.id])  # type: ignore[list-item]
    assert only == {b.id: inventory.StockCount(revoked=1), empty.id: inventory.StockCount()}


def test_low_stock_lists_active_products_under_their_threshold(session: Session) -> None:
    low = make_product(session, low_stock_threshold=5)
    fine = make_product(session, low_stock_threshold=2)
    empty = make_product(session, low_stock_threshold=1)
    make_product(session, low_stock_threshold=0)  # no threshold: never low
    make_product(session, low_stock_threshold=5, active=False)  # inactive: not listed
    make_keys(session, low, 4)
    make_keys(session, low, 3, status=KeyStatus.DELIVERED)  # sold keys do not count
    make_keys(session, fine, 2)

    result = inventory.low_stock_products(session=session)
    assert [(r.product_id, r.available, r.threshold) for r in result] == [
        (empty.id, 0, 1),
        (low.id, 4, 5),
    ]
    assert result[1].slug == low.slug and result[1].title == low.title


# -- add_keys ----------------------------------------------------------------------------


def test_add_keys_encrypts_and_fingerprints(session: Session, vault: KeyVault) -> None:
    product = make_product(session)
    added = inventory.add_keys(
        session=session,
        product_id=product.id,  # type: ignore[arg-type]
        codes=["AAAAA-BBBBB-CCCCC", " DDDDD-EEEEE-FFFFF "],
        supplier="Acme",
        cost_minor=450,
        cost_currency="eur",
    )
    session.commit()
    assert len(added) == 2
    stored = _status(session, added[1].id)
    plain = vault.decrypt(stored.ciphertext, key_version=stored.key_version, row_id=stored.id)
    assert plain == b"DDDDD-EEEEE-FFFFF"
    assert (stored.supplier, stored.cost_minor, stored.cost_currency) == ("Acme", 450, "EUR")
    assert stored.status == KeyStatus.AVAILABLE
    assert stored.fingerprint == vault.fingerprint("dddddeeeeefffff")


def test_add_keys_refuses_duplicates_without_naming_the_code(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 1, codes=["SECRET-CODE-00001"])
    with pytest.raises(DuplicateKey) as in_stock:
        inventory.add_keys(
            session=session,
            product_id=product.id,  # type: ignore[arg-type]
            codes=["NEW-CODE-00002", "secret code 00001"],
        )
    assert in_stock.value.data["positions"] == [1]
    with pytest.raises(DuplicateKey) as twice:
        inventory.add_keys(
            session=session,
            product_id=product.id,  # type: ignore[arg-type]
            codes=["X-1-Y", "x1y"],
        )
    assert twice.value.data["positions"] == [1]
    for err in (in_stock.value, twice.value):
        text = str(err) + repr(err.to_dict())
        assert "SECRET" not in text.upper() and "X1Y" not in text.upper()
    assert _count(session) == 1  # nothing added


def test_add_keys_validates_input(session: Session) -> None:
    product = make_product(session)
    with pytest.raises(UnknownProduct):
        inventory.add_keys(session=session, product_id=999_999, codes=["A"])
    with pytest.raises(InvalidInput):
        inventory.add_keys(session=session, product_id=product.id, codes=["  "])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        inventory.add_keys(session=session, product_id=product.id, codes=["A" * 10_000])  # type: ignore[arg-type]
