"""The stock-flag listeners are installed where engines are built, not by importing the
catalogue: a program that never imports it still keeps ``products.in_stock`` exact
(issue #12 item 5)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from core import config
config.use_settings(config.load_settings(KEYSHOP_VAR_DIR=sys.argv[1],
    KEYSHOP_KEYRING=sys.argv[2], KEYSHOP_FINGERPRINT_KEY=sys.argv[3]))
from sqlmodel import Session
from core.db import get_engine
from core.models import Product
from tests.factories import make_keys, make_product
assert "core.services.catalogue" not in sys.modules, "this program never imports it"
from core.schema import migrate
migrate()
engine = get_engine()
with Session(engine, expire_on_commit=False) as session:
    product = make_product(session)
    assert not session.get(Product, product.id).in_stock
    make_keys(session, product, 1)
    session.expire_all()
    print("in_stock", session.get(Product, product.id).in_stock)
"""


def test_a_program_that_never_imports_the_catalogue_keeps_the_flags(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path), TEST_KEYRING, TEST_FINGERPRINT_KEY],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1:] == ["in_stock True"], result.stderr[-3000:]
