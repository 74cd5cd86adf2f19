"""Factories: build domain rows with sensible defaults; override any field."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from sqlmodel import Session

from core import crypto
from core.models import Key, KeyStatus, Order, OrderLine, OrderStatus, Product, new_uuid

_seq = itertools.count(1)


def make_product(session: Session, **overrides: Any) -> Product:
    n = next(_seq)
    fields: dict[str, Any] = {
        "slug": f"test-game-{n}",
        "title": f"Test Game {n}",
        "platform": "Steam",
        "region": "GLOBAL",
        "genre": "Action",
        "price_minor": 1999,
        "currency": "EUR",
        "low_stock_threshold": 5,
    }
    fields.update(overrides)
    product = Product(**fields)
    session.add(product)
    session.commit()
    return product


def random_code() -> str:
    return "-".join(secrets.token_hex(3).upper()[:5] for _ in range(3))


def make_keys(
    session: Session,
    product: Product,
    count: int,
    *,
    codes: list[str] | None = None,
    **overrides: Any,
) -> list[Key]:
    """Available keys in stock for ``product``, encrypted like the importer does."""
    vault = crypto.get_vault()
    rows = []
    for code in codes or [random_code() for _ in range(count)]:
        row_id = new_uuid()
        version, blob = vault.encrypt(code.encode(), row_id=row_id)
        rows.append(
            Key(
                id=row_id,
                product_id=product.id,
                ciphertext=blob,
                key_version=version,
                fingerprint=vault.fingerprint(code),
                status=overrides.get("status", KeyStatus.AVAILABLE),
                **{k: v for k, v in overrides.items() if k != "status"},
            )
        )
    session.add_all(rows)
    session.commit()
    return rows


def make_order(
    session: Session,
    lines: list[tuple[Product, int]],
    *,
    status: str = OrderStatus.PAID,
    email: str = "buyer@example.com",
    **overrides: Any,
) -> Order:
    """An order (default: already paid) with one line per (product, quantity)."""
    currency = lines[0][0].currency if lines else "EUR"
    total = sum(p.price_minor * q for p, q in lines)
    order = Order(
        number=overrides.pop("number", f"T{secrets.token_hex(6).upper()}"),
        email=email,
        status=status,
        currency=currency,
        subtotal_minor=total,
        total_minor=total,
        **overrides,
    )
    session.add(order)
    session.flush()
    for product, qty in lines:
        session.add(
            OrderLine(
                order_id=order.id,
                product_id=product.id,
                title=product.title,
                platform=product.platform,
                region=product.region,
                unit_price_minor=product.price_minor,
                currency=product.currency,
                quantity=qty,
            )
        )
    session.commit()
    return order


def order_lines(session: Session, order: Order) -> list[OrderLine]:
    from sqlmodel import select

    return list(
        session.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.id))
    )


def fresh(session: Session) -> Session:
    """End the session's transaction and forget what it loaded, so the next read sees
    what other transactions committed (SQLite WAL keeps a reader on its old snapshot)."""
    session.rollback()
    session.expire_all()
    return session
