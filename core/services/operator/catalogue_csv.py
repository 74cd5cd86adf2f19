"""The catalogue as a CSV file: export it, edit it in a spreadsheet, import it back.

:func:`export_catalogue` writes every product (retired ones with ``active`` false) in
the columns :data:`COLUMNS`, prices in major units (``19.99``), cells a spreadsheet
would run as formulas escaped (:mod:`core.csvsafe`). :func:`import_catalogue` reads that
format: a row whose slug exists edits that product (only the columns the file has; a
row that changes nothing is ``unchanged`` and writes nothing), any other row creates
one. So export → import changes nothing.

Each line is reported ``created``, ``updated``, ``unchanged`` or ``refused`` with a
reason. A file with a refused line changes nothing unless ``apply_valid`` (then the good
lines are applied); a file that is not UTF-8, has broken header or unknown columns is
refused as a whole. Every product change is audited like a change by hand
(``product.create`` / ``product.import``), plus one ``catalogue.import`` event.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from sqlmodel import col, select

from core import money
from core.csvsafe import FileRefused, decode_lines, escape_cell, is_formula, records, unescape_cell
from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.models import Product
from core.services.audit import Actor, record_audit
from core.services.catalogue.prices import Price, other_prices
from core.services.catalogue.product_input import (
    parse_product_text,
    price_column,
    validate_create,
    validate_update,
)
from core.services.operator.catalogue import add_product_in, diff, edit_product_in

COLUMNS: Final = (
    "slug",
    "title",
    "platform",
    "region",
    "genre",
    "publisher",
    "currency",
    "price",
    "list_price",
    "is_preorder",
    "release_date",
    "low_stock_threshold",
    "featured",
    "active",
    "description",
    "activation_instructions",
    "cover_alt",
    # the product's price in each shop currency (the own currency's pair repeats price
    # and list_price; an empty price: not sold in that currency)
    *(
        column
        for code in money.SHOP_CURRENCIES
        for column in (price_column(code), price_column(code, listed=True))
    ),
)
MAX_FILE_BYTES: Final = 64 * 1024 * 1024
MAX_REASONS_SHOWN: Final = 1000

CREATED, UPDATED, UNCHANGED, REFUSED = "created", "updated", "unchanged", "refused"


@dataclass(frozen=True)
class LineOutcome:
    line: int
    slug: str
    outcome: str  # created | updated | unchanged | refused
    reason: str = ""


@dataclass
class CatalogueImport:
    file_name: str
    applied: bool = False
    lines: list[LineOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.lines if line.outcome == outcome)

    @property
    def refused(self) -> list[LineOutcome]:
        return [line for line in self.lines if line.outcome == REFUSED]


# -- export ------------------------------------------------------------------------------


def _major(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    return f"{money.to_decimal(minor, currency):.{money.exponent(currency)}f}"


def product_text(product: Product, prices: dict[str, Price] | None = None) -> dict[str, str]:
    """One product as text, column by column: what the export writes (before escaping)
    and what the console's form shows. ``prices``: its prices in other currencies."""
    own = Price(product.price_minor, product.currency, product.list_price_minor)
    by_currency = {**(prices or {}), product.currency: own}
    per_currency: dict[str, str] = {}
    for code in money.SHOP_CURRENCIES:
        price = by_currency.get(code)
        per_currency[price_column(code)] = _major(price.minor, code) if price else ""
        per_currency[price_column(code, listed=True)] = (
            _major(price.list_minor, code) if price else ""
        )
    return {
        "slug": product.slug,
        "title": product.title,
        "platform": product.platform,
        "region": product.region,
        "genre": product.genre,
        "publisher": product.publisher,
        "currency": product.currency,
        "price": _major(product.price_minor, product.currency),
        "list_price": _major(product.list_price_minor, product.currency),
        "is_preorder": "true" if product.is_preorder else "false",
        "release_date": product.release_date.isoformat() if product.release_date else "",
        "low_stock_threshold": str(product.low_stock_threshold),
        "featured": "true" if product.featured else "false",
        "active": "true" if product.active else "false",
        "description": product.description,
        "activation_instructions": product.activation_instructions,
        "cover_alt": product.cover_alt,
        **per_currency,
    }


def product_cells(product: Product, prices: dict[str, Price] | None = None) -> list[str]:
    """One product as the export's cells (escaped)."""
    values = product_text(product, prices)
    return [escape_cell(values[name]) for name in COLUMNS]


def write_catalogue(out: TextIO) -> int:
    """Write the catalogue as CSV to ``out``; returns the number of products."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    last_id = 0
    while True:
        with session_scope(write=False) as session:
            page = list(
                session.exec(
                    select(Product)
                    .where(col(Product.id) > last_id)
                    .order_by(col(Product.id))
                    .limit(1000)
                )
            )
            prices = other_prices(session=session, product_ids=[p.id for p in page if p.id])
        if not page:
            return count
        for product in page:
            writer.writerow(product_cells(product, prices.get(product.id or 0)))
            count += 1
        last_id = page[-1].id or last_id


def export_catalogue(path: Path) -> int:
    """Write the catalogue to ``path`` (written beside it, then renamed: never half a
    file). Returns the number of products."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            count = write_catalogue(out)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


