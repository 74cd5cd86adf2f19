"""Back-in-stock requests on the product page, and the links of their e-mails."""

from __future__ import annotations

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from core.models import StockAlert
from core.services import stock_alerts
from core.signing import make_token
from tests.factories import fresh, make_product
from tests.support.states import call, state_for
from web.state.catalogue import ProductState


@pytest.fixture
def api(engine):
    from web.api.app import create_api

    with TestClient(create_api(), follow_redirects=False) as client:
        yield client


def test_the_product_page_takes_a_request(session, queued_jobs):
    product = make_product(session, slug="web-alert", title="Web Alert")
    state = state_for(ProductState, f"/games/{product.slug}")
    call(state.load)
    assert state.product["can_buy"] is False
    call(state.request_stock_alert, {"email": "dee@example.com"})
    assert "Check your inbox" in state.alert_note and state.alert_error == ""
    assert [name for name, _, _ in queued_jobs] == ["send_stock_alert_email"]
    call(state.request_stock_alert, {"email": "nonsense"})
    assert state.alert_error and state.alert_note == ""


def test_confirm_and_unsubscribe_links(api, session, queued_jobs):
    product = make_product(session, slug="web-alert-links")
    alert = stock_alerts.request_stock_alert(
        session=session, slug=product.slug, email="eve@example.com"
    )
    session.commit()
    token = stock_alerts.confirm_link(alert).split("token=")[1]
    answer = api.get("/api/stock-alerts/confirm?token=" + token)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/games/{product.slug}?stock_alert=confirmed"
    fresh(session)
    assert session.get(StockAlert, alert.id).confirmed_at is not None

    path = (
        "/api/stock-alerts/unsubscribe?token="
        + stock_alerts.unsubscribe_link(alert).split("token=")[1]
    )
    one_click = api.post(path, content=b"List-Unsubscribe=One-Click")
    assert one_click.status_code == 200
    fresh(session)
    assert session.exec(select(StockAlert)).all() == []
    again = api.get(path)
    assert again.status_code == 303 and again.headers["location"].endswith("unsubscribed")

    forged = api.get(
        "/api/stock-alerts/confirm?token=" + make_token("other", "1.2", ttl_seconds=60)
    )
    assert forged.headers["location"] == "/games?stock_alert=invalid"
    assert api.post("/api/stock-alerts/unsubscribe?token=x.y.z").status_code == 403


def test_the_page_says_what_the_link_did(session):
    product = make_product(session, slug="web-alert-note")
    state = state_for(ProductState, f"/games/{product.slug}?stock_alert=unsubscribed")
    call(state.load)
    assert state.alert_note.startswith("Done")
