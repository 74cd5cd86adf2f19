"""The legal pages a shop selling to consumers must show: terms, privacy, imprint and
contact, the right of withdrawal. The operator writes them in Markdown (CLI
``keyshop pages set``, the console); they live in the database (:class:`LegalPage`) and
the storefront shows them at ``/legal/<slug>``, linked from every footer and from
checkout. A page not written yet says so instead of showing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import Session

from core.errors import InvalidInput, NotFound
from core.models import LegalPage, utcnow
from core.services.audit import Actor, record_audit

#: Every legal page, by slug, with its default title.
PAGES: Final[dict[str, str]] = {
    "terms": "Terms and conditions",
    "privacy": "Privacy policy",
    "imprint": "Imprint and contact",
    "withdrawal": "Right of withdrawal",
}
MAX_BODY: Final = 200_000
NOT_WRITTEN: Final = "This page has not been written yet. Please contact us if you need it."


class UnknownPage(NotFound):
    code = "unknown_page"


@dataclass(frozen=True, slots=True)
class PageView:
    slug: str
    title: str
    body: str  # Markdown
    updated_at: datetime | None


def _slug(slug: str) -> str:
    value = (slug or "").strip().lower()
    if value not in PAGES:
        raise UnknownPage(
            f"no legal page {slug!r}; the pages are: {', '.join(PAGES)}", slug=str(slug)[:40]
        )
    return value


def get_page(*, session: Session, slug: str) -> PageView:
    """The page as the storefront shows it (UnknownPage for a slug not in PAGES)."""
    key = _slug(slug)
    row = session.get(LegalPage, key)
    if row is None:
        return PageView(key, PAGES[key], NOT_WRITTEN, None)
    return PageView(key, row.title, row.body, row.updated_at)


def list_pages(*, session: Session) -> list[PageView]:
    """Every legal page in PAGES order, written or not."""
    return [get_page(session=session, slug=slug) for slug in PAGES]


def check_page_text(body: str) -> str:
    """``body`` as it is stored (line ends normalised, stripped), or InvalidInput: the one
    rule, used by :func:`set_page` and by the console's editor before it closes."""
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise InvalidInput("the page is empty", field="body")
    if len(text) > MAX_BODY:
        raise InvalidInput(f"the page is longer than {MAX_BODY} characters", field="body")
    return text


def set_page(
    *, session: Session, slug: str, body: str, actor: Actor, title: str | None = None
) -> PageView:
    """Write a page's Markdown (and optionally its title); audited as ``legal.update``.
    Runs in the caller's transaction. Refuses an unknown slug, an empty body or one over
    MAX_BODY characters."""
    key = _slug(slug)
    text = check_page_text(body)
    heading = (title or "").strip()[:200]
    row = session.get(LegalPage, key)
    if row is None:
        row = LegalPage(slug=key, title=heading or PAGES[key], body=text)
    else:
        row.body, row.title = text, heading or row.title
    row.updated_at, row.updated_by = utcnow(), str(actor)[:160]
    session.add(row)
    session.flush()
    record_audit(
        session=session,
        actor=actor,
        action="legal.update",
        object_type="legal_page",
        object_id=key,
        data={"title": row.title, "characters": len(text)},
    )
    return PageView(key, row.title, row.body, row.updated_at)
