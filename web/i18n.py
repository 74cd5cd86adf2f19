"""The storefront in every language of ``core.i18n``.

- Each page is added once per language (:func:`add_localised_page`): the English one at
  its route, the German one under ``/de``. Reflex compiles the page's component tree
  ahead of time, so the tree is built inside ``use_language``: every ``_("...")`` in
  ``web/pages`` and ``web/components`` is German in the German build, and every
  internal link goes through ``localised_path``.
- :class:`LanguageMiddleware` sets the language in force for each event from the page
  that sent it (``/de/...`` is German), so what the states compute (messages, money,
  dates, redirects) speaks the page's language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.middleware import Middleware

from core.i18n import LANGUAGES, gettext, localised_path, set_language, split_path, use_language


def page_language(path: str) -> str:
    """The language of the page at ``path`` (its route or its address)."""
    return split_path(path or "/")[0]


class LanguageMiddleware(Middleware):
    """Every event is handled in the language of the page it came from."""

    async def preprocess(self, app: Any, state: Any, event: Any) -> None:
        try:
            path = state.router.url.path
        except AttributeError:  # no router data yet (the very first hydrate)
            path = "/"
        set_language(page_language(path))
        return None


def _built_in(component: Callable[[], rx.Component], language: str) -> Callable[[], Any]:
    def build() -> Any:
        with use_language(language):
            return component()

    build.__name__ = f"{component.__name__}_{language}"
    build.__qualname__ = build.__name__
    return build


def add_localised_page(
    app: rx.App, component: Callable[[], rx.Component], *, route: str, title: Any, **kwargs: Any
) -> None:
    """Add ``component`` at ``route`` in every language; ``title`` is an English message
    (translated per language) or a state var (the state translates it)."""
    for language in LANGUAGES if route != "404" else LANGUAGES[:1]:
        with use_language(language):
            page_title = gettext(title) if isinstance(title, str) else title
        app.add_page(
            _built_in(component, language),
            route=route if route == "404" else localised_path(route, language),
            title=page_title,
            **kwargs,
        )


__all__ = ["LanguageMiddleware", "add_localised_page", "page_language"]
