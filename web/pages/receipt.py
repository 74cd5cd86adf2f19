"""The receipt page: seller, buyer, lines, net, VAT and total, and the PDF."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import gettext as _
from web.components.layout import callout_error, page
from web.state.receipt import ReceiptState


def receipt_line(line: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell(line["title"], " (", line["platform"], ", ", line["region"], ")"),
        rx.table.cell(line["quantity"], text_align="right"),
        rx.table.cell(line["unit_price"], text_align="right"),
        rx.table.cell(
            line["total"],
            rx.cond(line["discount"] != "", rx.text("promo ", line["discount"], size="1")),
            text_align="right",
        ),
    )


def receipt() -> rx.Component:
    r = ReceiptState.receipt
    return page(
        rx.cond(
            ReceiptState.found,
            rx.vstack(
                rx.heading(_("Receipt"), " ", r["invoice_number"], size="7", id="receipt-number"),
                rx.text(r["seller_name"], weight="bold"),
                rx.text(r["seller_address"], size="2"),
                rx.cond(r["seller_vat_id"] != "", rx.text(_("VAT number: "), r["seller_vat_id"])),
                rx.text(
                    _("Date"),
                    " ",
                    r["issued"],
                    " · ",
                    _("Order"),
                    " ",
                    r["order_number"],
                    " · ",
                    r["buyer_email"],
                    size="2",
                    color_scheme="gray",
                ),
                rx.cond(r["buyer_country"] != "", rx.text(_("Country: "), r["buyer_country"])),
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell(_("Item")),
                            rx.table.column_header_cell(_("Qty"), text_align="right"),
                            rx.table.column_header_cell(_("Unit"), text_align="right"),
                            rx.table.column_header_cell(_("Total"), text_align="right"),
                        )
                    ),
                    rx.table.body(rx.foreach(ReceiptState.lines, receipt_line)),
                    width="100%",
                ),
                rx.vstack(
                    rx.text(_("Net: "), r["net"], id="receipt-net"),
                    rx.text(_("VAT"), " ", r["vat_rate"], ": ", r["vat"], id="receipt-vat"),
                    rx.heading(_("Total paid: "), r["total"], size="5", id="receipt-total"),
                    align="end",
                    width="100%",
                ),
                rx.link(
                    rx.button(rx.icon("file-down", size=16), _("Download PDF"), variant="soft"),
                    href="/api/receipts/" + ReceiptState.number + ".pdf",
                    id="receipt-pdf-link",
                    is_external=True,
                ),
                spacing="3",
                width="100%",
                max_width="48em",
            ),
            rx.vstack(
                rx.heading(_("Receipt not available"), size="6"), callout_error(ReceiptState.error)
            ),
        ),
    )
