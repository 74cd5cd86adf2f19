"""Title suggestions for the header's search box, as the shopper types."""

from __future__ import annotations

import reflex as rx

from core.db import session_scope
from web.state.base import in_thread

MIN_CHARS = 2


class SuggestState(rx.State):
    suggestions: list[str] = []

    @rx.event
    async def suggest(self, value: str) -> None:
        from core.services.catalogue.fuzzy import suggest_titles

        text = str(value or "")[:200]
        if len(text.strip()) < MIN_CHARS:
            self.suggestions = []
            return

        def work() -> list[tuple[str, str]]:
            with session_scope(write=False) as session:
                return suggest_titles(session=session, query=text)

        try:
            pairs = await in_thread(work)
        except Exception:  # suggestions are a help, never an error on the page
            pairs = []
        self.suggestions = [title for _, title in pairs]
