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
from core.services.catalogue import covers
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
    "cover_alt": "the cover's alt text (default: made from the title)",
}
for _code in money.SHOP_CURRENCIES:
    HELP[f"price_{_code.lower()}"] = f"price in {_code}, major units; empty: not sold in {_code}"
    HELP[f"list_price_{_code.lower()}"] = f"the 'was' price in {_code}; left out: kept"

cover_option = click.option(
    "--cover",
    "cover",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A cover image (JPEG, PNG or WebP, at least 300x400, at most 10 MiB): resized "
    "for the storefront and kept in the blob store; replaces the old one.",
)

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
@cover_option
@operator_option
@handles_errors
def add_command(slug: str, cover: Path | None, operator: str, **fields: str | None) -> None:
    """Add product SLUG (--title, --platform and --price are required)."""
    data = validate_create({"slug": slug, **parse_product_text(_given(fields))}, strict=False)
    sizes = covers.load_cover_file(cover) if cover is not None else None  # checked first
    row = ops.add_product(data=data, actor=Actor.operator(operator))
    click.echo(
        f"added {row.slug}: {row.title} ({row.platform}, {row.region}) "
        f"{money.format_money(row.price_minor, row.currency, style='code')}"
    )
    if sizes is not None and cover is not None:
        covers.set_cover(
            slug=row.slug, sizes=sizes, actor=Actor.operator(operator), file_name=cover.name
        )
        click.echo(f"{row.slug}: cover {cover.name} uploaded")


@products.command("edit")
@click.argument("slug")
@click.option("--new-slug", default=None, help="Rename the product's slug (its page address).")
@field_options
@cover_option
@click.option("--remove-cover", is_flag=True, help="Take the uploaded cover off (and its blobs).")
@operator_option
@handles_errors
def edit_command(
    slug: str,
    new_slug: str | None,
    cover: Path | None,
    remove_cover: bool,
    operator: str,
    **fields: str | None,
) -> None:
    """Change the fields given of product SLUG (and its cover). Everything is checked
    before anything is written."""
    given = _given(fields)
    if cover is not None and remove_cover:
        raise click.UsageError("--cover and --remove-cover exclude each other")
    if not given and new_slug is None and cover is None and not remove_cover:
        raise click.UsageError("say what to change, e.g. --price 24.99")
    actor = Actor.operator(operator)
    data = None
    if given or new_slug is not None:
        currency = None
        if "price" in given or "list_price" in given:
            from core.services.catalogue import get_product_by_slug

            with session_scope(write=False) as session:
                currency = get_product_by_slug(session=session, slug=slug).currency
        typed = parse_product_text(given, currency=currency)
        if new_slug is not None:
            typed["slug"] = new_slug
        data = validate_update(typed, strict=False)
    sizes = covers.load_cover_file(cover) if cover is not None else None
    if data is not None:
        changes = ops.edit_product(slug=slug, data=data, actor=actor)
        if not changes:
            click.echo(f"{slug}: nothing to change")
        else:
            click.echo(f"{slug}: changed {', '.join(sorted(changes))}")
        slug = new_slug or slug
    if sizes is not None and cover is not None:
        covers.set_cover(slug=slug, sizes=sizes, actor=actor, file_name=cover.name)
        click.echo(f"{slug}: cover {cover.name} uploaded")
    elif remove_cover:
        done = covers.remove_cover(slug=slug, actor=actor)
        click.echo(f"{slug}: cover removed" if done else f"{slug}: had no uploaded cover")


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


@products.command("price")
@click.argument("slug")
@click.argument("currency")
@click.argument("amount", required=False)
@click.option("--list-price", default=None, help="the crossed-out 'was' price in CURRENCY")
@click.option("--remove", is_flag=True, help="Stop selling SLUG in CURRENCY.")
@operator_option
@handles_errors
def price_command(
    slug: str,
    currency: str,
    amount: str | None,
    list_price: str | None,
    remove: bool,
    operator: str,
) -> None:
    """Price SLUG in CURRENCY (e.g. ``price starfall USD 21.99``): a product is sold in
    its own currency and each currency priced here, never converted."""
    from core.services.catalogue.prices import set_product_price

    if (amount is None) != remove:
        raise click.UsageError("give an AMOUNT, or --remove")
    price = set_product_price(
        slug=slug,
        currency=currency,
        price=None if remove else amount,
        list_price=list_price,
        actor=Actor.operator(operator),
    )
    if price is None:
        click.echo(f"{slug}: no longer sold in {currency.upper()}")
    else:
        click.echo(f"{slug}: {money.format_money(price.minor, price.currency, style='code')}")


