"""``keyshop giftcard …`` and ``keyshop credit …``: gift cards and customers' store credit
from the command line. Each command is a thin call into :mod:`core.services.giftcards`
or :mod:`core.services.credit`; amounts are typed in major units (``25``, ``19.99``) and
parsed by :func:`core.money.parse_amount`. Every change is audited under ``--operator``.

Adjustments take ``--key``: run the same command again with the same key (after a
time-out, say) and nothing moves twice. Without it each run is a new adjustment."""

from __future__ import annotations

import secrets
from datetime import UTC
from typing import Any

import click
from sqlmodel import select

from core import money
from core.db import session_scope
from core.errors import NotFound
from core.models import Product
from core.services import credit, giftcards, referrals
from core.services.audit import Actor
from core.services.operator import credit as operator_credit
from keyshop.cli import default_operator, handles_errors

operator_option = click.option(
    "--operator",
    default=default_operator,
    show_default="your login name",
    help="Recorded as the actor in the audit trail.",
)
key_option = click.option(
    "--key",
    default=None,
    help="Idempotency key: the same key never moves money twice (default: a new one).",
)


def _lines(lines: list[credit.LedgerLine]) -> None:
    for ln in lines:
        click.echo(
            f"{ln.at:%Y-%m-%d %H:%M}\t{ln.label}\t"
            f"{money.format_money(ln.amount_minor, ln.currency, style='code')}\t"
            f"balance {money.format_money(ln.balance_minor, ln.currency, style='code')}\t"
            f"{ln.order_number or ''}\t{ln.actor}\t{ln.note}"
        )


# -- gift cards -----------------------------------------------------------------------------


@click.group()
def giftcard() -> None:
    """Gift cards: issue, stock a gift-card product, void, adjust, balance, history, list."""


@giftcard.command("issue")
@click.argument("amount")
@click.option("--currency", default=money.DEFAULT_CURRENCY, show_default=True)
@click.option("--note", default="", help="Why it was issued (a campaign, a goodwill gesture).")
@operator_option
@handles_errors
def issue_command(amount: str, currency: str, note: str, operator: str) -> None:
    """Issue a gift card of AMOUNT (major units) and print its code, once."""
    code = money.normalise_currency(currency)
    minor = money.parse_amount(amount, code)
    issued = operator_credit.issue_gift_card(
        amount_minor=minor, currency=code, actor=Actor.operator(operator), note=note
    )
    click.echo(issued.code)
    click.echo(
        f"gift card {issued.gift_card_id} issued: "
        f"{money.format_money(minor, code, style='code')} (the code is shown only now)",
        err=True,
    )


@giftcard.command("void")
@click.argument("gift_card_id", type=int)
@click.option("--note", required=True, help="Why (required).")
@operator_option
@handles_errors
def void_command(gift_card_id: int, note: str, operator: str) -> None:
    """Void a gift card: what is left on it is taken off and it can no longer pay."""
    removed, currency = operator_credit.void_gift_card(
        gift_card_id=gift_card_id, actor=Actor.operator(operator), note=note
    )
    click.echo(
        f"gift card {gift_card_id} void; "
        f"{money.format_money(removed, currency, style='code')} taken off"
    )


@giftcard.command("adjust", context_settings={"ignore_unknown_options": True})
@click.argument("gift_card_id", type=int)
@click.argument("amount")
@click.option("--note", required=True, help="Why (required).")
@key_option
@operator_option
@handles_errors
def adjust_command(
    gift_card_id: int, amount: str, note: str, key: str | None, operator: str
) -> None:
    """Add AMOUNT to a gift card (or take it off: a negative AMOUNT, e.g. -5)."""
    posted = operator_credit.adjust_gift_card(
        gift_card_id=gift_card_id,
        amount=amount,
        actor=Actor.operator(operator),
        note=note,
        key=f"cli:{key or secrets.token_hex(12)}",
    )
    left, currency = posted.balance_minor, posted.currency
    what = "already done, nothing moved" if posted.replayed else "adjusted"
    click.echo(
        f"gift card {gift_card_id} {what}; balance "
        f"{money.format_money(left, currency, style='code')}"
    )


@giftcard.command("stock")
@click.argument("slug")
@click.option("--count", required=True, type=click.IntRange(1, 10_000), help="How many cards.")
@operator_option
@handles_errors
def stock_command(slug: str, count: int, operator: str) -> None:
    """Make COUNT new gift cards the stock of the product SLUG (create it first, e.g.
    "Gift card €25" priced 25 in each currency it sells in: the price paid becomes the
    card's balance when its code is delivered)."""
    with session_scope() as session:
        product = session.exec(select(Product).where(Product.slug == slug)).first()
        if product is None or product.id is None:
            raise NotFound(f"no product {slug}")
        made = giftcards.stock_product(
            session=session, product_id=product.id, count=count, actor=Actor.operator(operator)
        )
    click.echo(f"{made} gift card(s) added to the stock of {slug}")


@giftcard.command("balance")
@click.argument("code")
@handles_errors
def balance_command(code: str) -> None:
    """A gift card's balance by its code."""
    found = giftcards.check_balance(code=code, ip=None)
    state = "active" if found.active else "void"
    click.echo(
        f"…{found.last4}\t{money.format_money(found.balance_minor, found.currency, style='code')}"
        f"\tof {money.format_money(found.initial_minor, found.currency, style='code')}\t{state}"
    )


