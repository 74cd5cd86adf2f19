"""The store-credit ledger: double entry, balances from the ledger, never negative,
idempotent movements; gift cards as ledger accounts (issue, void, adjust, redeem); a
hypothesis state machine over random operation sequences."""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, text
from sqlmodel import col, select

from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.models import AuditEvent, Customer, GiftCard, LedgerAccount, LedgerEntry, LedgerMovement
from core.services import credit, giftcards
from core.services.audit import Actor
from core.services.credit import InsufficientBalance, Reason

OPERATOR = Actor.operator("alice")


def make_customer(email: str = "buyer@example.com") -> int:
    with session_scope() as session:
        customer = Customer(email=email)
        session.add(customer)
        session.flush()
        assert customer.id is not None
        return customer.id


def adjust(customer_id: int, amount: int, currency: str = "EUR", key: str | None = None) -> None:
    with session_scope() as session:
        credit.adjust_customer_credit(
            session=session,
            customer_id=customer_id,
            amount_minor=amount,
            currency=currency,
            actor=OPERATOR,
            note="goodwill",
            idempotency_key=key or f"test:{next(_keys)}",
        )


_keys = itertools.count()


def balances(customer_id: int) -> dict[str, int]:
    with session_scope(write=False) as session:
        return credit.customer_balances(session, customer_id=customer_id)


def ledger_totals() -> dict[str, int]:
    with session_scope(write=False) as session:
        rows = session.exec(
            select(LedgerAccount.currency, func.sum(LedgerEntry.amount_minor))
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .group_by(LedgerAccount.currency)
        ).all()
        return {c: int(s) for c, s in rows}


# -- the ledger -------------------------------------------------------------------------


def test_an_adjustment_is_two_entries_against_the_shop_and_is_audited(engine):
    customer = make_customer()
    adjust(customer, 1500)
    adjust(customer, -500)
    assert balances(customer) == {"EUR": 1000}
    assert ledger_totals() == {"EUR": 0}
    with session_scope(write=False) as session:
        movements = session.exec(select(LedgerMovement).order_by(LedgerMovement.id)).all()
        assert [m.reason for m in movements] == ["operator_adjustment"] * 2
        for m in movements:
            entries = session.exec(
                select(LedgerEntry.amount_minor).where(LedgerEntry.movement_id == m.id)
            ).all()
            assert sorted(entries) == [-m.amount_minor, m.amount_minor]
        shop = session.exec(
            select(LedgerAccount).where(LedgerAccount.ref == "shop:adjustments:EUR")
        ).one()
        assert credit.balance(session, account_id=shop.id) == -1000
        audits = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "credit.adjust")
            .order_by(col(AuditEvent.id))
        ).all()
        assert [a.data["amount_minor"] for a in audits] == [1500, -500]
        history = credit.customer_history(session, customer_id=customer)
        assert [(h.amount_minor, h.balance_minor, h.note) for h in history] == [
            (1500, 1500, "goodwill"),
            (-500, 1000, "goodwill"),
        ]


def test_credit_never_goes_below_zero_and_a_refusal_writes_nothing(engine):
    customer = make_customer()
    adjust(customer, 300)
    with pytest.raises(InsufficientBalance):
        adjust(customer, -301)
    assert balances(customer) == {"EUR": 300}
    with session_scope(write=False) as session:
        assert session.exec(select(func.count()).select_from(LedgerMovement)).one() == 1


def test_the_same_idempotency_key_moves_credit_once(engine):
    customer = make_customer()
    adjust(customer, 700, key="webhook:evt_1")
    adjust(customer, 700, key="webhook:evt_1")
    assert balances(customer) == {"EUR": 700}


@pytest.mark.parametrize(
    ("amount", "note", "problem"),
    [(0, "x", InvalidInput), (100, " ", InvalidInput), (True, "x", InvalidInput)],
)
def test_bad_adjustments_are_refused(engine, amount, note, problem):
    customer = make_customer()
    with pytest.raises(problem), session_scope() as session:
        credit.adjust_customer_credit(
            session=session,
            customer_id=customer,
            amount_minor=amount,
            currency="EUR",
            actor=OPERATOR,
            note=note,
            idempotency_key="k",
        )
    assert balances(customer) == {}


