"""Paying with gift cards and store credit (issue #18 part 6): wholly or with a card for
exactly the rest; cancelled orders give the balances back; refunds return each part to
where it came from (or all to store credit), once, however often the webhook comes."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import func
from sqlmodel import select

from core.db import session_scope
from core.errors import InvalidInput
from core.models import Customer, LedgerAccount, LedgerEntry, LedgerMovement, Order, OrderStatus
from core.services import credit, giftcards, locking
from core.services.audit import Actor
from core.services.checkout import CartLine, CartRejected, pay_test_order, place_order
from core.services.operator import refund_order
from core.services.orders import transition_order
from core.services.test_payments import send_test_event
from core.services.webhooks import process_webhook
from tests.factories import fresh, make_keys, make_product
from tests.support.stripe import stripe_configured

OPERATOR = Actor.operator("alice")


@pytest.fixture
def shop(session):
    game = make_product(session, title="Starfall", price_minor=1500)
    make_keys(session, game, 40)
    customer = Customer(email="ana@example.com")
    session.add(customer)
    session.commit()
    return SimpleNamespace(game=game, customer=customer.id)


def give_credit(customer_id: int, amount: int) -> None:
    with session_scope() as session:
        credit.adjust_customer_credit(
            session=session,
            customer_id=customer_id,
            amount_minor=amount,
            currency="EUR",
            actor=OPERATOR,
            note="welcome",
            idempotency_key=f"test:{customer_id}:{amount}",
        )


def gift_card(amount: int, currency: str = "EUR") -> giftcards.Issued:
    with session_scope() as session:
        return giftcards.issue(
            session=session, amount_minor=amount, currency=currency, actor=OPERATOR
        )


def card_balance(issued: giftcards.Issued) -> int:
    return giftcards.check_balance(code=issued.code, ip=None).balance_minor


def credit_of(customer_id: int) -> int:
    with session_scope(write=False) as session:
        return credit.customer_balances(session, customer_id=customer_id).get("EUR", 0)


def ledger_sums_to_zero() -> bool:
    with session_scope(write=False) as session:
        rows = session.exec(
            select(LedgerAccount.currency, func.sum(LedgerEntry.amount_minor))
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .group_by(LedgerAccount.currency)
        ).all()
    return all(total == 0 for _, total in rows)


def run_webhooks(queued_jobs) -> list[str]:
    outcomes = [
        process_webhook(webhook_id=a[0]) for n, a, _ in queued_jobs if n == "process_webhook"
    ]
    queued_jobs.clear()
    return outcomes


def status(session, number: str) -> str:
    return fresh(session).exec(select(Order.status).where(Order.number == number)).one()


def test_an_order_credit_covers_is_paid_at_once_without_a_card(session, shop, queued_jobs):
    give_credit(shop.customer, 5000)
    result = place_order(
        email="ana@example.com",
        lines=[CartLine(shop.game.slug, 2)],
        customer_id=shop.customer,
        use_credit=True,
    )
    assert result.payment_url == result.order_url and result.paid_from_balances_minor == 3000
    assert status(session, result.number) == OrderStatus.PAID
    order = fresh(session).exec(select(Order).where(Order.number == result.number)).one()
    assert order.payment_provider == "balances"
    assert ("fulfil_order", (order.id,)) in [(n, a) for n, a, _ in queued_jobs]
    assert credit_of(shop.customer) == 2000
    assert ledger_sums_to_zero()


def test_gift_cards_then_credit_then_card_for_exactly_the_rest(session, shop, queued_jobs):
    first, second = gift_card(1000), gift_card(700)
    give_credit(shop.customer, 800)
    result = place_order(
        email="ana@example.com",
        lines=[CartLine(shop.game.slug, 3)],  # 4500
        customer_id=shop.customer,
        gift_cards=[second.code, first.code.lower()],
        use_credit=True,
    )
    assert result.paid_from_balances_minor == 2500 and result.test_payment
    assert (card_balance(first), card_balance(second), credit_of(shop.customer)) == (0, 0, 0)
    assert status(session, result.number) == OrderStatus.PENDING_PAYMENT
    pay_test_order(number=result.number, access_token=result.access_token)
    # the test payment pays 2000: the order is paid, not sent to attention for a mismatch
    assert run_webhooks(queued_jobs) == [f"order {result.number} paid"]
    # the same payment reported again (a replayed webhook) moves no credit
    send_test_event(order_number=result.number)
    assert run_webhooks(queued_jobs) == [f"order {result.number} already paid"]
    assert (card_balance(first), card_balance(second), credit_of(shop.customer)) == (0, 0, 0)
    with session_scope(write=False) as s:
        tenders = credit.order_tenders(
            s,
            order_id=fresh(session)
            .exec(select(Order.id).where(Order.number == result.number))
            .one(),
        )
    assert [(t.kind, t.amount_minor) for t in tenders] == [
        ("gift_card", 700),
        ("gift_card", 1000),
        ("customer", 800),
    ]


def test_a_gift_card_pays_part_and_stripe_is_asked_for_exactly_the_rest(
    session, shop, test_settings, monkeypatch
):
    issued = gift_card(1000)
    with stripe_configured(test_settings, monkeypatch) as fake:
        result = place_order(
            email="b@example.com", lines=[CartLine(shop.game.slug, 2)], gift_cards=[issued.code]
        )
    [call] = fake.requests
    form = call["form"]
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == "2000"
    assert "line_items[1][quantity]" not in form
    assert result.total_minor == 3000 and card_balance(issued) == 0


def test_a_card_pays_partly_when_its_balance_is_less_and_wholly_when_more(session, shop):
    big = gift_card(5000)
    result = place_order(
        email="b@example.com", lines=[CartLine(shop.game.slug, 1)], gift_cards=[big.code]
    )
    assert result.paid_from_balances_minor == 1500 and card_balance(big) == 3500
    assert status(session, result.number) == OrderStatus.PAID


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"use_credit": True}, "sign in to pay with store credit"),
        ({"gift_cards": ["GC-00000-00000-00000-00000-0"]}, "no gift card has that code"),
        ({"gift_cards": ["not a code"]}, "not a gift card code"),
        ({"gift_cards": "GC-1"}, "list of codes"),
    ],
)
def test_bad_tenders_are_refused_and_nothing_is_written(session, shop, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        place_order(email="b@example.com", lines=[CartLine(shop.game.slug, 1)], **kwargs)
    assert fresh(session).exec(select(func.count()).select_from(Order)).one() == 0


def test_empty_void_and_other_currency_cards_are_refused(session, shop):
    usd, empty, voided = gift_card(1000, "USD"), gift_card(100), gift_card(100)
    with session_scope() as s:
        giftcards.adjust(
            session=s,
            gift_card_id=empty.gift_card_id,
            amount_minor=-100,
            actor=OPERATOR,
            note="spent",
            idempotency_key="e",
        )
        giftcards.void(session=s, gift_card_id=voided.gift_card_id, actor=OPERATOR, note="fraud")
    for issued, message in (
        (usd, "is in USD"),
        (empty, "no balance left"),
        (voided, "no longer valid"),
    ):
        with pytest.raises(InvalidInput, match=message):
            place_order(
                email="b@example.com", lines=[CartLine(shop.game.slug, 1)], gift_cards=[issued.code]
            )
    assert fresh(session).exec(select(func.count()).select_from(Order)).one() == 0
    assert card_balance(usd) == 1000


def test_a_rest_to_pay_with_crypto_is_refused(session, shop):
    issued = gift_card(500)
    with pytest.raises(InvalidInput, match="card payment only"):
        place_order(
            email="b@example.com",
            lines=[CartLine(shop.game.slug, 1)],
            gift_cards=[issued.code],
            payment_method="crypto",
        )
    assert card_balance(issued) == 500
    assert fresh(session).exec(select(func.count()).select_from(Order)).one() == 0


def test_a_cancelled_order_gives_gift_cards_and_credit_back_once(session, shop):
    issued = gift_card(1000)
    give_credit(shop.customer, 300)
    result = place_order(
        email="ana@example.com",
        lines=[CartLine(shop.game.slug, 2)],
        customer_id=shop.customer,
        gift_cards=[issued.code],
        use_credit=True,
    )
    assert (card_balance(issued), credit_of(shop.customer)) == (0, 0)
    order_id = fresh(session).exec(select(Order.id).where(Order.number == result.number)).one()
    with session_scope() as s:
        transition_order(
            session=s,
            order_id=order_id,
            to_status="cancelled",
            actor=Actor.system("expiry"),
            reason="unpaid",
        )
        order = s.get(Order, order_id)
        # asking again moves nothing (one return per part, whatever path asks)
        assert (
            credit.return_order_tenders(
                session=s, order=order, reason=credit.Reason.ORDER_RELEASE, actor=OPERATOR
            )
            == 0
        )
    assert (card_balance(issued), credit_of(shop.customer)) == (1000, 300)
    assert ledger_sums_to_zero()


def _paid_with_card_and_balances(session, shop, queued_jobs):
    issued = gift_card(1000)
    give_credit(shop.customer, 500)
    result = place_order(
        email="ana@example.com",
        lines=[CartLine(shop.game.slug, 2)],  # 3000: 1000 card, 500 credit, 1500 card
        customer_id=shop.customer,
        gift_cards=[issued.code],
        use_credit=True,
    )
    pay_test_order(number=result.number, access_token=result.access_token)
    assert run_webhooks(queued_jobs) == [f"order {result.number} paid"]
    order_id = fresh(session).exec(select(Order.id).where(Order.number == result.number)).one()
    return issued, result, order_id


def test_a_refund_to_source_returns_each_part_once_however_often_the_webhook_comes(
    session, shop, queued_jobs
):
    issued, result, order_id = _paid_with_card_and_balances(session, shop, queued_jobs)
    outcome = refund_order(order_id=order_id, actor=OPERATOR, reason="customer asked")
    assert "test payments" in outcome
    assert run_webhooks(queued_jobs)[0].startswith(f"order {result.number} refunded")
    assert (card_balance(issued), credit_of(shop.customer)) == (1000, 500)
    # the same refund reported again (a new event id, as a retried Stripe delivery of a
    # second event would be) moves nothing
    send_test_event(order_number=result.number, kind="charge.refunded")
    assert run_webhooks(queued_jobs) == [f"order {result.number} already refunded"]
    with session_scope() as s:
        order = s.get(Order, order_id)
        credit.return_order_tenders(
            session=s, order=order, reason=credit.Reason.REFUND, actor=OPERATOR
        )
    assert (card_balance(issued), credit_of(shop.customer)) == (1000, 500)
    assert ledger_sums_to_zero()


def test_a_refund_to_store_credit_credits_the_whole_order_without_the_card(
    session, shop, queued_jobs
):
    issued, result, order_id = _paid_with_card_and_balances(session, shop, queued_jobs)
    outcome = refund_order(order_id=order_id, actor=OPERATOR, reason="Kinguin style", to="credit")
    assert f"order {result.number} refunded" in outcome
    assert run_webhooks(queued_jobs) == []  # no card refund asked for
    assert card_balance(issued) == 0 and credit_of(shop.customer) == 3000
    with session_scope(write=False) as s:
        reasons = s.exec(
            select(LedgerMovement.reason, LedgerMovement.amount_minor)
            .where(LedgerMovement.order_id == order_id, LedgerMovement.reason == "refund_to_credit")
            .order_by(LedgerMovement.id)
        ).all()
    assert reasons == [
        ("refund_to_credit", 1000),
        ("refund_to_credit", 500),
        ("refund_to_credit", 1500),
    ]
    with pytest.raises(InvalidInput):  # already refunded
        refund_order(order_id=order_id, actor=OPERATOR, reason="again", to="credit")
    assert credit_of(shop.customer) == 3000 and ledger_sums_to_zero()


def test_a_refund_to_store_credit_leaves_out_what_a_partial_refund_gave_back(
    session, shop, queued_jobs
):
    """6.00 of the card's 15.00 went back to the card already (a partial refund in
    Stripe): store credit gets the gift card's and the credit's parts and the card's
    remaining 9.00, never the 6.00 a second time."""
    issued, _result, order_id = _paid_with_card_and_balances(session, shop, queued_jobs)
    with session_scope() as s:
        assert locking.raise_refunded(s, order_id, 600)
    refund_order(order_id=order_id, actor=OPERATOR, reason="rest to credit", to="credit")
    assert card_balance(issued) == 0 and credit_of(shop.customer) == 2400
    assert ledger_sums_to_zero()


def test_a_guest_order_cannot_be_refunded_to_credit(session, shop, queued_jobs):
    issued = gift_card(5000)
    result = place_order(
        email="guest@example.com", lines=[CartLine(shop.game.slug, 1)], gift_cards=[issued.code]
    )
    order_id = fresh(session).exec(select(Order.id).where(Order.number == result.number)).one()
    with pytest.raises(InvalidInput, match="guest"):
        refund_order(order_id=order_id, actor=OPERATOR, reason="x", to="credit")
    # wholly paid by a gift card: refunded to source at once, back onto the card
    assert "refunded" in refund_order(order_id=order_id, actor=OPERATOR, reason="asked")
    assert card_balance(issued) == 5000 and status(session, result.number) == OrderStatus.REFUNDED


def test_sixteen_concurrent_checkouts_never_overspend_a_gift_card(session, shop):
    """Balance 4000, 16 checkouts of 1500 each at once: the card pays 1500, 1500, 1000
    and then is empty; the rest are refused (no balance left) or pay nothing from it.
    On PostgreSQL the card's account row lock serialises them."""
    issued = gift_card(4000)
    barrier = threading.Barrier(16)
    results: list[object] = []

    def buy() -> None:
        barrier.wait()
        try:
            results.append(
                place_order(
                    email="b@example.com",
                    lines=[CartLine(shop.game.slug, 1)],
                    gift_cards=[issued.code],
                )
            )
        except (InvalidInput, CartRejected) as exc:
            results.append(exc)

    threads = [threading.Thread(target=buy) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = sum(
        r.paid_from_balances_minor for r in results if hasattr(r, "paid_from_balances_minor")
    )
    assert spent == 4000 and card_balance(issued) == 0
    assert sorted(
        r.paid_from_balances_minor for r in results if hasattr(r, "paid_from_balances_minor")
    ) == [1000, 1500, 1500]
    assert all("no balance left" in str(r) for r in results if isinstance(r, Exception))
    assert ledger_sums_to_zero()


# -- gift cards sold as products -------------------------------------------------------------


def test_a_gift_card_bought_in_the_shop_is_delivered_through_the_key_portal(session, queued_jobs):
    from core.models import GiftCard, Key
    from core.services.consent import give_consent
    from core.services.fulfilment import fulfil_order
    from core.services.portal import reveal_order_key

    product = make_product(session, title="Gift card €25", price_minor=2500)
    game = make_product(session, price_minor=1000)
    make_keys(session, game, 1)
    with session_scope() as s:
        assert (
            giftcards.stock_product(session=s, product_id=product.id, count=2, actor=OPERATOR) == 2
        )
    with session_scope(write=False) as s:
        keys = s.exec(select(Key).where(Key.product_id == product.id)).all()
        assert [k.status for k in keys] == ["available", "available"]
        assert giftcards.list_cards(s) == []  # stock, not cards yet
    result = place_order(email="g@example.com", lines=[CartLine(product.slug, 1)])
    pay_test_order(number=result.number, access_token=result.access_token)
    run_webhooks(queued_jobs)
    order_id = fresh(session).exec(select(Order.id).where(Order.number == result.number)).one()
    fulfil_order(order_id=order_id)
    assert status(session, result.number) == OrderStatus.FULFILLED
    give_consent(number=result.number, access_token=result.access_token)
    key_id = fresh(session).exec(select(Key.id).where(Key.status == "delivered")).one()
    shown = reveal_order_key(
        number=result.number, key_id=str(key_id), access_token=result.access_token
    )
    assert shown.code is not None and shown.code.startswith("GC-")
    balance = giftcards.check_balance(code=shown.code, ip=None)
    assert (balance.balance_minor, balance.currency, balance.active) == (2500, "EUR", True)
    # the card pays another order
    spent = place_order(
        email="h@example.com", lines=[CartLine(game.slug, 1)], gift_cards=[shown.code]
    )
    assert spent.paid_from_balances_minor == 1000 and status(session, spent.number) == "paid"
    # refunding the gift card order takes what is left off the card; its code was seen,
    # so the card is void
    refund_order(order_id=order_id, actor=OPERATOR, reason="changed mind")
    run_webhooks(queued_jobs)
    after = giftcards.check_balance(code=shown.code, ip=None)
    assert (after.balance_minor, after.active) == (0, False)
    with session_scope(write=False) as s:
        sold = s.exec(select(GiftCard).where(GiftCard.key_id == key_id)).one()
        assert sold.status == "void" and sold.initial_minor == 2500
    assert ledger_sums_to_zero()


def test_an_unsold_gift_card_code_pays_nothing_and_an_unrevealed_refund_restocks_it(
    session, queued_jobs
):
    from core.models import GiftCard, Key
    from core.services.fulfilment import fulfil_order

    product = make_product(session, title="Gift card €10", price_minor=1000)
    with session_scope() as s:
        giftcards.stock_product(session=s, product_id=product.id, count=1, actor=OPERATOR)
    result = place_order(email="g@example.com", lines=[CartLine(product.slug, 1)])
    pay_test_order(number=result.number, access_token=result.access_token)
    run_webhooks(queued_jobs)
    order_id = fresh(session).exec(select(Order.id).where(Order.number == result.number)).one()
    fulfil_order(order_id=order_id)
    with session_scope(write=False) as s:
        card = s.exec(select(GiftCard)).one()
        assert card.status == "active" and giftcards.balance_of(s, card) == 1000
    refund_order(order_id=order_id, actor=OPERATOR, reason="never revealed")
    run_webhooks(queued_jobs)
    with session_scope(write=False) as s:
        card = s.exec(select(GiftCard)).one()
        key = s.get(Key, card.key_id)
        assert (card.status, key.status) == ("unsold", "available")  # sold again later
        assert giftcards.balance_of(s, card) == 0
    assert ledger_sums_to_zero()


@pytest.mark.postgres_only
def test_a_checkout_reading_a_card_makes_a_competing_checkout_wait_for_it(session, shop):
    """Deterministic race (tests/race_condition.py): right after the first checkout has
    read the card's balance (2000) under its lock, a second checkout for the same card
    starts; it must wait for the first to commit and then find only 500 left. Without
    the lock both would read 2000 and spend 1500 each."""
    from tests.race_condition import Competitor, race_condition

    issued = gift_card(2000)
    other = make_product(session, title="Other Game", price_minor=1500)  # no shared stock row
    make_keys(session, other, 2)
    with session_scope() as s:  # as in a running shop: the counter-account exists already
        credit.shop_account(s, name="orders", currency="EUR")

    def second_checkout():
        return place_order(
            email="b@example.com", lines=[CartLine(other.slug, 1)], gift_cards=[issued.code]
        )

    competitor = Competitor(second_checkout)

    def start_competitor(*_a, **_k) -> None:
        competitor.start()
        assert not competitor.join(0.5)  # blocked on the card's lock, not done

    with race_condition("core.services.credit.balance", after=start_competitor):
        first = place_order(
            email="a@example.com", lines=[CartLine(shop.game.slug, 1)], gift_cards=[issued.code]
        )
    assert competitor.join(30)
    assert competitor.error is None
    assert (first.paid_from_balances_minor, competitor.result.paid_from_balances_minor) == (
        1500,
        500,
    )
    assert card_balance(issued) == 0 and ledger_sums_to_zero()
