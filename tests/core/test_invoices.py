"""Receipts: one per paid order, numbered without gaps per year, with the VAT breakdown,
as data for the page and as a PDF (issue #14 item 3)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from core.db import session_scope
from core.models import Invoice, OrderStatus
from core.services.audit import Actor
from core.services.invoices import NoReceipt, issue_invoice, receipt_pdf, view_receipt
from core.services.notifications import order_access_token
from core.services.orders import transition_order
from core.services.portal import OrderNotFound
from tests.factories import fresh, make_order, make_product

SYSTEM = Actor.system("test")


def pay(order_id: int) -> None:
    with session_scope() as s:
        transition_order(session=s, order_id=order_id, to_status=OrderStatus.PAID, actor=SYSTEM)


def test_paying_issues_numbers_in_order_and_once(session):
    product = make_product(session, price_minor=1190)
    orders = [
        make_order(session, [(product, 1)], status="pending_payment", country="DE",
                   vat_rate_bp=1900, vat_minor=190)
        for _ in range(3)
    ]  # fmt: skip
    for order in orders:
        pay(order.id)
    year = datetime.now(UTC).year
    numbers = [i.number for i in fresh(session).exec(select(Invoice).order_by(Invoice.seq))]
    assert numbers == [f"{year}-000001", f"{year}-000002", f"{year}-000003"]
    with session_scope() as s:  # issuing again changes nothing
        assert issue_invoice(session=s, order_id=orders[0].id).number == numbers[0]


def test_a_rolled_back_payment_leaves_no_gap(session):
    product = make_product(session)
    first, second = (make_order(session, [(product, 1)], status="pending_payment") for _ in "ab")
    with pytest.raises(RuntimeError), session_scope() as s:
        transition_order(session=s, order_id=first.id, to_status=OrderStatus.PAID, actor=SYSTEM)
        raise RuntimeError("the payment's transaction fails after the number was taken")
    pay(second.id)
    assert [i.seq for i in fresh(session).exec(select(Invoice))] == [1]
    years = [
        issue_invoice(
            session=session, order_id=first.id, issued_at=datetime(2031, 1, 1, tzinfo=UTC)
        )
    ]
    session.commit()
    assert years[0].number == "2031-000001"  # each year starts again at 1


def test_concurrent_payments_take_distinct_consecutive_numbers(session):
    product = make_product(session)
    orders = [make_order(session, [(product, 1)], status="pending_payment") for _ in range(8)]
    errors: list[BaseException] = []

    def run(order_id: int) -> None:
        try:
            pay(order_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(o.id,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(i.seq for i in fresh(session).exec(select(Invoice))) == list(range(1, 9))


def test_the_receipt_shows_seller_vat_breakdown_and_renders_as_pdf(session):
    product = make_product(session, title="Receipt Rally", price_minor=1190)
    order = make_order(
        session, [(product, 2)], status="pending_payment", country="DE", vat_rate_bp=1900,
        vat_minor=380,
    )  # fmt: skip
    token = order_access_token(order.number)
    with pytest.raises(NoReceipt):
        view_receipt(number=order.number, access_token=token)
    pay(order.id)
    with pytest.raises(OrderNotFound):
        view_receipt(number=order.number, access_token="nope")
    receipt = view_receipt(number=order.number, access_token=token)
    assert (receipt.total, receipt.net, receipt.vat, receipt.vat_rate) == (
        "€23.80", "€20.00", "€3.80", "19%"
    )  # fmt: skip
    assert receipt.buyer_country == "Germany (DE)" and receipt.seller_name
    assert [(ln.title, ln.quantity, ln.total) for ln in receipt.lines] == [
        ("Receipt Rally", 2, "€23.80")
    ]
    pdf = receipt_pdf(receipt)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 1000


def _pdf_text(pdf: bytes) -> bytes:
    """The page content of an fpdf2 PDF, its compressed streams inflated.

    A stream's data runs up to the end-of-line before ``endstream``. The data is taken
    with that end-of-line and inflated up to the end of the deflate stream, which leaves
    the end-of-line over: stripping an optional carriage return by pattern would cut
    compressed data whose last byte happens to be 0x0D (the order number, and so the
    bytes, vary)."""
    import re
    import zlib

    out = b""
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, flags=re.S):
        try:
            out += zlib.decompressobj().decompress(stream)
        except zlib.error:
            out += stream
    return out


def test_pdf_text_inflates_a_stream_whose_data_ends_in_a_carriage_return():
    import zlib

    text = next(
        t
        for t in (f"Receipt / Invoice {n}".encode() for n in range(100_000))
        if zlib.compress(t)[-1:] == b"\r"
    )
    pdf = b"1 0 obj\n<< >>\nstream\n" + zlib.compress(text) + b"\nendstream\nendobj\n"
    assert text in _pdf_text(pdf)


def test_the_receipt_pdf_speaks_the_language_of_the_order(session):
    product = make_product(session, title="Beleg Rally", price_minor=1190)
    texts = {}
    for language in ("de", "en"):
        order = make_order(
            session, [(product, 1)], status="pending_payment", country="DE", vat_rate_bp=1900,
            vat_minor=190, language=language,
        )  # fmt: skip
        pay(order.id)
        receipt = view_receipt(number=order.number, access_token=order_access_token(order.number))
        assert receipt.language == language
        texts[language] = _pdf_text(receipt_pdf(receipt))
    assert b"Beleg / Rechnung" in texts["de"] and b"Netto" in texts["de"]
    assert b"Bezahlt" in texts["de"] and b"Receipt" not in texts["de"]
    assert b"Receipt / Invoice" in texts["en"] and b"Net" in texts["en"]
    assert b"Beleg" not in texts["en"].replace(b"Beleg Rally", b"")
