"""The demo catalogue: invented titles with generated cover art and demo keys in stock.

``seed_demo`` loads it into the caller's transaction (it never commits; the CLI's
``keyshop seed-demo`` wraps it in ``session_scope()``). It is idempotent: products are
matched on slug, existing ones are left alone (no new keys either) and counted as
``products_existing``.

Everything is deterministic for a given ``rng_seed`` -- prices, stock levels, dates
relative to today and the demo key codes themselves -- except the timestamps and the
encryption nonces. Each product draws from its own ``random.Random(f"{seed}:{slug}")``,
so the result for one product does not depend on which others already exist.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import random
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Final
from xml.sax.saxutils import escape

from sqlalchemy import select
from sqlmodel import Session

from core.crypto import KeyVault, get_vault
from core.demo_data import ACTIVATION, DEMO_TITLES, REGION_NOTES, DemoTitle
from core.errors import DuplicateSlug, InvalidInput
from core.models import Key, KeyStatus, new_uuid, utcnow
from core.services.catalogue import create_product, keys_table
from core.services.catalogue import products as products_table

DEMO_SUPPLIER: Final = "demo"
MAX_KEYS_PER_PRODUCT: Final = 10_000
# Demo codes avoid look-alike characters (0/O, 1/I).
CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_RE: Final = re.compile(r"[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}")
_FLUSH_EVERY: Final = 2000


@dataclass(frozen=True, slots=True)
class DemoSummary:
    products_created: int
    products_existing: int
    keys_created: int


# -- cover art ----------------------------------------------------------------------


def _wrap(title: str, width: int = 14, max_lines: int = 4) -> list[str]:
    lines: list[str] = []
    for word in title.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    return lines


def _hsl(h: float, s: float, lum: float) -> str:
    r, g, b = colorsys.hls_to_rgb((h % 360) / 360, lum, s)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def cover_svg(title: str, platform: str) -> str:
    """Placeholder cover art for a title: a ``data:image/svg+xml;base64,…`` URL.

    A 300 x 400 SVG with a diagonal gradient from a palette derived from a hash of the
    title (the same title always gets the same colours), the title set in large type
    and a platform badge. No images, fonts or anything copyrighted: generic sans-serif.
    """
    digest = hashlib.sha256(title.encode("utf-8")).digest()
    hue = digest[0] * 360 / 256
    shift = 40 + digest[1] % 100
    top = _hsl(hue, 0.55 + digest[2] / 1020, 0.42)
    bottom = _hsl(hue + shift, 0.60, 0.16)
    glow = _hsl(hue + shift / 2, 0.75, 0.62)
    lines = _wrap(title)
    longest = max((len(line) for line in lines), default=1)
    size = max(20, min(40, int(480 / max(longest, 1))))
    first_y = 170 - (len(lines) - 1) * size * 0.6
    text = "".join(
        f'<tspan x="150" y="{first_y + i * size * 1.2:.0f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    badge = escape(platform)
    badge_w = 24 + 9 * len(platform)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 400" width="300" height="400">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        "</linearGradient></defs>"
        '<rect width="300" height="400" fill="url(#g)"/>'
        f'<circle cx="{60 + digest[3] % 180}" cy="{60 + digest[4] % 120}" r="{50 + digest[5] % 60}" '
        f'fill="{glow}" opacity="0.25"/>'
        '<g font-family="Helvetica, Arial, sans-serif" text-anchor="middle" fill="#ffffff">'
        f'<text font-size="{size}" font-weight="700">{text}</text>'
        f'<rect x="{150 - badge_w / 2:.0f}" y="336" width="{badge_w}" height="30" rx="15" '
        'fill="#000000" fill-opacity="0.45"/>'
        f'<text x="150" y="356" font-size="15" font-weight="600">{badge}</text>'
        "</g></svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _cover_for(title: str, platform: str) -> str | None:
    """The generated cover when it fits ``products.cover_url``, otherwise None (the
    storefront then draws ``cover_svg(title, platform)`` itself)."""
    url = cover_svg(title, platform)
    limit = products_table.c.cover_url.type.length  # type: ignore[attr-defined]
    return url if limit is None or len(url) <= limit else None


# -- the catalogue ------------------------------------------------------------------


def demo_slug(spec: DemoTitle) -> str:
    text = f"{spec.title} {spec.platform} {spec.region}".lower().replace("&", "and")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def demo_code(rng: random.Random) -> str:
    """A demo key in the usual XXXXX-XXXXX-XXXXX shape."""
    return "-".join("".join(rng.choice(CODE_ALPHABET) for _ in range(5)) for _ in range(3))


def _key_count(spec: DemoTitle, keys_per_product: int) -> int:
    if spec.preorder or spec.stock == "out":
        return 0  # preorder keys arrive at release; "out" titles show the sold-out state
    if spec.stock == "low":
        return min(keys_per_product, max(1, spec.low_stock_threshold // 2))
    return keys_per_product


def _unique_codes(
    session: Session, vault: KeyVault, rng: random.Random, count: int, taken: set[bytes]
) -> list[tuple[str, bytes]]:
    """``count`` fresh codes with their fingerprints, none already in stock or in this run."""
    chosen: list[tuple[str, bytes]] = []
    while len(chosen) < count:
        batch: dict[bytes, str] = {}
        while len(batch) < count - len(chosen):
            code = demo_code(rng)
            fp = vault.fingerprint(code)
            if fp not in taken:
                batch[fp] = code
        in_stock = set(
            session.execute(
                select(keys_table.c.fingerprint).where(keys_table.c.fingerprint.in_(list(batch)))
            ).scalars()
        )
        for fp, code in batch.items():
            taken.add(fp)
            if fp not in in_stock:
                chosen.append((code, fp))
    return chosen


def seed_demo(*, session: Session, keys_per_product: int = 25, rng_seed: int = 2026) -> DemoSummary:
    """Load the demo catalogue into the caller's transaction (flushed, never committed).

    Creates the products of :data:`core.demo_data.DEMO_TITLES` that are not there yet
    (matched on slug) through :func:`core.services.catalogue.create_product`, with
    generated cover art, activation instructions per platform and region, preorders
    released in the future, and ``keys_per_product`` demo keys for most titles (a few
    are sold out, a few below their low-stock threshold, preorders have none yet). Keys
    are encrypted and fingerprinted exactly like imported ones, supplier ``demo``.
    """
    if (
        not isinstance(keys_per_product, int)
        or isinstance(keys_per_product, bool)
        or not 0 <= keys_per_product <= MAX_KEYS_PER_PRODUCT
    ):
        raise InvalidInput(
            f"keys_per_product must be a whole number from 0 to {MAX_KEYS_PER_PRODUCT}",
            field="keys_per_product",
        )
    vault = get_vault()
    now = utcnow()
    today = now.date()
    slugs = [demo_slug(spec) for spec in DEMO_TITLES]
    existing = set(
        session.execute(
            select(products_table.c.slug).where(products_table.c.slug.in_(slugs))
        ).scalars()
    )
    created = already = keys_created = 0
    taken: set[bytes] = set()
    for spec, slug in zip(DEMO_TITLES, slugs, strict=True):
        if slug in existing:
            already += 1
            continue
        rng = random.Random(f"{rng_seed}:{slug}")  # noqa: S311 (demo data, seeded on purpose)
        if spec.preorder:
            release = today + timedelta(days=rng.randint(21, 240))
            created_at = now - timedelta(hours=rng.randint(1, 24 * 14))
        else:
            release = today - timedelta(days=rng.randint(45, 2400))
            created_at = now - timedelta(hours=rng.randint(24 * 3, 24 * 400))
        instructions = f"{ACTIVATION[spec.platform]}\n\n{REGION_NOTES[spec.region]}"
        description = (
            f"{spec.blurb}\n\n{spec.title} ({spec.genre}) by {spec.publisher}, "
            f"a {spec.platform} key for region {spec.region}."
            + (
                f" Releases on {release.isoformat()}; keys are delivered at release."
                if spec.preorder
                else ""
            )
        )
        try:
            product = create_product(
                session=session,
                slug=slug,
                title=spec.title,
                platform=spec.platform,
                region=spec.region,
                genre=spec.genre,
                price_minor=spec.price_minor,
                currency=spec.currency,
                publisher=spec.publisher,
                description=description,
                list_price_minor=spec.list_price_minor,
                is_preorder=spec.preorder,
                release_date=release,
                activation_instructions=instructions,
                low_stock_threshold=spec.low_stock_threshold,
                featured=spec.featured,
                cover_url=_cover_for(spec.title, spec.platform),
            )
        except DuplicateSlug:  # created meanwhile by a concurrent seed
            already += 1
            continue
        product.created_at = product.updated_at = created_at
        assert product.id is not None  # flushed by create_product
        created += 1
        count = _key_count(spec, keys_per_product)
        for code, fp in _unique_codes(session, vault, rng, count, taken):
            row_id = new_uuid()
            version, blob = vault.encrypt(code.encode(), row_id=row_id)
            session.add(
                Key(
                    id=row_id,
                    product_id=product.id,
                    status=KeyStatus.AVAILABLE,
                    ciphertext=blob,
                    key_version=version,
                    fingerprint=fp,
                    supplier=DEMO_SUPPLIER,
                    cost_minor=round(spec.price_minor * rng.uniform(0.55, 0.8)),
                    cost_currency=spec.currency,
                )
            )
            keys_created += 1
            if keys_created % _FLUSH_EVERY == 0:
                session.flush()
    session.flush()
    return DemoSummary(
        products_created=created, products_existing=already, keys_created=keys_created
    )