def test_unknown_customer_and_currency_mixing_are_refused(engine):
    with pytest.raises(NotFound), session_scope() as session:
        credit.adjust_customer_credit(
            session=session,
            customer_id=999,
            amount_minor=100,
            currency="EUR",
            actor=OPERATOR,
            note="x",
            idempotency_key="k",
        )
    customer = make_customer()
    with pytest.raises(InvalidInput), session_scope() as session:
        credit.post_movement(
            session=session,
            from_account=credit.shop_account(session, name="adjustments", currency="EUR"),
            to_account=credit.customer_account(session, customer_id=customer, currency="USD"),
            amount_minor=100,
            reason=Reason.OPERATOR_ADJUSTMENT,
            idempotency_key="k",
            actor=OPERATOR,
        )


def test_credit_in_two_currencies_is_kept_apart_and_outstanding_is_per_currency(engine):
    a, b = make_customer("a@example.com"), make_customer("b@example.com")
    adjust(a, 1000)
    adjust(a, 500, "JPY")
    adjust(b, 250)
    with session_scope() as session:
        giftcards.issue(session=session, amount_minor=2000, currency="EUR", actor=OPERATOR)
    assert balances(a) == {"EUR": 1000, "JPY": 500}
    with session_scope(write=False) as session:
        report = credit.outstanding(session)
    assert [
        (o.currency, o.customer_credit_minor, o.gift_cards_minor, o.total_minor) for o in report
    ] == [
        ("EUR", 1250, 2000, 3250),
        ("JPY", 500, 0, 500),
    ]


# -- gift cards -----------------------------------------------------------------------------


def _every_typo_is_caught(canonical: str) -> None:
    body = canonical[2:]
    for i in range(len(body)):  # every single-character typo is caught
        for wrong in giftcards.ALPHABET.replace(body[i], ""):
            with pytest.raises(InvalidInput):
                giftcards.parse_code(body[:i] + wrong + body[i + 1 :])
    for i in range(len(body) - 1):  # and every swap of two different neighbours
        if body[i] != body[i + 1]:
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            with pytest.raises(InvalidInput):
                giftcards.parse_code(swapped)


def test_gift_card_codes_are_checksummed_and_forgiving_about_typing():
    code = giftcards.new_code()
    assert code.startswith("GC-") and len(code.replace("-", "")) == 23
    canonical = giftcards.parse_code(code)
    assert giftcards.parse_code(code.lower().replace("-", " ")) == canonical
    _every_typo_is_caught(canonical)
    # Luhn mod 32 missed a swap of "0" and "Z" (values 0 and 31) side by side: a body
    # holding every such neighbour pair, and many random codes, are checked whole
    for start in ("0Z", "Z0"):
        body = (start * 10)[: giftcards.RANDOM_CHARS]
        if (check := giftcards.check_char(body)) is not None:
            _every_typo_is_caught("GC" + body + check)
    for _ in range(200):
        _every_typo_is_caught(giftcards.parse_code(giftcards.new_code()))
    with pytest.raises(InvalidInput):
        giftcards.parse_code("GC-123")


def test_a_gift_card_is_stored_encrypted_and_found_by_fingerprint(engine, vault):
    with session_scope() as session:
        issued = giftcards.issue(
            session=session, amount_minor=2500, currency="EUR", actor=OPERATOR, note="promo"
        )
    with session_scope(write=False) as session:
        card = session.get(GiftCard, issued.gift_card_id)
        assert card is not None
        raw = giftcards.parse_code(issued.code).encode()
        assert raw not in card.ciphertext and raw not in repr(card).encode()
        assert vault.decrypt(card.ciphertext, key_version=card.key_version, row_id=card.uid) == raw
        assert giftcards.find(session, issued.code.lower()).id == card.id
        assert giftcards.balance_of(session, card) == 2500


def test_void_takes_the_balance_off_and_adjust_is_audited(engine):
    with session_scope() as session:
        issued = giftcards.issue(session=session, amount_minor=2500, currency="EUR", actor=OPERATOR)
    with session_scope() as session:
        giftcards.adjust(
            session=session,
            gift_card_id=issued.gift_card_id,
            amount_minor=-500,
            actor=OPERATOR,
            note="partly used in store",
            idempotency_key="adj-1",
        )
    with pytest.raises(InvalidInput), session_scope() as session:
        giftcards.void(session=session, gift_card_id=issued.gift_card_id, actor=OPERATOR, note="")
    with session_scope() as session:
        assert (
            giftcards.void(
                session=session, gift_card_id=issued.gift_card_id, actor=OPERATOR, note="fraud"
            )
            == 2000
        )
    balance = giftcards.check_balance(code=issued.code, ip=None)
    assert (balance.balance_minor, balance.active) == (0, False)
    with pytest.raises(InvalidInput), session_scope() as session:
        giftcards.void(session=session, gift_card_id=issued.gift_card_id, actor=OPERATOR, note="x")
    with session_scope(write=False) as session:
        actions = session.exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions == ["giftcard.issue", "giftcard.adjust", "giftcard.void"]
        lines = giftcards.history(session, gift_card_id=issued.gift_card_id)
        assert [ln.amount_minor for ln in lines] == [2500, -500, -2000]
    assert ledger_totals() == {"EUR": 0}


