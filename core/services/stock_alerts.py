"""Back-in-stock e-mail, with double opt-in and one-click unsubscribe.

- :func:`request_stock_alert`: a shopper leaves an address on an out-of-stock product
  page. The row is pending and the only e-mail sent is the confirmation (a signed link,
  purpose ``stock-alert-confirm``, valid :data:`CONFIRM_DAYS` days). Asking again for the
  same product and address sends a new confirmation while pending, and does nothing
  visible otherwise, so the answer never tells whether an address had asked before.
- :func:`confirm_stock_alert`: the link's target; the request is confirmed.
- :func:`notify_back_in_stock` (periodic, one scheduler: ``tasks.jobs``): each confirmed, not yet notified request whose
  product is active and in stock is marked notified and committed, then its e-mail is
  queued (intent first, side effect after commit); each request gets one e-mail.
- :func:`unsubscribe_stock_alert`: the signed link in that e-mail (and its
  ``List-Unsubscribe`` header, RFC 8058 one-click) deletes the request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from sqlalchemy import select as sa_select
from sqlalchemy import true
from sqlmodel import Session, select

from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput, UnknownProduct
from core.i18n import current_language, localised_path
from core.jobs import Job, enqueue_after_commit
from core.models import Product, StockAlert, utcnow
from core.services.catalogue import get_product_by_slug, products
from core.services.customers import normalise_email
from core.signing import InvalidToken, check_token, make_token

CONFIRM_PURPOSE: Final = "stock-alert-confirm"
UNSUBSCRIBE_PURPOSE: Final = "stock-alert-unsubscribe"
CONFIRM_DAYS: Final = 2
UNSUBSCRIBE_DAYS: Final = 365
KINDS: Final = ("confirm", "back-in-stock")
BATCH: Final = 500


def _payload(alert: StockAlert) -> str:
    """The request's id bound to its creation time: a token outlives no deleted row."""
    assert alert.id is not None
    return f"{alert.id}.{int(alert.created_at.timestamp())}"


def confirm_link(alert: StockAlert) -> str:
    token = make_token(CONFIRM_PURPOSE, _payload(alert), ttl_seconds=CONFIRM_DAYS * 86400)
    return f"{get_settings().public_url.rstrip('/')}/api/stock-alerts/confirm?token={token}"


def unsubscribe_link(alert: StockAlert) -> str:
    token = make_token(UNSUBSCRIBE_PURPOSE, _payload(alert), ttl_seconds=UNSUBSCRIBE_DAYS * 86400)
    return f"{get_settings().public_url.rstrip('/')}/api/stock-alerts/unsubscribe?token={token}"


def _alert_for(session: Session, purpose: str, token: str) -> StockAlert | None:
    payload = check_token(purpose, token)  # InvalidToken (403) when forged or expired
    ident, _, created = payload.partition(".")
    alert = session.get(StockAlert, int(ident)) if ident.isdigit() else None
    if alert is None or str(int(alert.created_at.timestamp())) != created:
        return None
    return alert


def request_stock_alert(*, session: Session, slug: str, email: str) -> StockAlert:
    """Record a pending request (or refresh one) and queue its confirmation e-mail after
    the caller commits. InvalidInput for a bad address or a product that can be bought
    now; UnknownProduct for a product not for sale."""
    address = normalise_email(email)
    product = get_product_by_slug(session=session, slug=slug)
    if not product.active:
        raise UnknownProduct(f"no product with slug {slug!r}", slug=slug)
    in_stock = session.execute(
        sa_select(products.c.in_stock).where(products.c.id == product.id)
    ).scalar()  # read fresh: the flag is kept by SQL, not through this object
    if in_stock:
        raise InvalidInput("this game is in stock: you can buy it now", field="slug")
    alert = session.exec(
        select(StockAlert).where(StockAlert.product_id == product.id, StockAlert.email == address)
    ).first()
    language = current_language()  # the page's (core.i18n): the e-mails speak it
    if alert is None:
        assert product.id is not None
        alert = StockAlert(product_id=product.id, email=address, language=language)
        session.add(alert)
        session.flush()
    else:
        alert.language = language
        if alert.confirmed_at is not None:
            alert.notified_at = None  # confirmed before: simply waiting again
            return alert
        alert.created_at = utcnow()  # a fresh confirmation link; older ones stop working
    enqueue_after_commit(session, Job.SEND_STOCK_ALERT_EMAIL, kind="confirm", alert_id=alert.id)
    return alert


def confirm_stock_alert(*, session: Session, token: str) -> Product:
    """Confirm the request behind ``token``; its product. InvalidToken when the link is
    forged, expired, or its request is gone (unsubscribed)."""
    alert = _alert_for(session, CONFIRM_PURPOSE, token)
    if alert is None:
        raise InvalidToken("this link is no longer valid")
    if alert.confirmed_at is None:
        alert.confirmed_at = utcnow()
    product = session.get(Product, alert.product_id)
    assert product is not None
    return product


def unsubscribe_stock_alert(*, session: Session, token: str) -> Product | None:
    """Delete the request behind ``token`` (again: nothing happens); its product, or None
    when the request was already gone."""
    alert = _alert_for(session, UNSUBSCRIBE_PURPOSE, token)
    if alert is None:
        return None
    product = session.get(Product, alert.product_id)
    session.delete(alert)
    return product


def notify_back_in_stock() -> int:
    """Mark confirmed, waiting requests whose product can be bought as notified, commit,
    and queue one e-mail each. Returns how many."""
    with session_scope() as session:
        alerts = session.exec(
            select(StockAlert)
            .join(Product, Product.id == StockAlert.product_id)  # type: ignore[arg-type]
            .where(
                StockAlert.confirmed_at.is_not(None),  # type: ignore[union-attr]
                StockAlert.notified_at.is_(None),  # type: ignore[union-attr]
                Product.active == true(),
                Product.in_stock == true(),
            )
            .order_by(StockAlert.id)  # type: ignore[arg-type]
            .limit(BATCH)
        ).all()
        now = utcnow()
        for alert in alerts:
            alert.notified_at = now
            enqueue_after_commit(
                session, Job.SEND_STOCK_ALERT_EMAIL, kind="back-in-stock", alert_id=alert.id
            )
        return len(alerts)


def send_stock_alert_email(*, kind: str, alert_id: int) -> str:
    """The queued job behind both e-mails; returns what it did."""
    from core.mail import back_in_stock_notice, get_mailer, stock_alert_confirm_notice

    if kind not in KINDS:
        raise InvalidInput(f"unknown stock alert e-mail {kind!r}", field="kind")
    with session_scope(write=False) as session:
        alert = session.get(StockAlert, alert_id)
        product = session.get(Product, alert.product_id) if alert is not None else None
        if alert is None or product is None:
            return "gone"
        settings = get_settings()
        if kind == "confirm":
            if alert.confirmed_at is not None:
                return "already confirmed"
            if utcnow() - alert.created_at > timedelta(days=CONFIRM_DAYS):
                return "expired"
            message = stock_alert_confirm_notice(
                to=alert.email,
                title=product.title,
                link=confirm_link(alert),
                mail_from=settings.mail_from,
                language=alert.language,
            )
        else:
            message = back_in_stock_notice(
                to=alert.email,
                title=product.title,
                product_url=settings.public_url.rstrip("/")
                + localised_path(f"/games/{product.slug}", alert.language),
                unsubscribe_url=unsubscribe_link(alert),
                mail_from=settings.mail_from,
                language=alert.language,
            )
    get_mailer().send(message)
    return "sent"
