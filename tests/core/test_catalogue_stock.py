"""The stock summary ``products.in_stock`` the catalogue filters on: every path that moves
a key to or from ``available`` or changes a provider's stock keeps it right, in the same
transaction, on SQLite and PostgreSQL; and the store search reads it in one statement."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.models import KeyStatus, Product, ProviderOffer
from core.services import catalogue, inventory, provider_sync
from core.services.audit import Actor
from core.services.catalogue import refresh_stock_flags, search_products
from core.services.importer import import_keys
from tests.factories import fresh, make_keys, make_order, make_product, order_lines
from tests.support.pg import backend_pid, wait_for_lock_wait

OPERATOR = Actor.operator("alice")


def flag(session: Session, product: Product) -> bool:
    fresh(session)
    value = session.connection().execute(
        text("SELECT in_stock FROM products WHERE id = :id"), {"id": product.id}
    )
    return bool(value.scalar_one())


def listed_in_stock(session: Session) -> set[str]:
    fresh(session)
    page = search_products(session=session, in_stock=True, per_page=100)
    return {hit.slug for hit in page.items}


def claim(session: Session, product: Product, quantity: int = 1) -> list[uuid.UUID]:
    order = make_order(session, [(product, quantity)])
    [line] = order_lines(session, order)
    assert line.id is not None and product.id is not None
    keys = inventory.claim_keys(
        session=session, product_id=product.id, quantity=quantity, line_id=line.id
    )
    return [k.id for k in keys]


def test_a_new_product_is_not_in_stock_and_its_first_keys_put_it_there(session: Session) -> None:
    product = make_product(session, slug="hollow-tide")
    assert not flag(session, product)
    assert product.id is not None
    inventory.add_keys(session=session, product_id=product.id, codes=["AAAA-1111", "BBBB-2222"])
    session.commit()
    assert flag(session, product)
    assert listed_in_stock(session) == {"hollow-tide"}


def test_a_sold_out_product_leaves_the_listing_at_the_next_claim_or_refresh(
    session: Session,
) -> None:
    """Claims are the hot path and are not followed by a check: the claim that takes the
    last key leaves the flag as it was. The hit shows the truth meanwhile (its figures
    are read fresh); the next claim that finds no key, or refresh_stock_flags (run
    periodically), takes the product out of the listing."""
    product = make_product(session, slug="last-one")
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    assert line.id is not None and product.id is not None
    inventory.claim_keys(session=session, product_id=product.id, quantity=1, line_id=line.id)
    inventory.deliver_lines(session=session, line_ids=[line.id])
    session.commit()
    fresh(session)
    [hit] = search_products(session=session, in_stock=True).items
    assert (hit.slug, hit.available, hit.in_stock) == ("last-one", 0, False)
    # The next buyer's claim finds nothing (fulfilment then buys from a provider).
    other = make_order(session, [(product, 1)])
    [other_line] = order_lines(session, other)
    assert other_line.id is not None
    assert (
        inventory.claim_keys(
            session=session,
            product_id=product.id,
            quantity=1,
            line_id=other_line.id,
            allow_partial=True,
        )
        == []
    )
    session.commit()
    assert listed_in_stock(session) == set()
    assert search_products(session=session, in_stock=False).total == 1

    # The same through the periodic refresh.
    make_keys(session, product, 1)
    assert flag(session, product)
    claim(session, product)
    session.commit()
    assert flag(session, product)
    assert refresh_stock_flags(session=session) == 1
    session.commit()
    assert listed_in_stock(session) == set()


def test_a_released_claim_is_listed_again(session: Session) -> None:
    product = make_product(session, slug="released")
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    assert line.id is not None and product.id is not None
    inventory.claim_keys(session=session, product_id=product.id, quantity=1, line_id=line.id)
    session.commit()
    refresh_stock_flags(session=session)
    session.commit()
    assert listed_in_stock(session) == set()
    inventory.release_keys(session=session, line_id=line.id)  # fulfilment gave it back
    session.commit()
    assert listed_in_stock(session) == {"released"}


def test_a_rolled_back_claim_leaves_the_flag_as_it_was(session: Session) -> None:
    product = make_product(session)
    make_keys(session, product, 1)
    claim(session, product)
    session.rollback()
    assert flag(session, product)
    session.commit()  # nothing left over from the rolled-back transaction
    assert flag(session, product)


def test_revoke_to_stock_faulty_and_manual_assignment(session: Session) -> None:
    product = make_product(session)
    keys = make_keys(session, product, 2)
    [first, second] = sorted(k.id for k in keys)
    taken = claim(session, product)
    assert taken == [first]
    order = make_order(session, [(product, 1)])
    [line] = order_lines(session, order)
    assert line.id is not None
    # The operator hands the last available key to another order: none left.
    inventory.assign_key_manually(session=session, key_id=second, line_id=line.id, actor=OPERATOR)
    session.commit()
    assert not flag(session, product)
    # Refunded before it was revealed: the key goes back to stock.
    inventory.revoke_key(
        session=session, key_id=second, actor=OPERATOR, reason="refund", to_stock=True
    )
    session.commit()
    assert flag(session, product)
    # That available key turns out to be faulty: nothing sellable again.
    inventory.mark_faulty(session=session, key_id=second, actor=OPERATOR, reason="bad code")
    session.commit()
    assert not flag(session, product)


def test_provider_stock_counts_and_follows_the_offer(session: Session) -> None:
    first = make_product(session, slug="first")
    second = make_product(session, slug="second")
    offer = ProviderOffer(provider="kinguin", external_id="k-9", product_id=first.id, stock=0)
    session.add(offer)
    session.commit()
    assert listed_in_stock(session) == set()
    provider_sync.apply_stock_change(
        session=session, provider="kinguin", external_id="k-9", stock=12
    )
    session.commit()
    assert listed_in_stock(session) == {"first"}
    # The offer is mapped to the other product: stock moves with it.
    offer.product_id = second.id
    session.add(offer)
    session.commit()
    assert listed_in_stock(session) == {"second"}
    provider_sync.apply_stock_change(
        session=session, provider="kinguin", external_id="k-9", stock=0
    )
    session.commit()
    assert listed_in_stock(session) == set()
    assert (flag(session, first), flag(session, second)) == (False, False)


def test_imported_keys_are_listed_at_once(engine: Engine, session: Session, tmp_path: Path) -> None:
    product = make_product(session, slug="imported")
    other = make_product(session, slug="by-csv")
    txt = tmp_path / "keys.txt"
    txt.write_text("".join(f"IMPORT-{n:04d}-KEY\n" for n in range(30)))
    report = import_keys(
        path=txt, product_slug="imported", operator="alice", batch_size=10, engine=engine
    )
    assert report.imported == 30
    assert flag(session, product) and not flag(session, other)
    csv = tmp_path / "keys.csv"
    csv.write_text("key,product\nCSV-0001-KEY,by-csv\nCSV-0002-KEY,imported\n")
    import_keys(path=csv, product_slug=None, operator="alice", engine=engine)
    assert listed_in_stock(session) == {"imported", "by-csv"}


def test_refresh_repairs_every_wrong_flag_and_then_has_nothing_to_do(session: Session) -> None:
    stocked = make_product(session)
    empty = make_product(session)
    make_keys(session, stocked, 1)
    session.connection().execute(
        text("UPDATE products SET in_stock = NOT in_stock")  # both wrong now
    )
    session.commit()
    assert (flag(session, stocked), flag(session, empty)) == (False, True)
    assert refresh_stock_flags(session=session) == 2
    session.commit()
    assert (flag(session, stocked), flag(session, empty)) == (True, False)
    assert refresh_stock_flags(session=session) == 0


@pytest.mark.postgres_only
def test_the_last_two_keys_reported_faulty_at_once_leave_it_out_of_stock(
    engine: Engine,
) -> None:
    """Each transaction refreshes the flag just before it commits; without the row lock
    both would still see the other's key available and the product would stay listed."""
    with Session(engine, expire_on_commit=False) as setup:
        product = make_product(setup)
        keys = [k.id for k in make_keys(setup, product, 2)]
    assert product.id is not None
    first, second = Session(engine), Session(engine)
    try:
        for session, key_id in zip((first, second), keys, strict=True):
            inventory.mark_faulty(session=session, key_id=key_id, actor=OPERATOR, reason="bad")
            session.flush()
        # The first operator's refresh has run (it holds the product's row) but has not
        # committed when the second commits.
        refresh_stock_flags(session=first, product_ids=[product.id])
        errors: list[BaseException] = []
        second_pid = backend_pid(second)

        def commit_second() -> None:
            try:
                second.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        worker = threading.Thread(target=commit_second)
        worker.start()
        # its refresh waits for the first transaction's lock
        wait_for_lock_wait(engine, pid=second_pid, gave_up=lambda: not worker.is_alive())
        first.commit()
        worker.join(10)
        assert not worker.is_alive() and not errors
    finally:
        first.close()
        second.close()
    with Session(engine) as check:
        assert not flag(check, product)
        assert search_products(session=check, in_stock=True).total == 0


