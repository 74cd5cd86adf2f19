"""Writing the legal pages, as an operator action that owns its transaction (the CLI's
``keyshop pages set`` and the console's Legal screen)."""

from __future__ import annotations

from core.db import session_scope
from core.services.audit import Actor
from core.services.legal import PageView, set_page


def save_legal_page(*, slug: str, body: str, operator: str, title: str | None = None) -> PageView:
    """Replace the Markdown (and optionally the title) of the legal page ``slug``;
    audited as ``legal.update`` under ``operator``. Bad input changes nothing."""
    with session_scope() as session:
        return set_page(
            session=session, slug=slug, body=body, title=title, actor=Actor.operator(operator)
        )
