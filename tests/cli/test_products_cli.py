"""``keyshop products``: an owner adds and edits products from the shell, and the
catalogue CSV round trip (export → import → export) changes nothing."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.models import AuditEvent, Product
from tests.factories import fresh
from tests.support.cli import invoke, keyshop


@pytest.fixture
def run(test_settings, monkeypatch):
    return lambda *args: invoke(monkeypatch, test_settings, *args)


def test_add_edit_export_import_round_trip(test_settings, session, tmp_path, run) -> None:
    # the one real subprocess: the command is wired into `keyshop`
    added = keyshop(
        test_settings,
        tmp_path,
        "products", "add", "starfall", "--title", "Starfall", "--platform", "steam",
        "--region", "eu", "--genre", "Action", "--price", "19.99",
        "--description", "- a bullet\n=not a formula", "--operator", "olga",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "added starfall" in added.stdout and "19.99 EUR" in added.stdout
    yen = run(
        "products", "add", "hollow-tide", "--title", "Hollow Tide", "--platform", "GOG",
        "--price", "1200", "--currency", "JPY", "--release-date", "2027-02-01",
        "--is-preorder", "yes",
    )  # fmt: skip
    assert yen.exit_code == 0, yen.stderr
    edited = run("products", "edit", "starfall", "--price", "24.50")
    assert edited.exit_code == 0 and "changed price_minor" in edited.stdout
    assert (
        fresh(session).exec(select(Product).where(Product.slug == "starfall")).one().price_minor
        == 2450
    )
    events = set(fresh(session).exec(select(AuditEvent.action, AuditEvent.actor_id)).all())
    assert ("product.create", "olga") in events
    assert "product.edit" in {action for action, _ in events}

    first = tmp_path / "first.csv"
    assert run("products", "export", str(first)).exit_code == 0
    again = run("products", "import", str(first))
    assert again.exit_code == 0, again.stderr
    assert "0 created, 0 updated, 2 unchanged, 0 refused" in again.stdout
    second = tmp_path / "second.csv"
    assert run("products", "export", str(second)).exit_code == 0
    assert first.read_bytes() == second.read_bytes()

    listed = run("products", "list", "-q", "tide")
    assert (
        listed.exit_code == 0 and "hollow-tide" in listed.stdout and "starfall" not in listed.stdout
    )


def test_a_refused_file_changes_nothing_unless_asked(session, tmp_path, run) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "slug,title,platform,price\nok,Ok,Steam,1\nbad,Bad,Steam,=HYPERLINK(1)\n", encoding="utf-8"
    )
    refused = run("products", "import", str(path))
    assert refused.exit_code == 1
    assert "line 2: created ok" in refused.stdout
    assert "line 3: refused bad: the price cell starts with '='" in refused.stdout
    assert "nothing changed" in refused.stderr
    assert fresh(session).exec(select(Product)).all() == []
    applied = run("products", "import", str(path), "--apply-valid")
    assert applied.exit_code == 0, applied.stderr
    assert [p.slug for p in fresh(session).exec(select(Product))] == ["ok"]


def test_retire_restore_and_bad_input(session, tmp_path, run) -> None:
    assert run(
        "products", "add", "x", "--title", "X", "--platform", "Steam",
        "--price", "1",
    ).exit_code == 0  # fmt: skip
    bad = run("products", "edit", "x", "--low-stock-threshold", "-1")
    assert bad.exit_code == 1 and "low_stock_threshold" in bad.stderr
    assert run("products", "retire", "x").stdout.strip() == "x: retired"
    assert fresh(session).exec(select(Product)).one().active is False
    assert "back on sale" in run("products", "restore", "x").stdout


def cover_file(tmp_path, name: str, size: tuple[int, int] = (600, 800)):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format="JPEG")
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return path


def test_covers_and_prices_per_currency_from_the_shell(
    test_settings, session, tmp_path, run
) -> None:
    from core.services.catalogue.prices import all_prices

    def product() -> Product:
        return fresh(session).exec(select(Product).where(Product.slug == "starfall")).one()

    # a bad cover refuses the whole command: no product is added
    bad = run(
        "products", "add", "starfall", "--title", "Starfall", "--platform", "Steam",
        "--price", "19.99", "--cover", str(cover_file(tmp_path, "tiny.jpg", (100, 100))),
    )  # fmt: skip
    assert bad.exit_code == 1 and "tiny.jpg is 100x100 pixels" in bad.stderr
    assert fresh(session).exec(select(Product)).all() == []

    added = run(
        "products", "add", "starfall", "--title", "Starfall", "--platform", "Steam",
        "--price", "19.99", "--price-usd", "21.99", "--cover-alt", "A ship",
        "--cover", str(cover_file(tmp_path, "box.jpg")),
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "cover box.jpg uploaded" in added.stdout
    first = product().cover_image
    assert first is not None and product().cover_alt == "A ship"
    prices = {p.currency: p.minor for p in all_prices(session=fresh(session), product=product())}
    assert prices == {"EUR": 1999, "USD": 2199}
    blobs = test_settings.blob_dir

    replaced = run("products", "edit", "starfall", "--cover", str(cover_file(tmp_path, "b.jpg")))
    assert replaced.exit_code == 0, replaced.stderr
    second = product().cover_image
    assert second != first
    assert not [p for p in (blobs / first).glob("*") if p.is_file()]
    assert sorted(p.name for p in (blobs / second).iterdir()) == ["card.webp", "page.webp"]

    # a bad price is refused before the cover is touched
    refused = run(
        "products", "edit", "starfall", "--price-gbp", "abc",
        "--cover", str(cover_file(tmp_path, "c.jpg")),
    )  # fmt: skip
    assert refused.exit_code == 1 and "price_gbp" in refused.stderr
    assert product().cover_image == second

    removed = run("products", "edit", "starfall", "--remove-cover")
    assert removed.exit_code == 0 and "cover removed" in removed.stdout
    assert product().cover_image is None
    assert not [p for p in (blobs / second).glob("*") if p.is_file()]
