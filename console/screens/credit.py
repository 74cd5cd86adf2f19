"""Credit: store credit and gift cards. The top line is what customers can still spend
(a liability) per currency; below, a customer's credit ledger (type their id or e-mail)
and the most recent gift cards. Operators adjust a customer's credit, issue a gift card
(its code shown once), adjust or void the selected card — each through the same
services as ``keyshop credit`` and ``keyshop giftcard``, audited, with a note."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Static

from console.screens.base import ConsoleScreen
from console.screens.modals import Reason, ReasonScreen, RevealScreen, ValueScreen
from console.widgets.formatting import money
from console.widgets.navbar import NavBar
from core import money as money_rules
from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.services import credit, giftcards, referrals
from core.services.operator import credit as operator_credit


@dataclass(frozen=True)
class Amount:
    minor: int
    currency: str


def parse_amount_text(text: str, default_currency: str, *, negative: bool = True) -> Amount:
    """``"12.50"``, ``"-5 EUR"``, ``"1200 JPY"``: an amount with an optional currency
    code after it (InvalidInput otherwise), parsed by core.money."""
    parts = (text or "").split()
    currency = default_currency
    if len(parts) > 1 and len(parts[-1]) == 3 and parts[-1].isalpha():
        currency = parts.pop()
    code = money_rules.normalise_currency(currency)
    minor = money_rules.parse_amount(" ".join(parts), code, allow_negative=negative)
    if minor == 0:
        raise InvalidInput("enter an amount other than zero", field="amount")
    return Amount(minor, code)


class CreditLoaded(Message):
    def __init__(
        self,
        outstanding: list[credit.Outstanding],
        customer: tuple[int, dict[str, int], list[credit.LedgerLine]] | None,
        cards: list[giftcards.CardRow],
        error: str = "",
        referred: list[referrals.ReferralRow] | None = None,
        campaigns: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.outstanding = outstanding
        self.customer = customer
        self.cards = cards
        self.error = error
        self.referred = referred or []
        self.campaigns = campaigns or []


class CreditScreen(ConsoleScreen):
    NAME = "credit"
    AUTO_FOCUS = "#giftcard-table"
    BINDINGS = [
        # short labels: every key fits the footer at 80 columns (? names them in full)
        Binding("slash", "focus_customer", "Find", id="credit.customer"),
        Binding("a", "adjust_credit", "Credit", id="credit.adjust"),
        Binding("i", "issue_card", "Issue", id="credit.issue"),
        Binding("j", "adjust_card", "Card", id="credit.adjust_card"),
        Binding("v", "void_card", "Void", id="credit.void"),
        Binding("p", "pay_referrals", "Pay", id="credit.pay_referrals"),
    ]
    PALETTE = [
        ("Adjust the shown customer's store credit", "adjust_credit", "amount, then a note"),
        ("Issue a gift card", "issue_card", "its code is shown once"),
        ("Adjust the selected gift card", "adjust_card", "amount, then a note"),
        ("Void the selected gift card", "void_card", "asks for a note"),
        (
            "Pay referral rewards and cashback now",
            "pay_referrals",
            "what the hourly task would pay; never twice",
        ),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.customer_id: int | None = None
        self.customer_query = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Static("", id="credit-outstanding")
        yield Input(placeholder="Customer id or e-mail, then Enter", id="credit-customer")
        yield Static("", id="credit-summary")
        yield DataTable(id="credit-ledger", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="giftcard-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="cashback-campaigns")
        yield DataTable(id="referral-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#credit-ledger", DataTable).add_columns(
            "When", "What", "Amount", "Balance", "Order", "By", "Note"
        )
        self.query_one("#giftcard-table", DataTable).add_columns(
            "Card", "Code", "Balance", "Of", "Status", "Issued by"
        )
        self.query_one("#referral-table", DataTable).add_columns(
            "Referred on", "Referrer", "Referred", "Status", "Why"
        )

    def action_focus_customer(self) -> None:
        self.query_one("#credit-customer", Input).focus()

    @on(Input.Submitted, "#credit-customer")
    def customer_entered(self, event: Input.Submitted) -> None:
        self.customer_query = event.value.strip()
        self.load()

    def load(self) -> object:
        return self.fetch(self.customer_query)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, query: str) -> None:
        try:
            with session_scope(write=False) as session:
                outstanding = credit.outstanding(session)
                cards = giftcards.list_cards(session, limit=200)
                referred = referrals.recent(session, limit=100)
                campaigns = [
                    f"{c.name} {c.percent_bp / 100:g}% {c.starts_at:%Y-%m-%d} to {c.ends_at:%Y-%m-%d}"
                    for c in referrals.campaigns(session)
                ]
                customer = None
                if query:
                    customer_id = credit.find_customer(session, query)
                    customer = (
                        customer_id,
                        credit.customer_balances(session, customer_id=customer_id),
                        credit.customer_history(session, customer_id=customer_id),
                    )
        except DomainError as exc:
            self.post_message(CreditLoaded([], None, [], exc.message))
            return
        self.post_message(
            CreditLoaded(outstanding, customer, cards, referred=referred, campaigns=campaigns)
        )

    @on(CreditLoaded)
    def show(self, message: CreditLoaded) -> None:
        owed = "; ".join(
            f"{money(o.total_minor, o.currency)} ({money(o.customer_credit_minor, o.currency)} "
            f"credit, {money(o.gift_cards_minor, o.currency)} gift cards)"
            for o in message.outstanding
        )
        self.query_one("#credit-outstanding", Static).update(
            f"Outstanding (customers can still spend): {owed or 'nothing'}"
        )
        summary = self.query_one("#credit-summary", Static)
        ledger = self.query_one("#credit-ledger", DataTable)
        ledger.clear()
        if message.error:
            summary.update(Text(message.error, style="red"))
            self.customer_id = None
        elif message.customer is None:
            summary.update("Type a customer's id or e-mail to see their credit ledger.")
            self.customer_id = None
        else:
            customer_id, balances, lines = message.customer
            self.customer_id = customer_id
            held = ", ".join(money(a, c) for c, a in balances.items()) or "no credit yet"
            summary.update(f"Customer {customer_id}: {held}")
            for n, ln in enumerate(lines):
                ledger.add_row(
                    f"{ln.at:%Y-%m-%d %H:%M}",
                    ln.label,
                    Text(money(ln.amount_minor, ln.currency), justify="right"),
                    Text(money(ln.balance_minor, ln.currency), justify="right"),
                    ln.order_number or "",
                    ln.actor,
                    ln.note,
                    key=str(n),
                )
        table = self.query_one("#giftcard-table", DataTable)
        table.clear()
        for card in message.cards:
            table.add_row(
                str(card.id),
                f"…{card.last4}",
                Text(money(card.balance_minor, card.currency), justify="right"),
                Text(money(card.initial_minor, card.currency), justify="right"),
                card.status,
                card.issued_by,
                key=str(card.id),
            )
        self.query_one("#cashback-campaigns", Static).update(
            "Cashback: "
            + ("; ".join(message.campaigns) or "no campaign")
            + " · Referrals below (p pays what is due)"
        )
        referral_table = self.query_one("#referral-table", DataTable)
        referral_table.clear()
        for n, r in enumerate(message.referred):
            referral_table.add_row(
                f"{r.created_at:%Y-%m-%d}", r.referrer, r.referred, r.status, r.reason, key=str(n)
            )
        self.sub_title = self.updated()

    # -- actions ------------------------------------------------------------------------------

    def _selected_card(self) -> int | None:
        key = self.selected_key(self.query_one("#giftcard-table", DataTable))
        if key is None:
            self.notify("Select a gift card first.", severity="warning")
            return None
        return int(key)

    def _with_note(self, title: str, then: Any) -> None:
        def given(reason: Reason | None) -> None:
            if reason is not None:
                then(reason.text)

        self.app.push_screen(
            ReasonScreen(
                title, "The note is kept in the ledger and the audit trail.", confirm_label="Save"
            ),
            given,
        )

    def action_adjust_credit(self) -> None:
        customer_id = self.customer_id
        if customer_id is None:
            self.notify("Show a customer first (/ then their id or e-mail).", severity="warning")
            return

        def amount_given(text: str | None) -> None:
            if text is None:
                return
            amount = parse_amount_text(text, money_rules.DEFAULT_CURRENCY)

            def noted(note: str) -> None:
                self.run_operator_action(
                    "Adjust credit", lambda: self._adjust_credit(customer_id, amount, note)
                )

            self._with_note(
                f"Why adjust customer {customer_id}'s credit by {money(amount.minor, amount.currency)}?",
                noted,
            )

        self.app.push_screen(
            ValueScreen(
                f"Adjust customer {customer_id}'s store credit",
                "An amount to add, or take off with a minus: 12.50, -5, 1200 JPY.",
                confirm_label="Next",
                check=lambda v: parse_amount_text(v, money_rules.DEFAULT_CURRENCY),
            ),
            amount_given,
        )

    def _adjust_credit(self, customer_id: int, amount: Amount, note: str) -> str:
        posted = operator_credit.adjust_customer_credit(
            customer=str(customer_id),
            amount_minor=amount.minor,
            currency=amount.currency,
            actor=self.actor,
            note=note,
            key=f"console:{secrets.token_hex(12)}",
        )
        return f"customer {customer_id}: credit now {money(posted.balance_minor, posted.currency)}"

    def action_issue_card(self) -> None:
        def amount_given(text: str | None) -> None:
            if text is None:
                return
            amount = parse_amount_text(text, money_rules.DEFAULT_CURRENCY, negative=False)
            self.issue(amount)

        self.app.push_screen(
            ValueScreen(
                "Issue a gift card",
                "Its amount and currency: 25, 25 USD, 3000 JPY. The code is shown once.",
                confirm_label="Issue",
                check=lambda v: parse_amount_text(v, money_rules.DEFAULT_CURRENCY, negative=False),
            ),
            amount_given,
        )

    @work(thread=True, group="actions")
    def issue(self, amount: Amount) -> None:
        try:
            issued = operator_credit.issue_gift_card(
                amount_minor=amount.minor,
                currency=amount.currency,
                actor=self.actor,
                note="issued in the console",
            )
        except DomainError as exc:
            self.app.call_from_thread(
                self.notify, exc.message, title="Issue card", severity="error"
            )
            return
        label = f"gift card {issued.gift_card_id}: {money(amount.minor, amount.currency)}"
        self.app.call_from_thread(self.app.push_screen, RevealScreen(label, issued.code))
        self.app.call_from_thread(self.load)

    def action_adjust_card(self) -> None:
        if (card_id := self._selected_card()) is None:
            return

        def amount_given(text: str | None) -> None:
            if text is None:
                return

            def noted(note: str) -> None:
                self.run_operator_action(
                    "Adjust card", lambda: self._adjust_card(card_id, text, note)
                )

            self._with_note(f"Why adjust gift card {card_id} by {text}?", noted)

        self.app.push_screen(
            ValueScreen(
                f"Adjust gift card {card_id}",
                "An amount to add, or take off with a minus, in the card's currency: 5, -2.50.",
                confirm_label="Next",
                check=lambda v: parse_amount_text(v, money_rules.DEFAULT_CURRENCY),
            ),
            amount_given,
        )

    def _adjust_card(self, card_id: int, text: str, note: str) -> str:
        posted = operator_credit.adjust_gift_card(
            gift_card_id=card_id,
            amount=text,
            actor=self.actor,
            note=note,
            key=f"console:{secrets.token_hex(12)}",
        )
        return f"gift card {card_id}: balance now {money(posted.balance_minor, posted.currency)}"

    def action_void_card(self) -> None:
        if (card_id := self._selected_card()) is None:
            return

        def noted(note: str) -> None:
            self.run_operator_action("Void card", lambda: self._void_card(card_id, note))

        self._with_note(f"Void gift card {card_id}? What is left on it is taken off.", noted)

    def action_pay_referrals(self) -> None:
        def pay() -> str:
            payout = referrals.pay_due()
            return (
                f"{payout.rewarded} referral(s) rewarded, {payout.voided} voided, "
                f"{payout.cashback} order(s) given cashback"
            )

        self.run_operator_action("Pay referrals", pay)

    def _void_card(self, card_id: int, note: str) -> str:
        taken, currency = operator_credit.void_gift_card(
            gift_card_id=card_id, actor=self.actor, note=note
        )
        return f"gift card {card_id} void; {money(taken, currency)} taken off"