@products.command("check")
@handles_errors
def check_command() -> None:
    """Catalogue alerts: products on sale nothing can serve, offers changed since they
    were mapped, prices older than their offers' last sync (each raised as an alert)."""
    from core.services.catalogue_alerts import check_catalogue

    with session_scope() as session:
        found = check_catalogue(session=session)
    for slug in found.unsellable:
        click.echo(f"unsellable\t{slug}: on sale, no key in stock, no offer mapped")
    for offer in found.offer_changed:
        click.echo(f"offer-changed\t{offer}: title, platform or region changed since mapped")
    for slug in found.stale_price:
        click.echo(f"stale-price\t{slug}: priced before its offers' last sync")
    click.echo(f"{found.total} problem(s)", err=True)


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


# -- offers ---------------------------------------------------------------------------


@click.group()
def offers() -> None:
    """Providers' offers: list, map to a product, unmap, create a product from one."""


@offers.command("list")
@click.option("--unmapped", is_flag=True, help="Only offers not mapped to a product.")
@click.option("--provider", default=None, help="Only this provider's offers.")
@click.option("--query", "-q", default="", help="Part of the offer's name or id.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--suggest/--no-suggest", default=True, help="Closest products for unmapped ones.")
@handles_errors
def offers_list(
    unmapped: bool, provider: str | None, query: str, limit: int, suggest: bool
) -> None:
    """List offers: provider, id, name, platform, region, cost, stock, product."""
    from core.services.operator import offers as offer_ops

    with session_scope(write=False) as session:
        rows = offer_ops.list_offers(
            session=session, provider=provider, unmapped=unmapped, query=query, limit=limit
        )
        for r in rows:
            cost = offer_ops.describe_cost(r.cost_minor, r.currency)
            click.echo(
                f"{r.provider}\t{r.external_id}\t{r.name}\t{r.platform or '-'}\t"
                f"{r.region or '-'}\t{cost}\tstock {r.stock}\t{r.product_slug or 'UNMAPPED'}"
            )
            if suggest and r.product_slug is None:
                found = offer_ops.suggestions(
                    session=session, provider=r.provider, external_id=r.external_id
                )
                if found:
                    click.echo(
                        "\t  closest: "
                        + "; ".join(
                            f"{c.title} ({c.platform}, {c.region}) {c.score:.2f}" for c in found
                        )
                    )
    click.echo(f"{len(rows)} offer(s)", err=True)


@offers.command("map")
@click.argument("provider")
@click.argument("external_id")
@click.argument("slug")
@operator_option
@handles_errors
def offers_map(provider: str, external_id: str, slug: str, operator: str) -> None:
    """Map PROVIDER's offer EXTERNAL_ID to product SLUG (audited)."""
    from core.services.operator import offers as offer_ops

    done = offer_ops.map_offer(
        provider=provider, external_id=external_id, slug=slug, actor=Actor.operator(operator)
    )
    click.echo(f"{provider} {external_id} → {slug}" + ("" if done else " (already)"))


@offers.command("unmap")
@click.argument("provider")
@click.argument("external_id")
@operator_option
@handles_errors
def offers_unmap(provider: str, external_id: str, operator: str) -> None:
    """Unmap PROVIDER's offer EXTERNAL_ID (audited)."""
    from core.services.operator import offers as offer_ops

    done = offer_ops.unmap_offer(
        provider=provider, external_id=external_id, actor=Actor.operator(operator)
    )
    click.echo(f"{provider} {external_id}: " + ("unmapped" if done else "was not mapped"))


@offers.command("create-product")
@click.argument("provider")
@click.argument("external_id")
@click.option("--slug", default=None, help="The new product's slug (default from the title).")
@click.option("--price", default=None, help="Price in major units (default: cost + margin, …99).")
@operator_option
@handles_errors
def offers_create_product(
    provider: str, external_id: str, slug: str | None, price: str | None, operator: str
) -> None:
    """Create a product from PROVIDER's offer EXTERNAL_ID and map the offer to it."""
    from core.services.operator import offers as offer_ops

    price_minor = None
    if price is not None:
        with session_scope(write=False) as session:
            currency = offer_ops.find_offer(session, provider, external_id).currency
        price_minor = money.parse_amount(price, currency, field="price")
    row = offer_ops.create_product_from_offer(
        provider=provider,
        external_id=external_id,
        actor=Actor.operator(operator),
        slug=slug,
        price_minor=price_minor,
    )
    click.echo(
        f"added {row.slug}: {row.title} ({row.platform}, {row.region}) "
        f"{money.format_money(row.price_minor, row.currency, style='code')}, "
        f"mapped to {provider} {external_id}"
    )
    copied = covers.copy_linked_cover(slug=row.slug, actor=Actor.operator(operator))
    if copied:
        click.echo(f"{row.slug}: {copied}")


# -- pricing ------------------------------------------------------------------------------


@click.group()
def pricing() -> None:
    """Pricing rules: add, list, remove; apply them (or a dry run); a product's history."""