@giftcard.command("history")
@click.argument("gift_card_id", type=int)
@handles_errors
def history_command(gift_card_id: int) -> None:
    """Every movement of one gift card, with the running balance."""
    with session_scope(write=False) as session:
        lines = giftcards.history(session, gift_card_id=gift_card_id)
    _lines(lines)


@giftcard.command("list")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@handles_errors
def list_command(limit: int) -> None:
    """The most recent gift cards: id, last characters, balance, status, issued by."""
    with session_scope(write=False) as session:
        rows = giftcards.list_cards(session, limit=limit)
    for r in rows:
        click.echo(
            f"{r.id}\t…{r.last4}\t{money.format_money(r.balance_minor, r.currency, style='code')}"
            f"\tof {money.format_money(r.initial_minor, r.currency, style='code')}"
            f"\t{r.status}\t{r.issued_by}"
        )
    click.echo(f"{len(rows)} gift card(s)", err=True)


# -- store credit ------------------------------------------------------------------------------


@click.group("credit")
def credit_group() -> None:
    """Customers' store credit: show a ledger, adjust, and what is outstanding."""


@credit_group.command("show")
@click.argument("customer")
@handles_errors
def show_command(customer: str) -> None:
    """A customer's (id or e-mail) credit per currency and their ledger."""
    with session_scope(write=False) as session:
        customer_id = credit.find_customer(session, customer)
        balances = credit.customer_balances(session, customer_id=customer_id)
        lines = credit.customer_history(session, customer_id=customer_id)
    for currency, amount in balances.items():
        click.echo(f"balance\t{money.format_money(amount, currency, style='code')}")
    _lines(lines)


@credit_group.command("adjust", context_settings={"ignore_unknown_options": True})
@click.argument("customer")
@click.argument("amount")
@click.option("--currency", default=money.DEFAULT_CURRENCY, show_default=True)
@click.option("--note", required=True, help="Why (required; the customer sees it).")
@key_option
@operator_option
@handles_errors
def credit_adjust_command(
    customer: str, amount: str, currency: str, note: str, key: str | None, operator: str
) -> None:
    """Give a customer (id or e-mail) AMOUNT of credit, or take it (negative AMOUNT)."""
    code = money.normalise_currency(currency)
    minor = money.parse_amount(amount, code, allow_negative=True)
    posted = operator_credit.adjust_customer_credit(
        customer=customer,
        amount_minor=minor,
        currency=code,
        actor=Actor.operator(operator),
        note=note,
        key=f"cli:{key or secrets.token_hex(12)}",
    )
    customer_id, left = posted.id, posted.balance_minor
    what = "already done, nothing moved" if posted.replayed else "adjusted"
    click.echo(
        f"customer {customer_id} {what}; credit {money.format_money(left, code, style='code')}"
    )


@credit_group.command("outstanding")
@handles_errors
def outstanding_command() -> None:
    """Store credit and gift-card balances customers can still spend (a liability), per
    currency."""
    with session_scope(write=False) as session:
        rows = credit.outstanding(session)
    click.echo("currency\tstore credit\tgift cards\ttotal")
    for r in rows:
        click.echo(
            f"{r.currency}\t{money.format_money(r.customer_credit_minor, r.currency, style='code')}"
            f"\t{money.format_money(r.gift_cards_minor, r.currency, style='code')}"
            f"\t{money.format_money(r.total_minor, r.currency, style='code')}"
        )


@click.group("referrals")
def referrals_group() -> None:
    """Referrals and cashback: a customer's link, who came through it, cashback
    campaigns, and paying what is due."""


@referrals_group.command("link")
@click.argument("customer")
@handles_errors
def referral_link_command(customer: str) -> None:
    """A customer's (id or e-mail) referral link and the customers it brought."""
    with session_scope(write=False) as session:
        customer_id = credit.find_customer(session, customer)
    link, invited = referrals.invitations(customer_id=customer_id)
    click.echo(link)
    for who, status, at in invited:
        click.echo(f"{at:%Y-%m-%d}\t{who}\t{status}")


@referrals_group.command("pay")
@handles_errors
def referral_pay_command() -> None:
    """Reward every referral whose first order has been kept for the hold (the hourly
    task does the same; running it twice pays nothing twice)."""
    payout = referrals.pay_due()
    click.echo(
        f"{payout.rewarded} referral(s) rewarded, {payout.voided} voided, "
        f"{payout.cashback} order(s) given cashback"
    )


@referrals_group.command("cashback")
@click.argument("name")
@click.option("--percent", required=True, help="Of each qualifying order's total, e.g. 5.")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Exclusive.")
@operator_option
@handles_errors
def cashback_command(name: str, percent: str, start: Any, end: Any, operator: str) -> None:
    """A cashback campaign NAME: PERCENT of each order a signed-in customer pays from
    --from to --to (exclusive), credited once the order has been kept for the hold."""
    with session_scope() as session:
        campaign = referrals.create_campaign(
            session=session,
            name=name,
            percent=percent,
            starts_at=start.replace(tzinfo=UTC),
            ends_at=end.replace(tzinfo=UTC),
            actor=Actor.operator(operator),
        )
    click.echo(f"cashback campaign {campaign.name}: {campaign.percent_bp / 100:g}% created")


COMMANDS = [giftcard, credit_group, referrals_group]
