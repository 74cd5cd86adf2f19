"""Receipts (invoices) for paid orders: numbered without gaps per year, with the seller,
the buyer's country and the VAT breakdown; as data for the HTML page and as a PDF.

Numbering: :func:`issue_invoice` runs in the transaction that marks the order paid
(:func:`core.services.orders.transition_order`). It increments the year's row of
``invoice_counters`` with one ``UPDATE … SET last_seq = last_seq + 1`` (the row lock
makes concurrent payments take numbers one after another) and writes the invoice with
that number in the same transaction: if the payment's transaction rolls back, so does
the number, so the numbers of a year run 1, 2, 3… without gaps or repeats. The first
invoice of a year inserts the counter row; two doing so at once collide on its primary
key, and the loser (in a savepoint) takes the update path.

PDFs are drawn with fpdf2 (pure Python, no system libraries) in its core Helvetica font,
so amounts use currency codes (``19.99 EUR``) and characters outside Latin-1 are
replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import i18n
from core.config import get_settings
from core.db import session_scope
from core.errors import NotFound
from core.models import Invoice, InvoiceCounter, Order, OrderLine, row_id, utcnow
from core.money import format_money

NUMBER_FORMAT: Final = "{year}-{seq:06d}"


class NoReceipt(NotFound):
    code = "no_receipt"

    def __init__(self) -> None:
        super().__init__("This order has no receipt yet: receipts are issued once it is paid.")


_INVOICES = Invoice.__table__  # type: ignore[attr-defined]
_COUNTERS = InvoiceCounter.__table__  # type: ignore[attr-defined]
# Built once, sent as Core statements on the session's connection: issuing the invoice is
# part of every payment's transaction (the webhook path's CPU: bench/NOTES.md).
_EXISTING = sa_select(_INVOICES).where(_INVOICES.c.order_id == bindparam("b_order"))
_BUMP = (
    update(_COUNTERS)
    .where(_COUNTERS.c.year == bindparam("b_year"))
    .values(last_seq=_COUNTERS.c.last_seq + 1)
    .returning(_COUNTERS.c.last_seq)
)
_INSERT = insert(_INVOICES).returning(_INVOICES.c.id)


def _next_seq(session: Session, year: int) -> int:
    for _ in range(3):
        bumped = session.connection().execute(_BUMP, {"b_year": year}).scalar_one_or_none()
        if bumped is not None:
            return int(bumped)
        try:
            with session.begin_nested():
                session.add(InvoiceCounter(year=year, last_seq=1))
                session.flush()
            return 1
        except IntegrityError:
            continue  # another transaction opened the year first: take the update path
    raise RuntimeError(f"could not allocate an invoice number for {year}")


def issue_invoice(*, session: Session, order_id: int, issued_at: datetime | None = None) -> Invoice:
    """The order's invoice, issued now with the next number of the year if it has none.
    Runs in the caller's transaction (flushes, never commits); see the module. Returns
    the row as an ``Invoice`` not added to the session."""
    session.flush()  # the caller's pending changes before the Core statements
    existing = session.connection().execute(_EXISTING, {"b_order": order_id}).mappings().first()
    if existing is not None:
        return Invoice(**existing)
    when = issued_at or utcnow()
    seq = _next_seq(session, when.year)
    invoice = Invoice(
        order_id=order_id,
        year=when.year,
        seq=seq,
        number=NUMBER_FORMAT.format(year=when.year, seq=seq),
        issued_at=when,
    )
    invoice.id = (
        session.connection().execute(_INSERT, invoice.model_dump(exclude={"id"})).scalar_one()
    )
    return invoice


# -- the receipt as the customer sees it -----------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    title: str
    platform: str
    region: str
    quantity: int
    unit_price: str
    total: str  # after the promo discount, if any
    discount: str = ""  # "-€4.00": what promo codes took off the line


@dataclass(frozen=True, slots=True)
class Receipt:
    invoice_number: str
    issued_at: datetime
    order_number: str
    seller_name: str
    seller_address: str
    seller_vat_id: str
    buyer_email: str
    buyer_country: str
    lines: list[ReceiptLine]
    currency: str
    total: str  # VAT-inclusive
    net: str
    vat: str
    vat_rate: str  # "19%"
    status: str
    language: str = "en"  # the order's (core.i18n): its PDF speaks it


def build_receipt(*, session: Session, order: Order) -> Receipt:
    """The receipt of an order the caller has opened (core.services.portal.open_order);
    NoReceipt when it has no invoice (not paid)."""
    from core.services.vat import countries as vat_countries

    order_id = row_id(order.id)
    invoice = session.exec(select(Invoice).where(col(Invoice.order_id) == order_id)).first()
    if invoice is None:
        raise NoReceipt()
    lines = session.exec(
        select(OrderLine).where(col(OrderLine.order_id) == order_id).order_by(col(OrderLine.id))
    ).all()
    settings = get_settings()
    cur = order.currency
    name = order.country or ""
    if order.country:
        known = {c.code: c.name for c in vat_countries()}
        name = f"{known.get(order.country, order.country)} ({order.country})"
    return Receipt(
        invoice_number=invoice.number,
        issued_at=invoice.issued_at,
        order_number=order.number,
        seller_name=settings.seller_name,
        seller_address=settings.seller_address,
        seller_vat_id=settings.seller_vat_id,
        buyer_email=order.email,
        buyer_country=name,
        lines=[
            ReceiptLine(
                title=ln.title,
                platform=ln.platform,
                region=ln.region,
                quantity=ln.quantity,
                unit_price=format_money(ln.unit_price_minor, cur),
                total=format_money(ln.unit_price_minor * ln.quantity - ln.discount_minor, cur),
                discount=format_money(-ln.discount_minor, cur) if ln.discount_minor else "",
            )
            for ln in lines
        ],
        currency=cur,
        total=format_money(order.total_minor, cur),
        net=format_money(order.total_minor - order.vat_minor, cur),
        vat=format_money(order.vat_minor, cur),
        vat_rate=f"{order.vat_rate_bp / 100:g}%",
        status=order.status,
        language=order.language,
    )


def view_receipt(
    *, number: str, access_token: str | None = None, customer_id: int | None = None
) -> Receipt:
    """Open order ``number`` as the portal does (OrderNotFound) and build its receipt
    (NoReceipt before payment). One read-only transaction."""
    from core.services.portal import open_order

    with session_scope(write=False) as session:
        order = open_order(
            session=session, number=number, access_token=access_token, customer_id=customer_id
        )
        return build_receipt(session=session, order=order)


# -- PDF --------------------------------------------------------------------------------


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def receipt_pdf(receipt: Receipt) -> bytes:
    """The receipt as a one-page (or longer) A4 PDF, in the language of the order."""
    with i18n.use_language(receipt.language):
        return _receipt_pdf(receipt)


def _receipt_pdf(receipt: Receipt) -> bytes:
    from fpdf import FPDF

    _ = i18n.gettext
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(_("Receipt %(number)s") % {"number": receipt.invoice_number}))
    pdf.set_author(_latin1(receipt.seller_name))
    pdf.set_creation_date(receipt.issued_at)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    heading = _("Receipt / Invoice %(number)s") % {"number": receipt.invoice_number}
    pdf.cell(0, 10, _latin1(heading), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for text in (
        receipt.seller_name,
        receipt.seller_address,
        _("VAT number: %(id)s") % {"id": receipt.seller_vat_id} if receipt.seller_vat_id else "",
        "",
        _("Date: %(date)s") % {"date": i18n.format_date(receipt.issued_at)},
        _("Order: %(number)s") % {"number": receipt.order_number},
        _("Customer: %(email)s") % {"email": receipt.buyer_email},
        _("Country: %(country)s") % {"country": receipt.buyer_country}
        if receipt.buyer_country
        else "",
    ):
        if text or text == "":
            pdf.cell(0, 5.5, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    code = receipt.currency
    with pdf.table(
        col_widths=(90, 20, 35, 35), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT")
    ) as table:
        table.row(
            (
                _("Item"),
                _("Qty"),
                _("Unit (%(currency)s)") % {"currency": code},
                _("Total (%(currency)s)") % {"currency": code},
            )
        )
        for line in receipt.lines:
            promo = (
                _(", promo %(amount)s %(currency)s")
                % {"amount": _plain(line.discount), "currency": code}
                if line.discount
                else ""
            )
            table.row(
                (
                    _latin1(f"{line.title} ({line.platform}, {line.region})" + promo),
                    str(line.quantity),
                    _plain(line.unit_price),
                    _plain(line.total),
                )
            )
    pdf.ln(4)
    for label, value in (
        (_("Net"), receipt.net),
        (_("VAT %(rate)s") % {"rate": receipt.vat_rate}, receipt.vat),
        (_("Total paid (VAT included)"), receipt.total),
    ):
        pdf.cell(145, 6, _latin1(label), align="R")
        pdf.cell(35, 6, _plain(value) + f" {code}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(
        0,
        4,
        _latin1(
            _(
                "Digital content delivered immediately at the customer's express request; the "
                "customer acknowledged that revealing a key ends the right of withdrawal for it."
            )
        ),
    )
    return bytes(pdf.output())


def _plain(amount: str) -> str:
    """``€19.99`` → ``19.99`` (the PDF's core font has no euro sign; the code is shown)."""
    return _latin1("".join(ch for ch in amount if ch.isdigit() or ch in ".,-"))
