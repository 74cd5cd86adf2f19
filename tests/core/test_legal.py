"""Legal pages: stored in the database in Markdown, written by the operator, audited."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.errors import InvalidInput
from core.models import AuditEvent
from core.services.audit import Actor
from core.services.legal import NOT_WRITTEN, UnknownPage, get_page, set_page


def test_a_page_not_written_yet_says_so(session):
    page = get_page(session=session, slug="terms")
    assert (page.title, page.body, page.updated_at) == ("Terms and conditions", NOT_WRITTEN, None)


def test_the_operator_writes_a_page_in_markdown_and_it_is_audited(session):
    set_page(
        session=session, slug="Imprint", body="# Us\r\n\nExample GmbH", actor=Actor.operator("ann")
    )
    session.commit()
    page = get_page(session=session, slug="imprint")
    assert page.title == "Imprint and contact" and page.body == "# Us\n\nExample GmbH"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "legal.update")).one()
    assert (event.actor_id, event.object_id) == ("ann", "imprint")


@pytest.mark.parametrize(("slug", "body", "error"), [
    ("cookies", "text", UnknownPage), ("terms", "   ", InvalidInput),
])  # fmt: skip
def test_bad_pages_are_refused(session, slug, body, error):
    with pytest.raises(error):
        set_page(session=session, slug=slug, body=body, actor=Actor.operator("ann"))
