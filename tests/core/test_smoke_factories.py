from sqlmodel import select

from core.models import Key
from tests.factories import make_keys, make_order, make_product


def test_factories_build_rows_that_decrypt(session, vault):
    product = make_product(session)
    keys = make_keys(
        session, product, 3, codes=["AAAAA-BBBBB-CCCCC", "DDDDD-EEEEE-FFFFF", "GGGGG-HHHHH-IIIII"]
    )
    order = make_order(session, [(product, 2)])
    assert order.id is not None
    stored = session.exec(select(Key).where(Key.id == keys[0].id)).one()
    assert (
        vault.decrypt(stored.ciphertext, key_version=stored.key_version, row_id=stored.id)
        == b"AAAAA-BBBBB-CCCCC"
    )
