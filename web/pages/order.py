"""The order page with its key portal."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import N_, localised_path
from core.i18n import gettext as _
from web.components.layout import callout_error, page
from web.state.order import OrderState

STEPS = [N_("Ordered"), N_("Paid"), N_("Delivering"), N_("Delivered")]


def progress() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading(
                OrderState.status_label,
                as_="h2",
                size="6",
                id="order-status",
                data_status=OrderState.status,
            ),
            rx.cond(
                OrderState.live,
                rx.badge(
                    _("live"),
                    color_scheme="green",
                    variant="soft",
                    high_contrast=True,
                    id="live-badge",
                ),
            ),
            align="center",
        ),
        rx.progress(
            value=OrderState.progress,
            max=100,
            width="100%",
            max_width="32em",
            aria_label=_("Order progress"),
        ),
        rx.cond(
            OrderState.payment_note != "",
            rx.text(OrderState.payment_note, size="2", id="payment-note"),
        ),
        rx.hstack(
            *[rx.text(_(step), size="1", color_scheme="gray") for step in STEPS],
            justify="between",
            width="100%",
            max_width="32em",
        ),
        spacing="2",
        width="100%",
    )


# The portal's two bits of browser code. A revealed key goes into an element React does
# not manage (no children in the component tree), so no re-render ever overwrites or
# keeps it; copying happens in the click itself, without a round trip to the server.
PORTAL_SCRIPT = """
window.ksShowKey = function (id, code, imageUrl, tries) {
  const el = document.getElementById('code-' + id);
  const masked = document.getElementById('masked-' + id);
  if (!el) {  // shown again on load: the page may not have drawn the key's row yet
    if ((tries || 0) < 50) {
      setTimeout(() => window.ksShowKey(id, code, imageUrl, (tries || 0) + 1), 100);
    }
    return;
  }
  if (code !== null) { el.textContent = code; }
  else { const img = document.createElement('img'); img.src = imageUrl; img.alt = 'Key image';
         img.style.maxWidth = '100%'; el.replaceChildren(img); }
  el.dataset.revealed = '1';
  if (masked) masked.style.display = 'none';
  const note = document.getElementById('copied-' + id);
  if (note) note.textContent = '';
};
window.ksCopyKey = function (id) {
  const el = document.getElementById('code-' + id);
  const note = document.getElementById('copied-' + id);
  if (!el || el.dataset.revealed !== '1') {
    if (note) note.textContent = 'Reveal the key first';
    return;
  }
  navigator.clipboard.writeText(el.textContent).then(
    () => { if (note) note.textContent = 'Copied'; },
    () => { if (note) note.textContent = 'Copy failed: select the key and copy it by hand'; });
};
"""


def key_row(key: Any, line: Any) -> rx.Component:
    key_id = key["id"].to(str)
    return rx.flex(
        rx.box(
            rx.code(key["masked"], id="masked-" + key_id, size="4"),
            rx.el.code(
                id="code-" + key_id,
                class_name="key-code",
                data_key_id=key_id,
                style={"fontSize": "1.1em", "userSelect": "all", "wordBreak": "break-all"},
            ),
        ),
        rx.hstack(
            rx.button(
                rx.icon("eye", size=14),
                _("Reveal"),
                variant="soft",
                on_click=OrderState.reveal(key_id),
                disabled=~OrderState.consent_given,
                class_name="reveal-key",
                data_key_id=key_id,
            ),
            rx.button(
                rx.icon("copy", size=14),
                _("Copy"),
                variant="soft",
                color_scheme="gray",
                on_click=rx.call_script("window.ksCopyKey('" + key_id + "')"),
                class_name="copy-key",
                data_key_id=key_id,
            ),
            rx.el.span(id="copied-" + key_id, class_name="copy-note", style={"fontSize": "0.8em"}),
            rx.cond(
                line["activation_url"] != "",
                rx.link(
                    rx.button(rx.icon("external-link", size=14), _("Activate"), variant="outline"),
                    href=line["activation_url"].to(str),
                    is_external=True,
                ),
            ),
            rx.cond(
                key[_("reported")].to(bool),
                rx.badge(_("reported"), color_scheme="amber"),
                rx.button(
                    _("Report a problem"),
                    variant="ghost",
                    color_scheme="red",
                    size="1",
                    on_click=OrderState.open_report(key_id),
                    class_name="report-key",
                ),
            ),
            wrap="wrap",
            spacing="2",
        ),
        gap="1em",
        align="center",
        wrap="wrap",
        justify="between",
        width="100%",
        padding_y="0.5em",
        border_top="1px solid var(--gray-a4)",
    )


def order_line(line: Any) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(line["qty"], " × ", line["title"], weight="bold"),  # noqa: RUF001
                rx.badge(line["platform"]),
                rx.badge(line["region"], variant="outline"),
                rx.cond(
                    line["preorder"].to(bool),
                    rx.badge(_("Pre-order"), color_scheme="amber", class_name="preorder-badge"),
                ),
                wrap="wrap",
            ),
            rx.foreach(line["keys"].to(list[dict[str, Any]]), lambda key: key_row(key, line)),
            rx.cond(
                line["pending"].to(int) > 0,
                rx.hstack(
                    rx.spinner(size="1"),
                    rx.text(line["pending"], " ", _("key(s) on the way"), size="2"),
                ),
            ),
            rx.cond(
                line["activation_instructions"] != "",
                rx.text(
                    line["activation_instructions"],
                    size="1",
                    color_scheme="gray",
                    white_space="pre-line",
                ),
            ),
            spacing="2",
            width="100%",
        ),
        class_name="order-line",
        width="100%",
    )


def report_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(_("Report a problem with this key")),
            rx.dialog.description(
                _("Tell us what happens when you activate it. An operator will look at it.")
            ),
            rx.form(
                rx.vstack(
                    rx.text_area(
                        name="message",
                        placeholder=_("e.g. Steam says the key is already used"),
                        max_length=2000,
                        required=True,
                        id="report-message",
                        width="100%",
                    ),
                    rx.hstack(
                        rx.dialog.close(
                            rx.button(
                                _("Cancel"), variant="soft", color_scheme="gray", type="button"
                            )
                        ),
                        rx.button(_("Send report"), type="submit", id="send-report"),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                ),
                on_submit=OrderState.send_report,
            ),
        ),
        open=OrderState.report_open,
        on_open_change=OrderState.set_report_open,
    )


def consent_box() -> rx.Component:
    """Asked once per order, before the first reveal (core.services.consent)."""
    return rx.cond(
        OrderState.has_keys & ~OrderState.consent_given,
        rx.callout(
            rx.vstack(
                rx.text(
                    _(
                        "Before you reveal a key: you can withdraw from this purchase within "
                        "14 days until you reveal a key."
                    ),
                    " ",
                    rx.link(
                        _("Right of withdrawal"),
                        href=localised_path("/legal/withdrawal"),
                        underline="always",
                        color_scheme="gray",
                        high_contrast=True,  # on the amber box: 4.5:1 (axe)
                    ),
                    size="2",
                ),
                rx.checkbox(
                    OrderState.consent_text,
                    checked=OrderState.consent_given,
                    on_change=OrderState.give_consent,
                    id="consent",
                    size="3",
                ),
                spacing="2",
            ),
            icon="scale",
            color_scheme="amber",
            high_contrast=True,  # amber text on amber is under 4.5:1 otherwise (axe)
            id="consent-box",
        ),
    )


def order() -> rx.Component:
    return page(
        rx.cond(
            OrderState.found,
            rx.vstack(
                rx.heading(
                    _("Order"), " ", OrderState.number, as_="h1", size="7", id="order-number"
                ),
                rx.text(
                    _("Placed"),
                    " ",
                    OrderState.created,
                    " · ",
                    OrderState.total,
                    " · ",
                    OrderState.email,
                    size="2",
                    color_scheme="gray",
                ),
                rx.text(OrderState.vat, size="2", color_scheme="gray", id="order-vat"),
                rx.cond(
                    OrderState.promo_text != "",
                    rx.text(OrderState.promo_text, size="2", color_scheme="gray", id="order-promo"),
                ),
                rx.cond(
                    OrderState.balances_text != "",
                    rx.text(
                        OrderState.balances_text, size="2", color_scheme="gray", id="order-balances"
                    ),
                ),
                rx.cond(
                    OrderState.receipt_url != "",
                    rx.hstack(
                        rx.link(_("Receipt"), href=OrderState.receipt_url, id="receipt-link"),
                        rx.link(
                            _("Receipt (PDF)"), href=OrderState.receipt_pdf_url, id="receipt-pdf"
                        ),
                        spacing="4",
                    ),
                ),
                progress(),
                rx.text(
                    _(
                        "Keys stay hidden until you reveal them; each reveal is recorded. Keep "
                        "this page's link private: it opens your keys."
                    ),
                    size="2",
                ),
                rx.cond(
                    OrderState.need_code,
                    rx.hstack(
                        rx.text(_("Two-factor code for revealing keys:"), size="2"),
                        rx.input(
                            value=OrderState.reveal_code,
                            on_change=OrderState.set_reveal_code,
                            placeholder="123456",
                            auto_complete="one-time-code",
                            id="reveal-code",
                            aria_label=_("Two-factor code for revealing keys"),
                            max_length=64,
                        ),
                        align="center",
                        wrap="wrap",
                    ),
                ),
                consent_box(),
                rx.foreach(OrderState.lines, order_line),
                report_dialog(),
                spacing="4",
                width="100%",
            ),
            rx.vstack(
                rx.heading(_("Order not found"), size="6"),
                callout_error(OrderState.error),
                rx.text(
                    _(
                        "Use the link from your order e-mail, or sign in to the account you ordered with."
                    )
                ),
                rx.link(_("Sign in"), href=localised_path("/signin")),
                rx.link(_("Find my order"), href=localised_path("/find-order")),
            ),
        ),
    )
