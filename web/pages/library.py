"""_("My keys"): the customer's keys across orders."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.i18n import gettext as _
from core.i18n import localised_path
from web.components.layout import callout_error, page
from web.state.library import LibraryState


def library_key(key: Any) -> rx.Component:
    key_id = key["id"].to(str)
    return rx.card(
        rx.flex(
            rx.vstack(
                rx.text(key["title"], weight="bold"),
                rx.hstack(
                    rx.badge(key["platform"]),
                    rx.badge(key["region"], variant="outline"),
                    rx.cond(
                        key["status"] != "delivered", rx.badge(key["status"], color_scheme="red")
                    ),
                    wrap="wrap",
                ),
                rx.text(
                    _("Order"),
                    " ",
                    rx.link(key["order"], href=localised_path("/orders/") + key["order"].to(str)),
                    " · ",
                    key["delivered"],
                    size="1",
                    color_scheme="gray",
                ),
                spacing="1",
                flex="1",
                min_width="12em",
            ),
            rx.box(
                rx.code(key["masked"], id="masked-" + key_id, size="3"),
                rx.el.code(
                    id="code-" + key_id,
                    class_name="key-code",
                    data_key_id=key_id,
                    style={"fontSize": "1.05em", "userSelect": "all", "wordBreak": "break-all"},
                ),
            ),
            rx.hstack(
                rx.cond(
                    key["can_reveal"].to(bool),
                    rx.button(
                        rx.icon("eye", size=14),
                        _("Reveal"),
                        variant="soft",
                        on_click=LibraryState.reveal(key_id),
                        class_name="library-reveal",
                        data_key_id=key_id,
                    ),
                ),
                rx.cond(
                    key["needs_consent"].to(bool),
                    rx.link(
                        _("Confirm on the order page to reveal"),
                        href=localised_path("/orders/") + key["order"].to(str),
                        size="2",
                    ),
                ),
                rx.cond(
                    key["activation_url"] != "",
                    rx.link(
                        rx.button(
                            rx.icon("external-link", size=14), _("Activate"), variant="outline"
                        ),
                        href=key["activation_url"].to(str),
                        is_external=True,
                    ),
                ),
                wrap="wrap",
            ),
            gap="1em",
            align="center",
            wrap="wrap",
            justify="between",
        ),
        class_name="library-key",
        width="100%",
    )


def library() -> rx.Component:
    return page(
        callout_error(LibraryState.error),
        rx.text(
            _("Every key of your orders. Revealing one again is recorded, as on the order page."),
            size="2",
            color_scheme="gray",
        ),
        rx.cond(
            LibraryState.keys.length() > 0,  # type: ignore[attr-defined]
            rx.vstack(rx.foreach(LibraryState.keys, library_key), width="100%", id="library"),
            rx.cond(
                LibraryState.loaded,
                rx.text(
                    _("No keys yet. Keys you buy while signed in appear here."), id="library-empty"
                ),
                rx.spinner(),
            ),
        ),
        title=_("My keys"),
    )
