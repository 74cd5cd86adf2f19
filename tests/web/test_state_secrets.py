"""No bearer secret in the Reflex state store (issue 13, item 3).

A customer signs in, opens their account, follows a password-reset link, opens an order
through its e-mailed link, reveals a key and visits the test payment page; then every
state tree is stored the way the app stores it (on the PostgreSQL pass in Redis, through
Reflex's own ``StateManagerRedis``; on SQLite as the pickles any state manager writes)
and the dump is searched for the session token, the reset token and the order-access
token. The handlers must still work: the tokens reach them from HttpOnly cookies,
sealed by the shop's front door (web/api/security.py).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlsplit

import pytest
import reflex as rx
from sqlmodel import select

from core.mail import list_outbox, read_outbox_message
from core.models import Order, utcnow
from core.services import accounts
from core.services.fulfilment import fulfil_order
from core.services.notifications import order_access_token
from tests.conftest import is_postgres_run
from tests.factories import make_keys, make_order, make_product
from tests.support.states import (
    call,
    handed_off,
    root_of,
    scripts_of,
    session_cookie,
    state_for,
    tree,
)
from web.state.account import AccountState
from web.state.checkout import PayState
from web.state.order import OrderState

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hashing(test_settings, monkeypatch):
    monkeypatch.setattr(test_settings, "password_hashing", "fast")


def stored(trees: list[rx.State]) -> list[bytes]:
    """Every value the state store holds for these trees."""
    if not is_postgres_run():
        return [node._serialize() for root in trees for node in tree(root)]

    from redis.asyncio import Redis
    from reflex.istate.manager.redis import StateManagerRedis
    from reflex.istate.manager.token import BaseStateToken

    async def through_redis() -> list[bytes]:
        redis = Redis.from_url(os.environ.get("KEYSHOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
        manager = StateManagerRedis(redis=redis)
        prefix = f"keyshop-test-{uuid.uuid4().hex}"
        try:
            for n, root in enumerate(trees):
                for node in tree(root):
                    node._was_touched = True
                await manager.set_state(BaseStateToken(ident=f"{prefix}-{n}", cls=rx.State), root)
            keys = await redis.keys(f"{prefix}-*")
            assert len(keys) >= len(trees)
            values = [await redis.get(key) for key in keys]
            await redis.delete(*keys)
            return [v for v in values if v]
        finally:
            await redis.aclose()

    return asyncio.run(through_redis())


def test_the_state_store_holds_no_bearer_secret(session, var_dir, account_mail):
    email = f"ivy-{uuid.uuid4().hex[:8]}@example.com"
    accounts.create_account(email=email, password=PASSWORD)
    trees: list[rx.State] = []

    # sign in: the new session's token goes to the browser once, not into the state
    signin = state_for(AccountState, "/signin")
    session_token = handed_off(call(signin.sign_in, {"email": email, "password": PASSWORD}))
    assert session_token
    trees.append(root_of(signin))

    # the account page, with the cookie the server set
    account = state_for(AccountState, "/account", cookies=session_cookie(session_token))
    call(account.load_account)
    assert account.signed_in and account.customer_email == email
    trees.append(root_of(account))

    # a password-reset link from the e-mail
    forgot = state_for(AccountState, "/forgot-password")
    call(forgot.request_reset, {"email": email})
    [info] = [i for i in list_outbox(var_dir / "outbox") if i.to == email]
    text = read_outbox_message(info.path).get_body(preferencelist=("plain",)).get_content()
    link = next(word for word in text.split() if "/reset-password?token=" in word)
    reset_token = link.split("token=", 1)[1]
    reset = state_for(AccountState, urlsplit(link).path + "?" + urlsplit(link).query)
    call(reset.load_reset)
    assert reset.error == ""
    trees.append(root_of(reset))

    # an order opened through its link, a key revealed
    product = make_product(session, title="Secret Keeper", price_minor=999)
    make_keys(session, product, 1)
    order = make_order(
        session, [(product, 1)], status="paid", email=email, delivery_consent_at=utcnow()
    )
    assert fulfil_order(order_id=order.id).outcome == "fulfilled"
    access_token = order_access_token(order.number)
    page = state_for(OrderState, f"/orders/{order.number}?token={access_token}")
    call(page.load)
    assert page.found and page.status == "fulfilled"
    assert scripts_of(call(page.reveal, page.lines[0]["keys"][0]["id"]))  # it works
    trees.append(root_of(page))

    # the test payment page of an unpaid order
    unpaid = make_order(session, [(product, 1)], status="pending_payment", email=email)
    pay_token = order_access_token(unpaid.number)
    pay = state_for(PayState, f"/pay/{unpaid.number}?token={pay_token}")
    call(pay.load)
    assert pay.found and pay.payable
    trees.append(root_of(pay))

    dump = stored(trees)
    assert dump and any(order.number.encode() in blob for blob in dump)  # the search works
    secrets = {
        "session token": session_token,
        "password-reset token": reset_token,
        "order-access token": access_token,
        "payment page token": pay_token,
    }
    leaked = [name for name, value in secrets.items() if any(value.encode() in b for b in dump)]
    assert leaked == []
    assert session.exec(select(Order)).all()
