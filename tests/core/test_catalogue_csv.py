"""The catalogue CSV: export → import changes nothing; each line is reported; a file
with a refused line changes nothing unless the good lines are asked for; hostile files
(broken quoting, wrong encodings, formula cells) are refused with line numbers."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from core.csvsafe import FileRefused, escape_cell, unescape_cell
from core.models import AuditEvent, Product
from core.services.audit import Actor
from core.services.operator.catalogue_csv import (
    COLUMNS,
    export_catalogue,
    import_catalogue,
)
from tests.factories import fresh, make_product

OWNER = Actor.operator("owner")
HEADER = "slug,title,platform,region,genre,currency,price\n"


def write(tmp_path: Path, text: str | bytes, name: str = "catalogue.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def products(session) -> dict[str, Product]:
    return {p.slug: p for p in fresh(session).exec(select(Product))}


def outcomes(report) -> list[tuple[int, str]]:
    return [(line.line, line.outcome) for line in report.lines]


def test_export_then_import_changes_nothing(session, tmp_path) -> None:
    make_product(
        session,
        slug="odd-one",
        title="=cmd|' /C calc'!A0",  # a formula, escaped in the file
        description='Line one\nline two, with "quotes"\n- a bullet',
        activation_instructions="'quoted' already",
        currency="JPY",
        price_minor=1200,
        list_price_minor=1500,
        release_date=date(2027, 5, 1),
        is_preorder=True,
        featured=True,
    )
    make_product(session, slug="kwd", currency="KWD", price_minor=1234, active=False)
    make_product(session, slug="plain")
    before = {s: p.model_dump() for s, p in products(session).items()}
    path = tmp_path / "out.csv"
    assert export_catalogue(path) == 3
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == COLUMNS
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    by_slug = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    assert by_slug["odd-one"]["price"] == "1200" and by_slug["kwd"]["price"] == "1.234"

    report = import_catalogue(path=path, actor=OWNER)

    assert outcomes(report) == [(2, "unchanged"), (5, "unchanged"), (6, "unchanged")]
    assert report.applied
    after = {s: p.model_dump() for s, p in products(session).items()}
    assert after == before
    edits = fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "product.import"))
    assert list(edits) == []


def test_import_creates_updates_and_reports_per_line(session, tmp_path) -> None:
    make_product(session, slug="known", title="Known", price_minor=500)
    path = write(
        tmp_path,
        HEADER
        + "new-one,New One,steam,eu,RPG,EUR,19.99\n"
        + "known,Known,Steam,GLOBAL,Action,EUR,7.50\n",
    )
    report = import_catalogue(path=path, actor=OWNER)
    assert outcomes(report) == [(2, "created"), (3, "updated")]
    got = products(session)
    assert (got["new-one"].platform, got["new-one"].region, got["new-one"].price_minor) == (
        "Steam",
        "EU",
        1999,
    )
    assert got["known"].price_minor == 750
    actions = [e.action for e in fresh(session).exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["product.create", "product.import", "catalogue.import"]


def test_a_refused_line_changes_nothing_unless_the_good_lines_are_asked_for(
    session, tmp_path
) -> None:
    path = write(
        tmp_path,
        HEADER
        + "good-one,Good,Steam,EU,RPG,EUR,9.99\n"
        + "Bad Slug,Bad,Steam,EU,RPG,EUR,9.99\n"
        + "good-two,Good Two,Steam,EU,RPG,EUR,1.999\n"
        + "good-one,Again,Steam,EU,RPG,EUR,9.99\n"
        + "good-three,Good Three,Steam,EU,RPG,EUR,4\n",
    )
    report = import_catalogue(path=path, actor=OWNER)
    assert outcomes(report) == [
        (2, "created"),
        (3, "refused"),
        (4, "refused"),
        (5, "refused"),
        (6, "created"),
    ]
    reasons = {line.line: line.reason for line in report.refused}
    assert "slug" in reasons[3] and "decimals" in reasons[4] and "earlier line" in reasons[5]
    assert not report.applied
    assert products(session) == {}
    assert fresh(session).exec(select(AuditEvent)).all() == []

    report = import_catalogue(path=path, actor=OWNER, apply_valid=True)
    assert report.applied
    assert sorted(products(session)) == ["good-one", "good-three"]


def test_dry_run_changes_nothing(session, tmp_path) -> None:
    path = write(tmp_path, HEADER + "a,A,Steam,EU,RPG,EUR,1\n")
    report = import_catalogue(path=path, actor=OWNER, dry_run=True)
    assert outcomes(report) == [(2, "created")] and not report.applied
    assert products(session) == {}


def test_an_unclosed_quote_refuses_its_line_and_not_the_lines_after(session, tmp_path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "one,One,Steam,EU,RPG,EUR,1\n"
        + 'two,"Two,Steam,EU,RPG,EUR,1\n'
        + "three,Three,Steam,EU,RPG,EUR,1\n"
        + "four,Four,Steam,EU,RPG,EUR,1\n",
    )
    report = import_catalogue(path=path, actor=OWNER, apply_valid=True)
    assert outcomes(report) == [(2, "created"), (3, "refused"), (4, "created"), (5, "created")]
    assert "never closed" in report.refused[0].reason
    assert sorted(products(session)) == ["four", "one", "three"]


def test_a_multi_line_description_is_one_record(session, tmp_path) -> None:
    path = write(
        tmp_path,
        "slug,title,platform,price,description\n"
        + 'one,One,Steam,1,"first\nsecond"\n'
        + "two,Two,Steam,2,\n",
    )
    report = import_catalogue(path=path, actor=OWNER)
    assert outcomes(report) == [(2, "created"), (4, "created")]
    assert products(session)["one"].description == "first\nsecond"


@pytest.mark.parametrize(
    ("cell", "column"),
    [("=1+1", "title"), ("+33 1", "genre"), ("@SUM(A1)", "title"), ("-2", "price")],
)
def test_formula_cells_are_refused_with_their_line(session, tmp_path, cell, column) -> None:
    values = {"slug": "x", "title": "X", "platform": "Steam", "region": "EU", "genre": "RPG"}
    values |= {"currency": "EUR", "price": "1", column: cell}
    line = ",".join(f'"{values[c]}"' for c in HEADER.strip().split(","))
    path = write(tmp_path, HEADER + "ok,Ok,Steam,EU,RPG,EUR,1\n" + line + "\n")
    report = import_catalogue(path=path, actor=OWNER)
    [refused] = report.refused
    assert refused.line == 3 and column in refused.reason and "formula" in refused.reason
    assert products(session) == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ((HEADER + "a,Ä,Steam,EU,RPG,EUR,1\n").encode("latin-1"), "not UTF-8 text (line 2)"),
        ((HEADER + "a,A,Steam,EU,RPG,EUR,1\n").encode("utf-16"), "UTF-16"),
        (b"slug,title,colour\n", "unknown column"),
        (b"title,platform\n", "'slug' column"),
        (b"", "empty"),
    ],
)
def test_hostile_files_are_refused_whole(session, tmp_path, body, message) -> None:
    with pytest.raises(FileRefused, match=re.escape(message)):
        import_catalogue(path=write(tmp_path, body), actor=OWNER)
    assert products(session) == {}


def test_escaping_round_trips() -> None:
    for value in ["=x", "+x", "-x", "@x", "\tx", "\rx", "'x", "''x", "x", ""]:
        assert unescape_cell(escape_cell(value)) == value
        assert not escape_cell(value).startswith(("=", "+", "-", "@", "\t", "\r"))


# -- prices per currency ---------------------------------------------------------------


def other_prices_of(session, slug: str) -> dict[str, tuple[int, int | None]]:
    from core.services.catalogue.prices import all_prices

    product = products(session)[slug]
    return {
        p.currency: (p.minor, p.list_minor)
        for p in all_prices(session=fresh(session), product=product)
        if p.currency != product.currency
    }


def test_prices_per_currency_are_exported_and_round_trip(session, tmp_path) -> None:
    from core.services.catalogue.prices import set_price

    product = make_product(session, slug="starfall", price_minor=1999, list_price_minor=2499)
    set_price(session=session, product=product, currency="USD", price_minor=2199,
              list_price_minor=2699)  # fmt: skip
    set_price(session=session, product=product, currency="GBP", price_minor=1799)
    session.commit()
    path = tmp_path / "out.csv"
    export_catalogue(path)
    with path.open(encoding="utf-8", newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert (row["price_eur"], row["list_price_eur"]) == ("19.99", "24.99")
    assert (row["price_usd"], row["list_price_usd"]) == ("21.99", "26.99")
    assert (row["price_gbp"], row["list_price_gbp"]) == ("17.99", "")

    report = import_catalogue(path=path, actor=OWNER)

    assert outcomes(report) == [(2, "unchanged")]
    assert other_prices_of(session, "starfall") == {"USD": (2199, 2699), "GBP": (1799, None)}


def test_import_sets_and_removes_prices_per_currency_audited(session, tmp_path) -> None:
    from core.services.catalogue.prices import set_price

    product = make_product(session, slug="starfall", price_minor=1999)
    set_price(session=session, product=product, currency="GBP", price_minor=1799)
    session.commit()
    path = write(
        tmp_path,
        "slug,title,platform,price,price_usd,list_price_usd,price_gbp\n"
        "starfall,Starfall,Steam,19.99,21.99,25.00,\n"
        "nova,Nova,GOG,9.99,10.99,,\n",
    )

    report = import_catalogue(path=path, actor=OWNER)

    assert outcomes(report) == [(2, "updated"), (3, "created")]
    assert other_prices_of(session, "starfall") == {"USD": (2199, 2500)}  # GBP: not sold
    assert other_prices_of(session, "nova") == {"USD": (1099, None)}
    [event] = fresh(session).exec(select(AuditEvent).where(AuditEvent.action == "product.import"))
    assert event.data["changes"]["prices"] == [
        {"EUR": [1999, None], "GBP": [1799, None]},
        {"EUR": [1999, None], "USD": [2199, 2500]},
    ]


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ("19.99,abc,,", "price_usd"),
        ("19.99,-1.00,,", "price_usd"),
        ("19.99,,5.00,", "list_price_usd"),
        ("19.99,21.999,,", "price_usd"),
        ("19.99,21.99,,18.00", "price_eur"),  # the own currency must agree with price
    ],
)
def test_a_bad_price_per_currency_names_line_and_field_and_changes_nothing(
    session, tmp_path, cells, field
) -> None:
    make_product(session, slug="starfall", price_minor=1999)
    path = write(
        tmp_path,
        "slug,title,platform,price,price_usd,list_price_usd,price_eur\n"
        "nova,Nova,GOG,9.99,10.99,,\n"
        f"starfall,Starfall,Steam,{cells}\n",
    )

    report = import_catalogue(path=path, actor=OWNER)

    assert outcomes(report) == [(2, "created"), (3, "refused")]
    assert field in report.refused[0].reason
    assert not report.applied
    assert set(products(session)) == {"starfall"}
    assert other_prices_of(session, "starfall") == {}
