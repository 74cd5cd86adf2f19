"""``keyshop products …``: the catalogue from the command line. Each command is a thin
call into :mod:`core.services.operator.catalogue` (or its CSV module); the options of
``add`` and ``edit`` are the product model's fields, typed as text and validated by the
model family."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from core import money
from core.db import session_scope
from core.services.audit import Actor
from core.services.catalogue.product_input import (
    parse_product_text,
    validate_create,
    validate_update,
)
from core.services.operator import catalogue as ops
from core.services.operator import catalogue_csv
from keyshop.cli import EXIT_DOMAIN, default_operator, handles_errors

TEXT_FIELDS = [c for c in catalogue_csv.COLUMNS if c != "slug"]
HELP = {
    "price": "price in major units, e.g. 19.99 (in --currency, default the product's or EUR)",
    "list_price": "the crossed-out 'was' price, major units; empty clears it",
    "is_preorder": "yes/no",
    "featured": "yes/no",
    "active": "yes/no (retire and restore say it better)",
    "release_date": "YYYY-MM-DD; empty clears it",
}

operator_option = click.option(
    "--operator",
    default=default_operator,
    show_default="your login name",
    help="Recorded as the actor in the audit trail.",
)


def field_options(func: Any) -> Any:
    """One text option per product field (``--list-price``, ``--release-date``, …)."""
    for name in reversed(TEXT_FIELDS):
        func = click.option(
            f"--{name.replace('_', '-')}", name, default=None, help=HELP.get(name, name)
        )(func)
    return func


def _given(values: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


@click.group()
def products() -> None:
    """The catalogue: list, add, edit, retire, restore, delete, import and export."""


@products.command("list")
@click.option("--query", "-q", default="", help="Part of the slug or title.")
@click.option("--retired/--on-sale", default=None, help="Only retired, or only on-sale products.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@handles_errors
def list_command(query: str, retired: bool | None, limit: int) -> None:
    """List products: slug, title, platform, region, price, keys, offers, orders."""
    with session_scope(write=False) as session:
        rows = ops.list_products(session=session, query=query, retired=retired, limit=limit)
    for r in rows:
        state = "on sale" if r.active else "retired"
        click.echo(
            f"{r.slug}\t{r.title}\t{r.platform}\t{r.region}\t"
            f"{money.format_money(r.price_minor, r.currency, style='code')}\t{state}\t"
            f"keys {r.available_keys}\toffers {r.mapped_offers}\torders {r.ordered}"
        )
    click.echo(f"{len(rows)} product(s)", err=True)


@products.command("add")
@click.argument("slug")
@field_options
@operator_option
@handles_errors
def add_command(slug: str, operator: str, **fields: str | None) -> None:
    """Add product SLUG (--title, --platform and --price are required)."""
    data = validate_create({"slug": slug, **parse_product_text(_given(fields))}, strict=False)
    row = ops.add_product(data=data, actor=Actor.operator(operator))
    click.echo(
        f"added {row.slug}: {row.title} ({row.platform}, {row.region}) "
        f"{money.format_money(row.price_minor, row.currency, style='code')}"
    )


@products.command("edit")
@click.argument("slug")
@click.option("--new-slug", default=None, help="Rename the product's slug (its page address).")
@field_options
@operator_option
@handles_errors
def edit_command(slug: str, new_slug: str | None, operator: str, **fields: str | None) -> None:
    """Change the fields given of product SLUG."""
    given = _given(fields)
    if not given and new_slug is None:
        raise click.UsageError("say what to change, e.g. --price 24.99")
    currency = None
    if "price" in given or "list_price" in given:
        from core.services.catalogue import get_product_by_slug

        with session_scope(write=False) as session:
            currency = get_product_by_slug(session=session, slug=slug).currency
    typed = parse_product_text(given, currency=currency)
    if new_slug is not None:
        typed["slug"] = new_slug
    changes = ops.edit_product(
        slug=slug, data=validate_update(typed, strict=False), actor=Actor.operator(operator)
    )
    if not changes:
        click.echo(f"{slug}: nothing to change")
    else:
        click.echo(f"{slug}: changed {', '.join(sorted(changes))}")


@products.command("retire")
@click.argument("slug")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@operator_option
@handles_errors
def retire_command(slug: str, reason: str, operator: str) -> None:
    """Take SLUG off sale; kept with its orders and keys (restore puts it back)."""
    done = ops.retire_product(slug=slug, actor=Actor.operator(operator), reason=reason)
    click.echo(f"{slug}: retired" if done else f"{slug}: already retired")


@products.command("restore")
@click.argument("slug")
@operator_option
@handles_errors
def restore_command(slug: str, operator: str) -> None:
    """Put a retired product back on sale."""
    done = ops.restore_product(slug=slug, actor=Actor.operator(operator))
    click.echo(f"{slug}: back on sale" if done else f"{slug}: already on sale")


@products.command("delete")
@click.argument("slug")
@operator_option
@handles_errors
def delete_command(slug: str, operator: str) -> None:
    """Delete a product added by mistake (never ordered, no keys); otherwise retire it."""
    ops.delete_product(slug=slug, actor=Actor.operator(operator))
    click.echo(f"{slug}: deleted")


@products.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@handles_errors
def export_command(file: Path) -> None:
    """Write the catalogue to FILE as CSV (what import reads)."""
    count = catalogue_csv.export_catalogue(file)
    click.echo(f"exported {count} product(s) to {file}")


@products.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--apply-valid",
    is_flag=True,
    help="Apply the good lines even when some are refused (default: change nothing).",
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@operator_option
@handles_errors
def import_command(file: Path, apply_valid: bool, dry_run: bool, operator: str) -> None:
    """Import the catalogue CSV FILE: each line created, updated, unchanged or refused."""
    report = catalogue_csv.import_catalogue(
        path=file, actor=Actor.operator(operator), apply_valid=apply_valid, dry_run=dry_run
    )
    for line in report.lines:
        reason = f": {line.reason}" if line.reason else ""
        click.echo(f"line {line.line}: {line.outcome} {line.slug}{reason}".rstrip())
    counts = ", ".join(
        f"{report.count(o)} {o}"
        for o in (catalogue_csv.CREATED, catalogue_csv.UPDATED, catalogue_csv.UNCHANGED)
    )
    refused = len(report.refused)
    if report.applied:
        click.echo(f"{file.name}: {counts}, {refused} refused")
    elif dry_run:
        click.echo(f"{file.name} (dry run, nothing changed): {counts}, {refused} refused")
    else:
        click.echo(
            f"{file.name}: {refused} line(s) refused, nothing changed "
            "(fix them, or pass --apply-valid to apply the other lines)",
            err=True,
        )
        sys.exit(EXIT_DOMAIN)


COMMANDS = [products]