def _minor(text: str | None, currency: str, name: str) -> int | None:
    return None if text is None else money.parse_amount(text, currency, field=name)


def _bp(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    from decimal import Decimal, InvalidOperation

    from core.errors import InvalidInput

    try:
        value = Decimal(text.strip().rstrip("%"))
    except InvalidOperation:
        raise InvalidInput(f"{name} must be a percentage, e.g. 20 or 12.5", field=name) from None
    return int(value * 100)


@pricing.command("add")
@click.option("--product", "slug", default=None, help="A rule for this product only.")
@click.option("--platform", default=None, help="Default rule for a platform.")
@click.option("--region", default=None, help="Default rule for a region.")
@click.option("--genre", default=None, help="Default rule for a genre.")
@click.option("--currency", default="EUR", show_default=True)
@click.option("--fixed", default=None, help="A fixed price (major units).")
@click.option("--margin", default=None, help="Cost-plus margin in percent, e.g. 20.")
@click.option("--floor", default=None, help="Never below this price (cost-plus).")
@click.option("--ceiling", default=None, help="Never above this price (cost-plus).")
@click.option("--charm/--no-charm", default=True, show_default=True, help="Round up to …99.")
@click.option("--min-margin", default=None, help="Alert below this margin (fixed prices).")
@operator_option
@handles_errors
def pricing_add(
    slug: str | None,
    platform: str | None,
    region: str | None,
    genre: str | None,
    currency: str,
    fixed: str | None,
    margin: str | None,
    floor: str | None,
    ceiling: str | None,
    charm: bool,
    min_margin: str | None,
    operator: str,
) -> None:
    """Add a rule: --fixed PRICE, or --margin PERCENT [--floor] [--ceiling] (cost-plus)."""
    from core.errors import InvalidInput
    from core.services import pricing as rules
    from core.services.catalogue import get_product_by_slug

    if (fixed is None) == (margin is None):
        raise InvalidInput("give either --fixed PRICE or --margin PERCENT")
    product_id = None
    if slug is not None:
        with session_scope(write=False) as session:
            product = get_product_by_slug(session=session, slug=slug)
            product_id, currency = product.id, product.currency
    currency = money.normalise_currency(currency)
    rule = rules.RuleInput(
        currency=currency,
        mode=rules.FIXED if fixed is not None else rules.COST_PLUS,
        product_id=product_id,
        platform=platform,
        region=region,
        genre=genre,
        fixed_price_minor=_minor(fixed, currency, "fixed"),
        margin_bp=_bp(margin, "margin"),
        floor_minor=_minor(floor, currency, "floor"),
        ceiling_minor=_minor(ceiling, currency, "ceiling"),
        charm=charm,
        min_margin_bp=_bp(min_margin, "min_margin"),
    )
    rule_id = rules.add_rule(rule=rule, actor=Actor.operator(operator))
    click.echo(f"pricing rule #{rule_id} added; `keyshop pricing apply --dry-run` shows its effect")


@pricing.command("list")
@handles_errors
def pricing_list() -> None:
    """List the rules, most specific first as they apply."""
    from core.services import pricing as rules

    with session_scope(write=False) as session:
        for r in rules.rules(session=session):
            scope = (
                f"product #{r.product_id}"
                if r.product_id
                else ", ".join(
                    f"{k}={v}"
                    for k, v in (("platform", r.platform), ("region", r.region), ("genre", r.genre))
                    if v
                )
                or "default"
            )
            if r.mode == rules.FIXED:
                how = f"fixed {money.format_money(r.fixed_price_minor, r.currency, style='code')}"
            else:
                how = f"cost + {(r.margin_bp or 0) / 100:g} %"
                if r.floor_minor is not None:
                    how += f", floor {money.format_money(r.floor_minor, r.currency, style='code')}"
                if r.ceiling_minor is not None:
                    how += (
                        f", ceiling {money.format_money(r.ceiling_minor, r.currency, style='code')}"
                    )
                how += ", charm" if r.charm else ""
            click.echo(f"#{r.id}\t{r.currency}\t{scope}\t{how}")


@pricing.command("remove")
@click.argument("rule_id", type=int)
@operator_option
@handles_errors
def pricing_remove(rule_id: int, operator: str) -> None:
    """Remove rule RULE_ID (prices stay as they are until the next apply)."""
    from core.services import pricing as rules

    rules.remove_rule(rule_id=rule_id, actor=Actor.operator(operator))
    click.echo(f"pricing rule #{rule_id} removed")


@pricing.command("apply")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@operator_option
@handles_errors
def pricing_apply(dry_run: bool, operator: str) -> None:
    """Apply the rules to every product on sale; each change recorded with its reason."""
    from core.services import pricing as rules

    plans = rules.reprice(actor=Actor.operator(operator), dry_run=dry_run)
    for p in plans:
        click.echo(
            f"{p.slug}: {money.format_money(p.old_minor, p.currency, style='code')} → "
            f"{money.format_money(p.new_minor, p.currency, style='code')}  ({p.reason})"
        )
    verb = "would change" if dry_run else "changed"
    click.echo(f"{len(plans)} price(s) {verb}")


@pricing.command("history")
@click.argument("slug")
@handles_errors
def pricing_history(slug: str) -> None:
    """SLUG's price changes, newest first, with their reasons."""
    from core.services import pricing as rules
    from core.services.catalogue import get_product_by_slug

    with session_scope(write=False) as session:
        product = get_product_by_slug(session=session, slug=slug)
        assert product.id is not None
        for c in rules.price_history(session=session, product_id=product.id):
            old = money.format_money(c.old_minor, c.currency, style="code") or "-"
            new = money.format_money(c.new_minor, c.currency, style="code")
            click.echo(f"{c.created_at:%Y-%m-%d %H:%M}\t{old} → {new}\t{c.actor}\t{c.reason}")


# -- reports and exports ------------------------------------------------------------------


def _date(value: str, name: str) -> Any:
    from datetime import date

    from core.errors import InvalidInput

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a date, YYYY-MM-DD", field=name) from None


@click.group()
def report() -> None:
    """Reports: sales with revenue, cost and margin; discounts given by promo codes."""


@report.command("sales")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "end", required=True, help="Last day, YYYY-MM-DD (inclusive).")
@click.option(
    "--by",
    default="day",
    show_default=True,
    type=click.Choice(["day", "week", "month", "product", "platform", "provider", "source"]),
)
@click.option("--csv", "csv_file", type=click.Path(path_type=Path, dir_okay=False), default=None)
@handles_errors
def report_sales(start: str, end: str, by: str, csv_file: Path | None) -> None:
    """Revenue, cost, margin and count of delivered keys, grouped --by."""
    import csv

    from core.csvsafe import escape_cell
    from core.services.reports import sales

    with session_scope(write=False) as session:
        rows = sales(session=session, start=_date(start, "from"), end=_date(end, "to"), by=by)
    header = [by, "currency", "count", "revenue", "cost", "margin", "margin_percent",
              "cost_unknown"]  # fmt: skip

    def cells(r: Any, fmt: Any) -> list[str]:
        pct = "" if r.margin_percent is None else f"{r.margin_percent:.1f}"
        return [r.group, r.currency, str(r.count), fmt(r.revenue_minor, r.currency),
                fmt(r.cost_minor, r.currency), fmt(r.margin_minor, r.currency), pct,
                str(r.cost_unknown)]  # fmt: skip

    if csv_file is not None:
        with csv_file.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            plain = lambda m, c: f"{money.to_decimal(m, c):.{money.exponent(c)}f}"  # noqa: E731
            writer.writerows([escape_cell(c) for c in cells(r, plain)] for r in rows)
        click.echo(f"{len(rows)} row(s) written to {csv_file}")
        return
    shown = lambda m, c: money.format_money(m, c, style="code")  # noqa: E731
    click.echo("\t".join(header))
    for r in rows:
        click.echo("\t".join(cells(r, shown)))