def test_redeeming_a_card_moves_its_balance_to_credit(engine):
    customer = make_customer()
    with session_scope() as session:
        issued = giftcards.issue(session=session, amount_minor=1200, currency="EUR", actor=OPERATOR)
    with session_scope() as session:
        moved = giftcards.redeem_to_credit(
            session=session, code=issued.code, customer_id=customer, actor=Actor.customer(customer)
        )
    assert moved == 1200 and balances(customer) == {"EUR": 1200}
    with pytest.raises(InvalidInput), session_scope() as session:
        giftcards.redeem_to_credit(
            session=session, code=issued.code, customer_id=customer, actor=Actor.customer(customer)
        )
    with session_scope(write=False) as session:
        history = credit.customer_history(session, customer_id=customer)
    assert [h.reason for h in history] == ["gift_card_redemption"]


def test_balance_lookup_is_rate_limited_per_address(engine):
    from core.services.ratelimit import RateLimited

    with session_scope() as session:
        issued = giftcards.issue(session=session, amount_minor=100, currency="EUR", actor=OPERATOR)
    _, limit, _ = giftcards.BALANCE_LIMIT
    for _ in range(limit):
        with pytest.raises(giftcards.UnknownGiftCard):
            giftcards.check_balance(code=giftcards.new_code(), ip="203.0.113.9")
    with pytest.raises(RateLimited):
        giftcards.check_balance(code=issued.code, ip="203.0.113.9")
    assert giftcards.check_balance(code=issued.code, ip="203.0.113.10").balance_minor == 100


# -- random operation sequences ---------------------------------------------------------------

CURRENCIES = ("EUR", "JPY")


