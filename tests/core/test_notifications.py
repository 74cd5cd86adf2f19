from email import message_from_bytes, policy

from core.services.notifications import send_order_email
from core.signing import check_token
from tests.factories import make_keys, make_order, make_product, order_lines


def test_delivery_notice_links_to_the_portal_once_and_never_holds_a_key(session, test_settings):
    product = make_product(session, title="Hollow Tide")
    order = make_order(session, [(product, 1)], status="fulfilled", email="gamer@example.com")
    [line] = order_lines(session, order)
    make_keys(
        session, product, 1, codes=["SECRET-KEY-00001"], status="delivered", order_line_id=line.id
    )
    assert send_order_email(order_id=order.id, kind="delivered").endswith("sent")
    assert "already sent" in send_order_email(order_id=order.id, kind="delivered")
    files = [
        f for f in test_settings.outbox_dir.glob("*.eml") if order.number.encode() in f.read_bytes()
    ]
    assert len(files) == 1
    raw = files[0].read_bytes()
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"] == "gamer@example.com" and order.number in message["Subject"]
    assert b"SECRET-KEY-00001" not in raw
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = next(word for word in text.split() if "/orders/" in word)
    token = link.split("token=", 1)[1]
    assert check_token("order-access", token) == order.number
