"""The customer's language: English and German, through gettext catalogues (Babel).

- :data:`LANGUAGES` the shop speaks, English first (the default and the source language
  of every message);
- :func:`gettext` (imported as ``_``) and :func:`ngettext` translate into the language
  in force: :func:`use_language` sets it for a block (an e-mail being rendered, a page
  being built, an event being handled), :func:`current_language` reads it;
- :func:`negotiate` picks the language from a browser's ``Accept-Language``;
- :func:`localised_path` / :func:`split_path`: German pages live under ``/de/...``,
  English ones at the root (README "Two languages");
- :func:`format_date` and :func:`format_datetime`: dates for the locale (money is
  :func:`core.money.format_money` with ``language=``).

The catalogues are ``core/locale/<lang>/LC_MESSAGES/messages.po``, compiled to ``.mo``
by ``./dev setup`` (``pybabel compile``); a missing compiled German catalogue is an
error naming that step, never a silent English page.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Final

from babel import Locale, UnknownLocaleError
from babel import dates as _dates
from babel.support import Translations

LANGUAGES: Final = ("en", "de")
DEFAULT_LANGUAGE: Final = "en"
#: Each language named in itself, for the switcher.
LANGUAGE_NAMES: Final = {"en": "English", "de": "Deutsch"}
LOCALE_DIR: Final = Path(__file__).parent / "locale"
DOMAIN: Final = "messages"

_current: ContextVar[str] = ContextVar("keyshop_language", default=DEFAULT_LANGUAGE)


class CatalogueMissing(RuntimeError):
    """A language's compiled catalogue is not there: ``./dev setup`` compiles them."""


def normalise_language(value: str | None) -> str:
    """``"de"``, ``"DE"``, ``"de-AT"`` → ``"de"``; anything the shop does not speak →
    the default language."""
    code = (value or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalogue of ``language`` (English is the source: no catalogue)."""
    if language == DEFAULT_LANGUAGE:
        return _gettext.NullTranslations()
    found = Translations.load(str(LOCALE_DIR), [language], DOMAIN)
    if not isinstance(found, Translations):
        raise CatalogueMissing(
            f"no compiled {language} catalogue in {LOCALE_DIR}: run ./dev setup "
            "(pybabel compile -d core/locale)"
        )
    return found


def current_language() -> str:
    return _current.get()


@contextmanager
def use_language(language: str | None) -> Iterator[str]:
    """Translate into ``language`` (normalised) inside the block."""
    code = normalise_language(language)
    token = _current.set(code)
    try:
        yield code
    finally:
        _current.reset(token)


def set_language(language: str | None) -> str:
    """Translate into ``language`` from here on in this context (an event handler's
    task); :func:`use_language` is the scoped form."""
    code = normalise_language(language)
    _current.set(code)
    return code


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue; it is translated where it is shown."""
    return message


def negotiate(accept_language: str | None) -> str:
    """The language a browser asks for first among those the shop speaks, by the
    ``q`` weights of its ``Accept-Language`` (the default when it names none)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:400].split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        code = tag.strip().lower().split("-", 1)[0]
        if code in LANGUAGES and quality > 0:
            weighted.append((-quality, index, code))
    return min(weighted)[2] if weighted else DEFAULT_LANGUAGE


# -- addresses ---------------------------------------------------------------------------


def localised_path(path: str, language: str | None = None) -> str:
    """The address of ``path`` (an English path: ``/games/x``) in ``language`` (default:
    the one in force): ``/de/games/x`` in German, unchanged in English."""
    code = normalise_language(language or _current.get())
    if code == DEFAULT_LANGUAGE:
        return path
    if path == "/" or path == "":
        return f"/{code}"
    return f"/{code}{path}"


def split_path(path: str) -> tuple[str, str]:
    """``/de/games/x`` → ``("de", "/games/x")``; ``/games/x`` → ``("en", "/games/x")``."""
    for code in LANGUAGES:
        if code == DEFAULT_LANGUAGE:
            continue
        if path == f"/{code}" or path == f"/{code}/":
            return code, "/"
        if path.startswith(f"/{code}/"):
            return code, path[len(code) + 1 :]
    return DEFAULT_LANGUAGE, path


# -- dates -------------------------------------------------------------------------------


def _locale(language: str | None) -> Locale:
    try:
        return Locale.parse(normalise_language(language or _current.get()))
    except (UnknownLocaleError, ValueError):  # pragma: no cover - both codes are known
        return Locale.parse(DEFAULT_LANGUAGE)


def format_date(value: date, language: str | None = None) -> str:
    """A day for the locale: ``05 Dec 2026`` in English (the shop's format since its
    first page), Babel's medium form elsewhere (``05.12.2026``)."""
    code = normalise_language(language or _current.get())
    if code == DEFAULT_LANGUAGE:
        return value.strftime("%d %b %Y")
    return _dates.format_date(value, format="medium", locale=_locale(code))


def format_datetime(value: datetime, language: str | None = None) -> str:
    """A moment in UTC for the locale, saying so: ``05 Dec 2026, 14:03 UTC`` /
    ``05.12.2026, 14:03 UTC``."""
    code = normalise_language(language or _current.get())
    if code == DEFAULT_LANGUAGE:
        return value.strftime("%d %b %Y, %H:%M UTC")
    day = _dates.format_date(value, format="medium", locale=_locale(code))
    return f"{day}, {value:%H:%M} UTC"


__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_NAMES",
    "N_",
    "CatalogueMissing",
    "current_language",
    "format_date",
    "format_datetime",
    "gettext",
    "localised_path",
    "negotiate",
    "ngettext",
    "normalise_language",
    "set_language",
    "split_path",
    "use_language",
]