# -- import ------------------------------------------------------------------------------


def _read(path: Path) -> list[str]:
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise FileRefused(f"{path} is not a regular file")
        if size > MAX_FILE_BYTES:
            raise FileRefused(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileRefused(f"{path}: no such file") from None
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read it ({exc.strerror})") from None
    if not data.strip():
        raise FileRefused(f"{path} is empty")
    return decode_lines(data, name=str(path))


def _header(first: list[str] | None, name: str) -> list[str]:
    if first is None:
        raise FileRefused(f"{name}: line 1, the header, is not valid CSV", lines=[1])
    columns = [cell.strip().lower() for cell in first]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise FileRefused(
            f"{name}: line 1 names unknown column(s) {', '.join(map(repr, unknown))}; "
            f"the columns are {', '.join(COLUMNS)}",
            lines=[1],
        )
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise FileRefused(f"{name}: line 1 names {', '.join(twice)} twice", lines=[1])
    if "slug" not in columns:
        raise FileRefused(f"{name}: line 1 must name a 'slug' column", lines=[1])
    return columns


def _cells(columns: list[str], cells: list[str]) -> dict[str, str]:
    """The row as ``{column: text}``, formulas refused, escapes undone."""
    if len(cells) != len(columns):
        raise InvalidInput(f"{len(cells)} cells where the header has {len(columns)}")
    values: dict[str, str] = {}
    for name, cell in zip(columns, cells, strict=True):
        if is_formula(cell):
            raise InvalidInput(
                f"the {name} cell starts with {cell[:1]!r}, which a spreadsheet runs as a "
                "formula; start it with an apostrophe if it is meant as text",
                field=name,
            )
        values[name] = unescape_cell(cell)
    return values


def _apply_row(
    session: Any, values: dict[str, str], actor: Actor, seen: set[str]
) -> tuple[str, str]:
    """Create or edit the product of one row; returns (slug, outcome)."""
    slug = values["slug"].strip()
    if slug in seen:
        raise InvalidInput(f"slug {slug!r} appears on an earlier line too", field="slug")
    seen.add(slug)
    existing = session.exec(select(Product).where(Product.slug == slug)).first()
    if existing is None:
        data = validate_create(parse_product_text(values), strict=False)
        with session.begin_nested():
            add_product_in(session, data=data, actor=actor)
        return slug, CREATED
    fields = parse_product_text(
        {k: v for k, v in values.items() if k != "slug"}, currency=existing.currency
    )
    update = validate_update(fields, strict=False)
    if not diff(session, existing, update.changes()):
        return slug, UNCHANGED
    with session.begin_nested():
        edit_product_in(
            session, product=existing, data=update, actor=actor, action="product.import"
        )
    return slug, UPDATED


def _rows(lines: list[str], name: str) -> Iterator[tuple[int, dict[str, str] | None, str, str]]:
    """(line, values, slug, "") per record, or (line, None, slug, reason) for one that
    cannot be read (the slug when it can be told)."""
    stream = records(lines)
    first = next(stream, None)
    if first is None:
        raise FileRefused(f"{name} has no header line")
    if first.line != 1:
        raise FileRefused(f"{name}: line 1 must be the header", lines=[1])
    columns = _header(first.cells, name)
    at = columns.index("slug")
    for record in stream:
        if record.cells is None:
            yield record.line, None, "", record.problem
            continue
        slug = record.cells[at].strip()[:120] if at < len(record.cells) else ""
        try:
            yield record.line, _cells(columns, record.cells), slug, ""
        except InvalidInput as exc:
            yield record.line, None, slug, exc.message


def import_catalogue(
    *, path: Path, actor: Actor, apply_valid: bool = False, dry_run: bool = False
) -> CatalogueImport:
    """Import the catalogue CSV at ``path``. See the module docstring. ``dry_run``:
    report what would happen and change nothing. Owns its transaction."""
    path = Path(path)
    lines = _read(path)
    report = CatalogueImport(file_name=path.name)
    seen: set[str] = set()
    with session_scope() as session:
        for line, row, slug, problem in _rows(lines, str(path)):
            if row is None:
                report.lines.append(LineOutcome(line, slug, REFUSED, problem))
                continue
            try:
                slug, outcome = _apply_row(session, row, actor, seen)
            except DomainError as exc:
                report.lines.append(LineOutcome(line, slug, REFUSED, exc.message))
            else:
                report.lines.append(LineOutcome(line, slug, outcome))
        if dry_run or (report.refused and not apply_valid):
            session.rollback()
            return report
        record_audit(
            session=session,
            actor=actor,
            action="catalogue.import",
            object_type="catalogue",
            object_id=path.name[:100],
            data={
                "created": report.count(CREATED),
                "updated": report.count(UPDATED),
                "unchanged": report.count(UNCHANGED),
                "refused": [
                    {"line": r.line, "reason": r.reason} for r in report.refused[:MAX_REASONS_SHOWN]
                ],
            },
        )
        report.applied = True
    return report