class LedgerMachine(RuleBasedStateMachine):
    """Random adjustments, gift-card issues, redemptions, voids, spends and replays;
    after every step the database agrees with a plain model of the balances, no holder
    balance is negative, every movement is two entries summing to zero and the ledger
    sums to zero in every currency."""

    def __init__(self) -> None:
        super().__init__()
        self.credit: dict[tuple[int, str], int] = {}
        self.cards: dict[int, tuple[str, str, int, bool]] = {}  # id → code, cur, bal, active
        self.replayable: list[tuple[str, int, str, int]] = []
        self.keys = itertools.count()

    @initialize()
    def wipe(self) -> None:
        with session_scope() as session:
            for table in ("ledger_entries", "ledger_movements", "ledger_accounts", "audit_events"):
                session.execute(text(f"DELETE FROM {table}"))
            session.execute(text("DELETE FROM gift_cards"))
            session.execute(text("DELETE FROM customers"))
        self.customers = [make_customer(f"c{n}@example.com") for n in range(2)]

    def _key(self) -> str:
        return f"machine:{next(self.keys)}"

    @rule(
        who=st.integers(0, 1),
        currency=st.sampled_from(CURRENCIES),
        amount=st.integers(-3000, 3000).filter(bool),
    )
    def adjust_credit(self, who: int, currency: str, amount: int) -> None:
        customer = self.customers[who]
        have = self.credit.get((customer, currency), 0)
        key = self._key()
        try:
            adjust(customer, amount, currency, key=key)
        except InsufficientBalance:
            assert have + amount < 0
            return
        assert have + amount >= 0
        self.credit[(customer, currency)] = have + amount
        self.replayable.append((key, customer, currency, amount))

    @precondition(lambda self: self.replayable)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key, customer, currency, amount = data.draw(st.sampled_from(self.replayable))
        adjust(customer, amount, currency, key=key)  # moves nothing

    @rule(currency=st.sampled_from(CURRENCIES), amount=st.integers(1, 5000))
    def issue_card(self, currency: str, amount: int) -> None:
        with session_scope() as session:
            issued = giftcards.issue(
                session=session, amount_minor=amount, currency=currency, actor=OPERATOR
            )
        self.cards[issued.gift_card_id] = (issued.code, currency, amount, True)

    @precondition(lambda self: self.cards)
    @rule(data=st.data(), who=st.integers(0, 1))
    def redeem_card(self, data: st.DataObject, who: int) -> None:
        card_id = data.draw(st.sampled_from(sorted(self.cards)))
        code, currency, bal, active = self.cards[card_id]
        customer = self.customers[who]
        try:
            with session_scope() as session:
                giftcards.redeem_to_credit(
                    session=session, code=code, customer_id=customer, actor=OPERATOR
                )
        except InvalidInput:
            assert not active or bal == 0
            return
        assert active and bal > 0
        self.cards[card_id] = (code, currency, 0, True)
        self.credit[(customer, currency)] = self.credit.get((customer, currency), 0) + bal

    @precondition(lambda self: self.cards)
    @rule(data=st.data())
    def void_card(self, data: st.DataObject) -> None:
        card_id = data.draw(st.sampled_from(sorted(self.cards)))
        code, currency, _, active = self.cards[card_id]
        try:
            with session_scope() as session:
                giftcards.void(session=session, gift_card_id=card_id, actor=OPERATOR, note="test")
        except InvalidInput:
            assert not active
            return
        self.cards[card_id] = (code, currency, 0, False)

    @rule(who=st.integers(0, 1), currency=st.sampled_from(CURRENCIES), amount=st.integers(1, 4000))
    def spend_credit(self, who: int, currency: str, amount: int) -> None:
        customer = self.customers[who]
        have = self.credit.get((customer, currency), 0)
        try:
            with session_scope() as session:
                credit.post_movement(
                    session=session,
                    from_account=credit.customer_account(
                        session, customer_id=customer, currency=currency
                    ),
                    to_account=credit.shop_account(session, name="orders", currency=currency),
                    amount_minor=amount,
                    reason=Reason.ORDER_PAYMENT,
                    idempotency_key=self._key(),
                    actor=Actor.customer(customer),
                )
        except InsufficientBalance:
            assert amount > have
            return
        self.credit[(customer, currency)] = have - amount

    @invariant()
    def ledger_agrees(self) -> None:
        if not hasattr(self, "customers"):
            return
        with session_scope(write=False) as session:
            for customer in self.customers:
                got = {
                    c: b
                    for c, b in credit.customer_balances(session, customer_id=customer).items()
                    if b
                }
                want = {c: b for (who, c), b in self.credit.items() if who == customer and b}
                assert got == want
            for card_id, (_, _, bal, _) in self.cards.items():
                card = session.get(GiftCard, card_id)
                assert card is not None and giftcards.balance_of(session, card) == bal
            holders = session.exec(
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_minor))
                .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
                .where(LedgerAccount.kind != "shop")
                .group_by(LedgerEntry.account_id)
            ).all()
            assert all(total >= 0 for _, total in holders)
            unbalanced = session.exec(
                select(LedgerEntry.movement_id)
                .group_by(LedgerEntry.movement_id)
                .having((func.sum(LedgerEntry.amount_minor) != 0) | (func.count() != 2))
            ).all()
            assert unbalanced == []
        assert all(total == 0 for total in ledger_totals().values())


def test_random_operation_sequences_keep_the_ledger_true(engine):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


# -- concurrency ----------------------------------------------------------------------------


def test_sixteen_concurrent_spends_never_overdraw_and_replays_move_once(engine):
    """16 threads each try to spend 300 of a 1000 balance (3 can), and 16 threads replay
    one refund movement with the same key (1 moves). On PostgreSQL the account row lock
    serialises them; without it several would read 1000 and all spend."""
    import threading

    customer = make_customer()
    adjust(customer, 1000)
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def spend(n: int) -> None:
        barrier.wait()
        try:
            with session_scope() as session:
                credit.post_movement(
                    session=session,
                    from_account=credit.customer_account(
                        session, customer_id=customer, currency="EUR"
                    ),
                    to_account=credit.shop_account(session, name="orders", currency="EUR"),
                    amount_minor=300,
                    reason=Reason.ORDER_PAYMENT,
                    idempotency_key=f"spend:{n}",
                    actor=Actor.customer(customer),
                )
            outcomes.append("spent")
        except InsufficientBalance:
            outcomes.append("refused")

    def replay() -> None:
        barrier.wait()
        adjust(customer, 50, key="refund:evt_same")

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 13 + ["spent"] * 3
    assert balances(customer) == {"EUR": 100}
    barrier = threading.Barrier(16)
    threads = [threading.Thread(target=replay) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert balances(customer) == {"EUR": 150}
    assert ledger_totals() == {"EUR": 0}