@report.command("discounts")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "end", required=True, help="Last day, YYYY-MM-DD (inclusive).")
@click.option(
    "--by",
    default="currency",
    show_default=True,
    type=click.Choice(["currency", "code", "campaign"]),
)
@handles_errors
def report_discounts(start: str, end: str, by: str) -> None:
    """What promo codes took off orders paid in the period, per currency (or per code or
    campaign), with what those orders were paid; refunded and cancelled orders left out."""
    from core.services.reports import discounts_given

    with session_scope(write=False) as session:
        rows = discounts_given(
            session=session, start=_date(start, "from"), end=_date(end, "to"), by=by
        )
    click.echo("\t".join([by, "currency", "orders", "discount", "paid"]))
    for r in rows:
        shown = [
            money.format_money(m, r.currency, style="code")
            for m in (r.discount_minor, r.paid_minor)
        ]
        click.echo("\t".join([r.group, r.currency, str(r.orders), *shown]))


@click.command("export")
@click.argument("kind", type=click.Choice(["orders", "keys", "customers", "audit", "webhooks"]))
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "end", required=True, help="Last day, YYYY-MM-DD (inclusive).")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@handles_errors
def export_command_kind(kind: str, start: str, end: str, file: Path) -> None:
    """Export KIND rows of the period to FILE as CSV, streamed (keys masked, formulas
    neutralised)."""
    from core.services.exports import export_to_file

    count = export_to_file(kind, start=_date(start, "from"), end=_date(end, "to"), path=file)
    click.echo(f"exported {count} {kind} row(s) to {file}")


COMMANDS = [products, offers, pricing, report, export_command_kind]
