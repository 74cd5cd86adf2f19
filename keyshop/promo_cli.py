"""``keyshop promo …``: promo codes from the command line. Each command is a thin call
into :mod:`core.services.operator.promos`; amounts are typed as ``EUR=5`` (major units,
parsed by :func:`core.money.parse_amount`), percents as ``10`` or ``12.5``. Every change
is audited under ``--operator``."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from core import money
from core.db import session_scope
from core.errors import InvalidInput
from core.services.audit import Actor
from core.services.operator import promos
from keyshop.cli import default_operator, handles_errors

operator_option = click.option(
    "--operator",
    default=default_operator,
    show_default="your login name",
    help="Recorded as the actor in the audit trail.",
)


def _when(value: str | None, name: str) -> datetime | None:
    """``2026-12-24`` or ``2026-12-24T18:00`` as UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--{name}: a date or time, YYYY-MM-DD[THH:MM] (UTC)", field=name
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def terms(func: Any) -> Any:
    """The options every code takes (create and generate)."""
    options = [
        click.option("--percent", default=None, help="Percent off, e.g. 10 or 12.5."),
        click.option("--amount", "amounts", default=None,
                     help="Fixed amounts off per currency: 'EUR=5,USD=5.50'."),
        click.option("--minimum", default=None, help="Smallest order per currency: 'EUR=20'."),
        click.option("--scope", type=click.Choice(["shop", "products", "platforms", "genres"]),
                     default="shop", show_default=True),
        click.option("--only", "scope_values", multiple=True,
                     help="A product slug, platform or genre for --scope (repeat it)."),
        click.option("--starts", default=None, help="Valid from, YYYY-MM-DD[THH:MM] UTC."),
        click.option("--ends", default=None, help="Valid until (exclusive), YYYY-MM-DD[THH:MM] UTC."),
        click.option("--per-customer", type=int, default=None, help="Uses per customer."),
        click.option("--stackable", is_flag=True, help="May be combined with other stackable codes."),
        click.option("--below-cost", is_flag=True,
                     help="May take a price below the product's cost floor."),
        click.option("--campaign", default=None, help="A name grouping codes (reports, pause)."),
        click.option("--note", default="", help="Why the code exists."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _input(code: str | None, max_uses: int | None, **kw: Any) -> promos.PromoInput:
    return promos.PromoInput(
        code=code,
        percent=kw["percent"],
        amounts=kw["amounts"],
        minimum=kw["minimum"],
        scope=kw["scope"],
        scope_values=list(kw["scope_values"]),
        starts_at=_when(kw["starts"], "starts"),
        ends_at=_when(kw["ends"], "ends"),
        max_uses=max_uses,
        per_customer=kw["per_customer"],
        stackable=kw["stackable"],
        below_cost=kw["below_cost"],
        campaign=kw["campaign"],
        note=kw["note"],
    )


def _value(row: promos.PromoRow) -> str:
    if row.percent_bp is not None:
        return f"{row.percent_bp / 100:g} %"
    return ", ".join(money.format_money(m, c, style="code") for c, m in sorted(row.amounts.items()))


@click.group()
def promo() -> None:
    """Promo codes: create, generate, pause, resume, list, usage."""


@promo.command("create")
@click.argument("code")
@terms
@click.option("--max-uses", type=int, default=None, help="Uses in all (default: no limit).")
@operator_option
@handles_errors
def create_command(code: str, max_uses: int | None, operator: str, **kw: Any) -> None:
    """Create the promo code CODE (letters, digits, hyphens)."""
    made = promos.create_promo(data=_input(code, max_uses, **kw), actor=Actor.operator(operator))
    click.echo(f"promo code {made} created")


@promo.command("generate")
@click.option("--count", type=int, required=True, help="How many single-use codes.")
@click.option("--prefix", default="", help="Letters and digits before each code.")
@click.option("--csv", "csv_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the codes (a new file).")  # fmt: skip
@terms
@operator_option
@handles_errors
def generate_command(count: int, prefix: str, csv_file: Path, operator: str, **kw: Any) -> None:
    """Generate COUNT single-use codes with the same terms and write them to a CSV file
    (code, campaign, value, ends); the file is written only after the codes are stored."""
    if csv_file.exists():
        raise InvalidInput(f"{csv_file} exists; choose a new file", field="csv")
    data = _input(None, None, **kw)
    codes = promos.generate_codes(
        data=data, count=count, prefix=prefix, actor=Actor.operator(operator)
    )
    with session_scope(write=False) as session:
        sample = promos.list_promos(session=session, query=codes[0], limit=1)[0]
    with csv_file.open("x", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "campaign", "value", "ends"])
        ends = sample.ends_at.isoformat() if sample.ends_at else ""
        writer.writerows([c, sample.campaign or "", _value(sample), ends] for c in codes)
    click.echo(
        f"{len(codes)} single-use codes (campaign {sample.campaign or '-'}) written to {csv_file}"
    )


def _pause(code: str | None, campaign: str | None, paused: bool, operator: str) -> None:
    changed = promos.set_paused(
        code=code, campaign=campaign, paused=paused, actor=Actor.operator(operator)
    )
    word = "paused" if paused else "resumed"
    click.echo(f"{changed} code(s) {word}")


@promo.command("pause")
@click.argument("code", required=False)
@click.option("--campaign", default=None, help="Pause every code of this campaign instead.")
@operator_option
@handles_errors
def pause_command(code: str | None, campaign: str | None, operator: str) -> None:
    """Pause CODE (or a whole --campaign): checkouts refuse it until it is resumed."""
    _pause(code, campaign, True, operator)


@promo.command("resume")
@click.argument("code", required=False)
@click.option("--campaign", default=None, help="Resume every code of this campaign instead.")
@operator_option
@handles_errors
def resume_command(code: str | None, campaign: str | None, operator: str) -> None:
    """Resume a paused CODE (or a whole --campaign)."""
    _pause(code, campaign, False, operator)


@promo.command("list")
@click.option("-q", "query", default="", help="Codes starting with this.")
@click.option("--campaign", default=None)
@handles_errors
def list_command(query: str, campaign: str | None) -> None:
    """Codes, newest first: code, value, scope, uses, state, validity, campaign."""
    with session_scope(write=False) as session:
        rows = promos.list_promos(session=session, query=query, campaign=campaign)
    for r in rows:
        uses = f"{r.uses}/{r.max_uses}" if r.max_uses is not None else f"{r.uses}/-"
        valid = f"{r.starts_at:%Y-%m-%d}" if r.starts_at else ""
        valid += f"..{r.ends_at:%Y-%m-%d}" if r.ends_at else ""
        state = "paused" if r.paused else "active"
        click.echo("\t".join([r.code, _value(r), r.scope, uses, state, valid, r.campaign or ""]))


@promo.command("usage")
@click.argument("code")
@handles_errors
def usage_command(code: str) -> None:
    """A code's uses: in all, given back by cancelled orders, discount per currency, and
    the latest orders that used it."""
    with session_scope(write=False) as session:
        usage = promos.promo_usage(session=session, code=code)
    p = usage.promo
    limit = str(p.max_uses) if p.max_uses is not None else "no limit"
    click.echo(
        f"{p.code}: {_value(p)}, {usage.live} use(s) of {limit}, {usage.released} given back"
    )
    for cur, minor in sorted(usage.discount.items()):
        click.echo(f"discount given: {money.format_money(minor, cur, style='code')}")
    for u in usage.uses:
        state = "given back" if u.released else u.status
        shown = money.format_money(u.discount_minor, u.currency, style="code")
        click.echo(f"{u.created_at:%Y-%m-%d %H:%M}\t{u.order}\t{state}\t{u.email}\t-{shown}")


COMMANDS = [promo]
