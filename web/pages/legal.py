"""A legal page: its title, its Markdown, when it was last updated."""

from __future__ import annotations

import reflex as rx

from web.components.layout import page
from web.state.legal import LegalState


def legal() -> rx.Component:
    return page(
        rx.heading(LegalState.title, size="7", margin_bottom="0.5em", id="legal-title"),
        rx.box(rx.markdown(LegalState.body), id="legal-body", max_width="48em"),
        rx.text(LegalState.updated, size="1", color_scheme="gray", margin_top="1em"),
    )
