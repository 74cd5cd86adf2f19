"""The legal pages (terms, privacy, imprint, withdrawal): Markdown from the database
(core.services.legal), rendered by the page without raw HTML."""

from __future__ import annotations

from typing import Any

import reflex as rx

from core.db import session_scope
from core.i18n import gettext as _
from web.state.base import ShopState, error_text, in_thread
from web.state.format import day


class LegalState(ShopState):
    title: str = ""
    body: str = ""
    updated: str = ""
    found: bool = True

    @rx.event
    async def load(self) -> None:
        from core.services.legal import get_page

        slug = self.router.url.path.rstrip("/").rsplit("/", 1)[-1][:40]

        def work() -> Any:
            with session_scope(write=False) as session:
                return get_page(session=session, slug=slug)

        try:
            page = await in_thread(work)
        except Exception as exc:
            self.found, self.title, self.body, self.updated = False, _("Page not found"), "", ""
            self.body = error_text(exc)
            return
        self.found, self.title, self.body = True, page.title, page.body
        self.updated = (
            _("Last updated %(date)s") % {"date": day(page.updated_at)} if page.updated_at else ""
        )
