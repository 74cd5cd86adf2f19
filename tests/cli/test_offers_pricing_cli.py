"""``keyshop offers`` and ``keyshop pricing``: map an offer, create a product from one,
add a cost-plus rule, see its effect in a dry run, apply it, read the history."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core.models import AuditEvent, Product, ProviderOffer
from tests.factories import fresh, make_product
from tests.support.cli import invoke


@pytest.fixture
def run(test_settings, monkeypatch):
    return lambda *args: invoke(monkeypatch, test_settings, *args)


def add_offer(session, provider, external_id, name, cost, **fields):
    offer = ProviderOffer(
        provider=provider,
        external_id=external_id,
        name=name,
        title=name,
        platform=fields.pop("platform", "Steam"),
        region=fields.pop("region", "GLOBAL"),
        cost_minor=cost,
        currency="EUR",
        stock=5,
        **fields,
    )
    session.add(offer)
    session.commit()
    return offer


def test_map_create_and_price_from_the_cli(session, run):
    make_product(session, slug="hollow-tide", title="Hollow Tide", price_minor=2000)
    add_offer(session, "kinguin", "k-1", "Hollow Tide", 1500)
    add_offer(session, "codeswholesale", "cw-7", "Starfall Vanguard", 1240)

    listed = run("offers", "list", "--unmapped")
    assert listed.exit_code == 0, listed.stderr
    assert "kinguin\tk-1\tHollow Tide" in listed.stdout and "closest: Hollow Tide" in listed.stdout

    assert run("offers", "map", "kinguin", "k-1", "hollow-tide").exit_code == 0
    created = run("offers", "create-product", "codeswholesale", "cw-7", "--price", "19.99")
    assert created.exit_code == 0, created.stderr
    assert "added starfall-vanguard-steam-global" in created.stdout
    assert run("offers", "list", "--unmapped").stdout == ""

    rule = run(
        "pricing", "add", "--product", "starfall-vanguard-steam-global", "--margin", "20",
        "--floor", "9.99",
    )  # fmt: skip
    assert rule.exit_code == 0, rule.stderr
    dry = run("pricing", "apply", "--dry-run")
    assert "19.99 EUR → 14.99 EUR" in dry.stdout and "1 price(s) would change" in dry.stdout
    assert (
        fresh(session).exec(select(Product).where(Product.slug.like("starfall%"))).one().price_minor
        == 1999
    )
    applied = run("pricing", "apply")
    assert "1 price(s) changed" in applied.stdout
    history = run("pricing", "history", "starfall-vanguard-steam-global")
    assert "codeswholesale cost 12.40 EUR, +20 %, charm" in history.stdout
    assert run("offers", "unmap", "kinguin", "k-1").stdout.strip() == "kinguin k-1: unmapped"
    actions = {e.action for e in fresh(session).exec(select(AuditEvent))}
    assert {
        "offer.map",
        "offer.unmap",
        "product.create",
        "pricing.rule_add",
        "product.price",
    } <= actions

    refused = run("pricing", "add", "--fixed", "5", "--margin", "3")
    assert refused.exit_code == 1 and "either --fixed" in refused.stderr


def test_report_export_and_check_from_the_cli(session, run, tmp_path):
    make_product(session, slug="lonely", title="Lonely")
    report = run("report", "sales", "--from", "2026-11-01", "--to", "2026-11-30", "--by", "product")
    assert report.exit_code == 0, report.stderr
    assert report.stdout.startswith("product\tcurrency\tcount\trevenue")
    out = tmp_path / "sales.csv"
    assert (
        run(
            "report", "sales", "--from", "2026-11-01", "--to", "2026-11-30", "--csv", str(out)
        ).exit_code
        == 0
    )
    assert out.read_text().startswith("day,currency,count")
    bad = run("report", "sales", "--from", "2026-13-01", "--to", "2026-11-30")
    assert bad.exit_code == 1 and "from must be a date" in bad.stderr

    audit_csv = tmp_path / "audit.csv"
    done = run("export", "audit", "--from", "2026-01-01", "--to", "2027-12-31", str(audit_csv))
    assert done.exit_code == 0, done.stderr and "exported" in done.stdout
    assert audit_csv.read_text().startswith("id,created_at,actor_type")

    check = run("products", "check")
    assert check.exit_code == 0 and "unsellable\tlonely" in check.stdout