@pytest.mark.postgres_only
def test_keys_added_while_the_last_one_is_withdrawn_keep_it_listed(engine: Engine) -> None:
    """A refresh that clears the flag and one that adds stock, side by side: the one
    that commits last sees the other's keys."""
    with Session(engine, expire_on_commit=False) as setup:
        product = make_product(setup)
        [last] = [k.id for k in make_keys(setup, product, 1)]
    assert product.id is not None
    withdraw, restock = Session(engine), Session(engine)
    try:
        inventory.mark_faulty(session=withdraw, key_id=last, actor=OPERATOR, reason="bad")
        refresh_stock_flags(session=withdraw, product_ids=[product.id])  # sees none left
        inventory.add_keys(session=restock, product_id=product.id, codes=["NEW-0001-KEY"])
        restock_pid = backend_pid(restock)
        worker = threading.Thread(target=restock.commit)
        worker.start()
        wait_for_lock_wait(engine, pid=restock_pid, gave_up=lambda: not worker.is_alive())
        withdraw.commit()
        worker.join(10)
        assert not worker.is_alive()
    finally:
        withdraw.close()
        restock.close()
    with Session(engine) as check:
        assert flag(check, product)


def test_search_is_one_statement_and_counts_only_for_a_full_page(
    engine: Engine, session: Session
) -> None:
    for n in range(7):
        make_product(session, slug=f"game-{n}", title=f"Ember Saga {n}", price_minor=100 + n)
    fresh(session)
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        short = search_products(session=session, sort="price_asc", per_page=10)
        full = search_products(session=session, sort="price_asc", per_page=3)
        last = search_products(session=session, sort="price_asc", per_page=3, page=3)
        past = search_products(session=session, sort="price_asc", per_page=3, page=4)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 4
    assert (short.total, short.pages, len(short.items), short.has_next) == (7, 1, 7, False)
    assert (full.total, full.pages, len(full.items), full.has_next) == (7, 3, 3, True)
    assert [h.slug for h in last.items] == ["game-6"] and (last.total, last.has_next) == (7, False)
    assert (past.items, past.total, past.pages) == ([], 7, 3)
    assert all(s.total_is_exact for s in (short, full, last, past))


def test_listed_figures_are_read_fresh_from_the_keys(session: Session) -> None:
    product = make_product(session, slug="fresh", low_stock_threshold=3)
    make_keys(session, product, 3)
    make_keys(session, product, 2, status=KeyStatus.DELIVERED)
    session.add(
        ProviderOffer(provider="kinguin", external_id="k-1", product_id=product.id, stock=4)
    )
    session.add(
        ProviderOffer(provider="codeswholesale", external_id="c-1", product_id=product.id, stock=0)
    )
    session.commit()
    claim(session, product)
    session.commit()
    fresh(session)
    [hit] = search_products(session=session, in_stock=True).items
    assert (hit.available, hit.provider_stock, hit.in_stock, hit.low_stock) == (2, 4, True, True)
    assert catalogue.available_counts(session=session, product_ids=[hit.id]) == {hit.id: 2}
