"""The demo catalogue: what a visitor of a freshly seeded shop sees."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import pytest
from sqlalchemy import delete, func
from sqlmodel import Session, select

from core.crypto import KeyVault
from core.demo_data import ACTIVATION, DEMO_TITLES, REGION_NOTES
from core.errors import InvalidInput
from core.models import Key, KeyStatus, Product
from core.services.catalogue import search_products
from core.services.demo import (
    CODE_RE,
    DemoSummary,
    cover_svg,
    demo_code,
    demo_slug,
    seed_demo,
)

SVG_NS = "{http://www.w3.org/2000/svg}"


def seeded(session: Session, **kwargs: int) -> DemoSummary:
    summary = seed_demo(session=session, **kwargs)
    session.commit()
    return summary


def products(session: Session) -> list[Product]:
    return list(session.exec(select(Product).order_by(Product.id)))


def key_counts(session: Session) -> dict[int, int]:
    rows = session.exec(
        select(Key.product_id, func.count())
        .where(Key.status == KeyStatus.AVAILABLE)
        .group_by(Key.product_id)
    ).all()
    return {pid: n for pid, n in rows}


def test_seed_builds_a_varied_catalogue(session: Session) -> None:
    summary = seeded(session, keys_per_product=5)
    catalogue = products(session)
    assert summary.products_created == len(catalogue) == len(DEMO_TITLES) >= 48
    assert summary.products_existing == 0
    assert len({p.platform for p in catalogue}) >= 5
    assert len({p.region for p in catalogue}) >= 4
    assert len({p.genre for p in catalogue}) >= 6
    assert len({p.slug for p in catalogue}) == len(catalogue)
    assert sum(p.featured for p in catalogue) >= 4
    deals = [p for p in catalogue if p.list_price_minor]
    assert deals and all(p.list_price_minor > p.price_minor for p in deals)  # type: ignore[operator]
    assert sum(p.currency == "EUR" for p in catalogue) > 0.8 * len(catalogue)
    for p in catalogue:
        assert p.title and p.publisher and p.description
        assert p.price_minor > 0 and re.fullmatch(r"[A-Z]{3}", p.currency)
        assert p.activation_instructions.startswith(ACTIVATION[p.platform])
        assert REGION_NOTES[p.region] in p.activation_instructions
    steam = next(p for p in catalogue if p.platform == "Steam")
    assert "https://store.steampowered.com/account/registerkey" in steam.activation_instructions


def test_preorders_release_in_the_future_and_others_in_the_past(session: Session) -> None:
    seeded(session, keys_per_product=2)
    catalogue = products(session)
    preorders = [p for p in catalogue if p.is_preorder]
    assert len(preorders) >= 3
    today = datetime.now(UTC).date()
    assert all(p.release_date is not None and p.release_date > today for p in preorders)
    assert all(
        p.release_date is not None and p.release_date <= today
        for p in catalogue
        if not p.is_preorder
    )


def test_stock_levels_in_stock_sold_out_and_low(session: Session, vault: KeyVault) -> None:
    summary = seeded(session, keys_per_product=6)
    catalogue = products(session)
    counts = key_counts(session)
    assert summary.keys_created == sum(counts.values())
    sold_out = [p for p in catalogue if counts.get(p.id, 0) == 0 and not p.is_preorder]
    assert len(sold_out) >= 2
    low = [p for p in catalogue if 0 < counts.get(p.id, 0) < p.low_stock_threshold]
    assert len(low) >= 2
    stocked = [p for p in catalogue if counts.get(p.id, 0) == 6]
    assert len(stocked) > len(catalogue) / 2
    # The storefront's in-stock filter agrees.
    in_stock = search_products(session=session, in_stock=True, per_page=100)
    assert in_stock.total == sum(1 for p in catalogue if counts.get(p.id, 0) > 0)


def test_demo_keys_are_stored_like_real_keys(session: Session, vault: KeyVault) -> None:
    seeded(session, keys_per_product=3)
    keys = list(session.exec(select(Key)))
    assert keys
    codes = set()
    for key in keys:
        code = vault.decrypt(key.ciphertext, key_version=key.key_version, row_id=key.id).decode()
        assert CODE_RE.fullmatch(code), "demo codes look like XXXXX-XXXXX-XXXXX"
        assert vault.fingerprint(code) == key.fingerprint
        assert (key.status, key.supplier) == (KeyStatus.AVAILABLE, "demo")
        assert key.cost_minor is not None and key.cost_currency
        codes.add(code)
    assert len(codes) == len(keys)


def test_seeding_twice_adds_nothing(session: Session) -> None:
    first = seeded(session, keys_per_product=2)
    keys_before = session.exec(select(func.count()).select_from(Key)).one()
    second = seeded(session, keys_per_product=2)
    assert second == DemoSummary(
        products_created=0, products_existing=first.products_created, keys_created=0
    )
    assert session.exec(select(func.count()).select_from(Key)).one() == keys_before
    assert len(products(session)) == first.products_created


def test_seeding_fills_in_only_missing_products(session: Session) -> None:
    seeded(session, keys_per_product=2)
    victim = products(session)[0]
    session.execute(delete(Key).where(Key.product_id == victim.id))  # type: ignore[arg-type]
    session.execute(delete(Product).where(Product.id == victim.id))  # type: ignore[arg-type]
    session.commit()
    again = seeded(session, keys_per_product=2)
    assert (again.products_created, again.products_existing) == (1, len(DEMO_TITLES) - 1)


def test_seed_is_deterministic_for_a_seed(session: Session, vault: KeyVault) -> None:
    seeded(session, keys_per_product=2, rng_seed=7)

    def snapshot() -> tuple[list[tuple[str, int, date | None]], list[str]]:
        rows = [(p.slug, p.price_minor, p.release_date) for p in products(session)]
        codes = sorted(
            vault.decrypt(k.ciphertext, key_version=k.key_version, row_id=k.id).decode()
            for k in session.exec(select(Key))
        )
        return rows, codes

    first = snapshot()
    session.execute(delete(Key))
    session.execute(delete(Product))
    session.commit()
    seeded(session, keys_per_product=2, rng_seed=7)
    assert snapshot() == first


def test_zero_keys_per_product_and_bad_values(session: Session) -> None:
    summary = seeded(session, keys_per_product=0)
    assert summary.keys_created == 0 and summary.products_created == len(DEMO_TITLES)
    for bad in (-1, 10_001, True):
        with pytest.raises(InvalidInput):
            seed_demo(session=session, keys_per_product=bad)


def test_demo_titles_are_found_by_search(session: Session) -> None:
    seeded(session, keys_per_product=1)
    hits = search_products(session=session, query="starf")
    assert {h.title for h in hits.items} == {"Starfall Vanguard"}
    assert {h.platform for h in hits.items} == {"Steam", "Xbox"}


def test_demo_slugs_and_codes_have_the_expected_shape() -> None:
    import random

    slugs = [demo_slug(spec) for spec in DEMO_TITLES]
    assert all(re.fullmatch(r"[a-z0-9-]{1,120}", s) for s in slugs)
    assert len(set(slugs)) == len(slugs)
    rng = random.Random(1)
    assert all(CODE_RE.fullmatch(demo_code(rng)) for _ in range(100))


def test_cover_svg_is_a_valid_svg_data_url_with_the_title_and_platform() -> None:
    url = cover_svg("Marrow & Moss <Deluxe>", "Battle.net")
    prefix = "data:image/svg+xml;base64,"
    assert url.startswith(prefix)
    svg = base64.b64decode(url[len(prefix) :]).decode("utf-8")
    root = ElementTree.fromstring(svg)  # well-formed despite & and < in the title
    assert root.tag == f"{SVG_NS}svg"
    title_lines = [t.text or "" for t in root.iter(f"{SVG_NS}tspan")]  # wrapped title
    assert " ".join(title_lines) == "Marrow & Moss <Deluxe>"
    assert "Battle.net" in ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]
    assert root.find(f".//{SVG_NS}linearGradient") is not None
    # Same title, same art; another title, other colours.
    assert cover_svg("Marrow & Moss <Deluxe>", "Battle.net") == url
    assert cover_svg("Hollow Tide", "GOG") != cover_svg("Quiet Meridian", "GOG")


def test_seeded_products_get_generated_covers_when_the_column_holds_them(
    session: Session,
) -> None:
    seeded(session, keys_per_product=0)
    limit = Product.__table__.c.cover_url.type.length  # type: ignore[attr-defined]
    for product in products(session):
        expected = cover_svg(product.title, product.platform)
        if limit is None or len(expected) <= limit:
            assert product.cover_url == expected
        else:
            assert product.cover_url is None  # the storefront draws cover_svg() itself
