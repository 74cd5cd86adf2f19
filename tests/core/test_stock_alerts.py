"""Back-in-stock e-mail: double opt-in, one e-mail per request, one-click unsubscribe."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from core import mail
from core.errors import InvalidInput, UnknownProduct
from core.models import StockAlert
from core.services import stock_alerts
from core.services.catalogue import refresh_stock_flags
from core.signing import InvalidToken
from tests.factories import fresh, make_keys, make_product


class Sent(list):
    def send(self, message: EmailMessage) -> str:
        self.append(message)
        return "<id@test>"


@pytest.fixture
def sent(monkeypatch) -> Sent:
    box = Sent()
    monkeypatch.setattr(mail, "get_mailer", lambda: box)
    return box


def run_jobs(queued) -> list[str]:
    done = [
        stock_alerts.send_stock_alert_email(**kwargs)
        for name, _args, kwargs in list(queued)
        if name == "send_stock_alert_email"
    ]
    queued.clear()
    return done


def token_of(message: EmailMessage, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    url = next(word for word in text.split() if path in word)
    return parse_qs(urlsplit(url).query)["token"][0]


def restock(session, product) -> None:
    make_keys(session, product, 1)
    refresh_stock_flags(session=session, product_ids=[product.id])
    session.commit()


def test_double_opt_in_then_one_email_then_unsubscribe(session, queued_jobs, sent):
    product = make_product(session, slug="alert-emberwake", title="Emberwake")
    stock_alerts.request_stock_alert(session=session, slug=product.slug, email=" Ann@Example.com ")
    session.commit()
    assert run_jobs(queued_jobs) == ["sent"]
    (confirm,) = sent
    assert confirm["To"] == "ann@example.com" and "Emberwake" in confirm["Subject"]

    # nothing more before the address confirms, even once the game is back
    restock(session, product)
    assert stock_alerts.notify_back_in_stock() == 0

    token = token_of(confirm, "/api/stock-alerts/confirm")
    assert stock_alerts.confirm_stock_alert(session=session, token=token).slug == product.slug
    session.commit()
    assert stock_alerts.notify_back_in_stock() == 1
    assert run_jobs(queued_jobs) == ["sent"]
    back = sent[-1]
    assert back["Subject"] == "Emberwake is back in stock"
    assert back["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = token_of(back, "/api/stock-alerts/unsubscribe")
    assert unsubscribe in back["List-Unsubscribe"]
    assert stock_alerts.notify_back_in_stock() == 0  # one e-mail per request

    assert stock_alerts.unsubscribe_stock_alert(session=session, token=unsubscribe) is not None
    session.commit()
    fresh(session)
    assert session.exec(select(StockAlert)).all() == []
    assert stock_alerts.unsubscribe_stock_alert(session=session, token=unsubscribe) is None
    with pytest.raises(InvalidToken):
        stock_alerts.confirm_stock_alert(session=session, token=token)


def test_asking_again_while_pending_sends_a_new_confirmation_only(session, queued_jobs, sent):
    product = make_product(session, slug="alert-again")
    for _ in range(2):
        stock_alerts.request_stock_alert(session=session, slug=product.slug, email="b@example.com")
        session.commit()
    assert run_jobs(queued_jobs) == ["sent", "sent"]
    fresh(session)
    assert len(session.exec(select(StockAlert)).all()) == 1


def test_bad_requests_change_nothing(session, queued_jobs, sent):
    product = make_product(session, slug="alert-in-stock")
    restock(session, product)
    with pytest.raises(InvalidInput):
        stock_alerts.request_stock_alert(session=session, slug=product.slug, email="c@example.com")
    empty = make_product(session, slug="alert-empty")
    with pytest.raises(InvalidInput):
        stock_alerts.request_stock_alert(session=session, slug=empty.slug, email="not an address")
    with pytest.raises(UnknownProduct):
        stock_alerts.request_stock_alert(
            session=session, slug="no-such-game", email="c@example.com"
        )
    session.rollback()
    assert session.exec(select(StockAlert)).all() == [] and queued_jobs == []
    with pytest.raises(InvalidToken):
        stock_alerts.confirm_stock_alert(session=session, token="forged.123.abc")


def test_a_request_from_a_german_page_gets_german_e_mails(session, queued_jobs, sent):
    from core.i18n import use_language

    product = make_product(session, slug="alert-deutsch", title="Glutwache")
    with use_language("de"):
        stock_alerts.request_stock_alert(session=session, slug=product.slug, email="de@example.com")
    session.commit()
    assert run_jobs(queued_jobs) == ["sent"]
    (confirm,) = sent
    assert confirm["Subject"] == "Bitte bestätigen: Benachrichtigung, wenn Glutwache wieder da ist"
    assert confirm["Content-Language"] == "de"
    stock_alerts.confirm_stock_alert(
        session=session, token=token_of(confirm, "/api/stock-alerts/confirm")
    )
    session.commit()
    restock(session, product)
    assert stock_alerts.notify_back_in_stock() == 1
    assert run_jobs(queued_jobs) == ["sent"]  # sent by a worker: no language in force there
    back = sent[-1]
    assert back["Subject"] == "Glutwache ist wieder auf Lager"
    assert "/de/games/alert-deutsch" in back.get_body(("plain",)).get_content()
