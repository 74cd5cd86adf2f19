"""The product model family: what a caller may send to create or edit a product.

:class:`ProductCreate` and :class:`ProductUpdate` are pydantic models with
``extra="forbid"``: an unknown field is refused, every field is checked once, here, and
the same rules serve the CLI, the console's forms and the CSV import. From Python they
validate strictly (``19.99`` is not a price in minor units, ``"yes"`` is not a boolean);
text typed by a person goes through :func:`parse_product_text`, which validates leniently
(``"yes"``, ``"2025-03-01"``, ``"5"``) after turning prices into minor units with
:mod:`core.money`.

A validation failure is :class:`~core.errors.InvalidInput` naming the first bad field
(``field``) with one sentence about it; nothing is written.

Prices per currency: ``price_minor`` and ``currency`` are the product's own price;
``prices`` maps other currencies to a :class:`CurrencyPrice` (the product is sold in
each, never converted; kept in ``product_prices``). In an update a currency mapped to
None stops selling in it, and a :class:`CurrencyPrice` without ``list_price_minor``
keeps the list price it had. Typed as text these are the ``price_usd`` /
``list_price_usd`` columns (one pair per currency), and an entry for the product's own
currency must say the same as ``price`` (checked where the product is known:
:func:`core.services.catalogue.prices.other_prices`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core import money
from core.config import get_settings
from core.errors import InvalidInput
from core.models import PLATFORMS, REGIONS

SLUG_RE: Final = re.compile(r"[a-z0-9-]{1,120}")
CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
MAX_MINOR: Final = 10**15
MAX_THRESHOLD: Final = 1_000_000
MAX_COVER_URL: Final = 2_000_000  # a data: URI of a small cover fits
MAX_LONG_TEXT: Final = 20_000

PLATFORM_BY_LOWER: Final = {p.lower(): p for p in PLATFORMS}
REGION_BY_LOWER: Final = {r.lower(): r for r in REGIONS}

# One sentence per field: what a good value is. Used for every failure of that field.
MESSAGES: Final[dict[str, str]] = {
    "slug": "slug must be 1 to 120 characters of lower-case letters, digits and hyphens",
    "title": "title must be text of 1 to 200 characters",
    "platform": "platform must be text of 1 to 40 characters (Steam, Xbox, GOG, …)",
    "region": "region must be text of 1 to 20 characters (GLOBAL, EU, US, …)",
    "genre": "genre must be text of at most 40 characters",
    "publisher": "publisher must be text of at most 120 characters",
    "description": f"description must be text of at most {MAX_LONG_TEXT:,} characters",
    "activation_instructions": (
        f"activation_instructions must be text of at most {MAX_LONG_TEXT:,} characters"
    ),
    "price_minor": "price_minor must be a whole number of minor units, 0 or more",
    "list_price_minor": (
        "list_price_minor must be empty or a whole number of minor units, 0 or more"
    ),
    "currency": "currency must be a three-letter ISO code in capitals, like EUR",
    "low_stock_threshold": (
        f"low_stock_threshold must be a whole number from 0 to {MAX_THRESHOLD:,}"
    ),
    "is_preorder": "is_preorder must be true or false",
    "featured": "featured must be true or false",
    "active": "active must be true or false",
    "release_date": "release_date must be a date (YYYY-MM-DD) or empty",
    "cover_url": "cover_url must be text or empty",
    "cover_alt": "cover_alt must be text of at most 300 characters",
}

# Fields that may be empty (None) on a product.
NULLABLE: Final = frozenset({"list_price_minor", "release_date", "cover_url"})


def _text(value: Any, *, name: str, max_len: int, required: bool) -> Any:
    if not isinstance(value, str):
        return value  # the type check reports it
    value = value.strip()
    if (required and not value) or len(value) > max_len:
        raise ValueError(MESSAGES[name])
    return value


class _ProductFields(BaseModel):
    """The checks every product field gets, whichever model carries it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    _TEXT: ClassVar[dict[str, tuple[int, bool]]] = {
        "title": (200, True),
        "platform": (40, True),
        "region": (20, True),
        "genre": (40, False),
        "publisher": (120, False),
        "description": (MAX_LONG_TEXT, False),
        "activation_instructions": (MAX_LONG_TEXT, False),
        "cover_alt": (300, False),
    }

    @field_validator(*_TEXT, mode="before", check_fields=False)
    @classmethod
    def _strip_text(cls, value: Any, info: Any) -> Any:
        max_len, required = cls._TEXT[info.field_name]
        return _text(value, name=info.field_name, max_len=max_len, required=required)

    @field_validator("platform", mode="after", check_fields=False)
    @classmethod
    def _canonical_platform(cls, value: str | None) -> str | None:
        return None if value is None else PLATFORM_BY_LOWER.get(value.lower(), value)

    @field_validator("region", mode="after", check_fields=False)
    @classmethod
    def _canonical_region(cls, value: str | None) -> str | None:
        return None if value is None else REGION_BY_LOWER.get(value.lower(), value)

    @field_validator("slug", mode="after", check_fields=False)
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not SLUG_RE.fullmatch(value):
            raise ValueError(MESSAGES["slug"])
        return value

    @field_validator("currency", mode="after", check_fields=False)
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and not CURRENCY_RE.fullmatch(value):
            raise ValueError(MESSAGES["currency"])
        return value

    @field_validator("price_minor", "list_price_minor", mode="after", check_fields=False)
    @classmethod
    def _minor(cls, value: int | None, info: Any) -> int | None:
        if value is not None and not (0 <= value < MAX_MINOR):
            raise ValueError(MESSAGES[info.field_name])
        return value

    @field_validator("low_stock_threshold", mode="after", check_fields=False)
    @classmethod
    def _threshold(cls, value: int | None) -> int | None:
        if value is not None and not (0 <= value <= MAX_THRESHOLD):
            raise ValueError(MESSAGES["low_stock_threshold"])
        return value

    @field_validator("cover_url", mode="after", check_fields=False)
    @classmethod
    def _cover(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_COVER_URL:
            raise ValueError(MESSAGES["cover_url"])
        return value

    @field_validator("prices", mode="before", check_fields=False)
    @classmethod
    def _prices(cls, value: Any) -> Any:
        return None if value is None else check_prices(value, removable=cls is ProductUpdate)


class CurrencyPrice(BaseModel):
    """A product's price in a currency other than its own, in that currency's minor
    units; ``list_price_minor`` is the crossed-out "was" price (None: none)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    price_minor: int
    list_price_minor: int | None = None


def price_column(currency: str, *, listed: bool = False) -> str:
    """The text/CSV name of a currency's price: ``price_usd``, ``list_price_usd``."""
    return f"{'list_price' if listed else 'price'}_{currency.lower()}"


def _minor_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_MINOR


def check_prices(value: Any, *, removable: bool) -> dict[str, CurrencyPrice | None]:
    """A ``prices`` mapping checked entry by entry; ValueError naming the column of the
    first bad one (``price_usd: …``)."""
    if not isinstance(value, dict):
        raise ValueError("prices: prices must map currency codes (USD) to prices")
    out: dict[str, CurrencyPrice | None] = {}
    for code, entry in value.items():
        if not isinstance(code, str) or not CURRENCY_RE.fullmatch(code):
            raise ValueError(f"prices: {str(code)[:10]!r} is not a currency code like USD")
        column = price_column(code)
        if entry is None:
            if removable:  # a new product is simply not sold in that currency
                out[code] = None
            continue
        if isinstance(entry, dict):
            try:
                entry = CurrencyPrice.model_validate(entry, strict=True)
            except ValidationError:
                raise ValueError(
                    f"{column}: {column} must be a whole number of minor units, 0 or more"
                ) from None
        if not isinstance(entry, CurrencyPrice):
            raise ValueError(f"{column}: {column} must be a price")
        if not _minor_ok(entry.price_minor):
            raise ValueError(f"{column}: {column} must be a whole number of minor units, 0 or more")
        if entry.list_price_minor is not None and not _minor_ok(entry.list_price_minor):
            listed = price_column(code, listed=True)
            raise ValueError(f"{listed}: {listed} must be empty or a whole number of minor units")
        out[code] = entry
    return out


def _default_threshold() -> int:
    return get_settings().default_low_stock_threshold


class ProductCreate(_ProductFields):
    """A new product. ``slug``, ``title``, ``platform`` and ``price_minor`` are
    required; the rest have the shop's defaults (``KEYSHOP_LOW_STOCK_THRESHOLD`` for the
    low-stock threshold)."""

    slug: str
    title: str
    platform: str
    region: str = "GLOBAL"
    genre: str = ""
    publisher: str = ""
    description: str = ""
    activation_instructions: str = ""
    price_minor: int
    currency: str = money.DEFAULT_CURRENCY
    list_price_minor: int | None = None
    is_preorder: bool = False
    release_date: date | None = None
    low_stock_threshold: int = Field(default_factory=_default_threshold)
    featured: bool = False
    active: bool = True
    cover_url: str | None = None
    cover_alt: str = ""
    prices: dict[str, CurrencyPrice] = Field(default_factory=dict)


class ProductUpdate(_ProductFields):
    """Changes to a product: only the fields given are changed. A field that cannot be
    empty refuses None; ``list_price_minor``, ``release_date`` and ``cover_url`` take
    None to clear them."""

    slug: str | None = None
    title: str | None = None
    platform: str | None = None
    region: str | None = None
    genre: str | None = None
    publisher: str | None = None
    description: str | None = None
    activation_instructions: str | None = None
    price_minor: int | None = None
    currency: str | None = None
    list_price_minor: int | None = None
    is_preorder: bool | None = None
    release_date: date | None = None
    low_stock_threshold: int | None = None
    featured: bool | None = None
    active: bool | None = None
    cover_url: str | None = None
    cover_alt: str | None = None
    prices: dict[str, CurrencyPrice | None] | None = None

    @model_validator(mode="after")
    def _no_empty_required(self) -> ProductUpdate:
        for name in sorted(self.model_fields_set - NULLABLE):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: {MESSAGES.get(name, f'{name} cannot be empty')}")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, with their (checked) values (``prices`` as given: the
        :class:`CurrencyPrice` entries, not dumped, so a missing list price stays told
        apart from an empty one)."""
        out = self.model_dump(exclude_unset=True, exclude={"prices"})
        if "prices" in self.model_fields_set and self.prices is not None:
            out["prices"] = dict(self.prices)
        return out


FIELDS: Final = tuple(ProductCreate.model_fields)


def invalid_input(exc: ValidationError) -> InvalidInput:
    """The first problem of a failed validation as InvalidInput naming the field (and
    every unknown field at once)."""
    errors = exc.errors(include_url=False, include_input=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return InvalidInput(f"unknown product field(s): {', '.join(unknown)}", fields=unknown)
    first = errors[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "missing":
        return InvalidInput(f"{name} is required", field=name)
    if name in MESSAGES:
        return InvalidInput(MESSAGES[name], field=name)
    message = str(first["msg"]).removeprefix("Value error, ")
    field = message.split(":", 1)[0] if ":" in message else name
    return InvalidInput(message, field=field)


def validate_create(fields: dict[str, Any], *, strict: bool = True) -> ProductCreate:
    try:
        return ProductCreate.model_validate(fields, strict=strict)
    except ValidationError as exc:
        raise invalid_input(exc) from None


def validate_update(fields: dict[str, Any], *, strict: bool = True) -> ProductUpdate:
    try:
        return ProductUpdate.model_validate(fields, strict=strict)
    except ValidationError as exc:
        raise invalid_input(exc) from None


# -- text as a person types it (CLI options, console forms, CSV cells) -------------------

BOOL_WORDS: Final = {
    "true": True, "yes": True, "y": True, "1": True, "on": True,
    "false": False, "no": False, "n": False, "0": False, "off": False,
}  # fmt: skip
PRICE_FIELDS: Final = {"price": "price_minor", "list_price": "list_price_minor"}
CURRENCY_COLUMN_RE: Final = re.compile(r"(list_)?price_([a-z]{3})")


def _currency_prices(values: dict[str, str]) -> dict[str, dict[str, int | None] | None]:
    """The ``price_usd`` / ``list_price_usd`` texts as ``prices`` entries: an empty price
    is None (not sold in that currency); a list price column left out keeps the list
    price the product has. InvalidInput names the column."""
    out: dict[str, dict[str, int | None] | None] = {}
    for name in values:
        found = CURRENCY_COLUMN_RE.fullmatch(name)
        if found is None or found.group(1):
            continue
        code = found.group(2).upper()
        text = values[name].strip()
        listed_name = price_column(code, listed=True)
        listed = values.get(listed_name, "").strip()
        if not text:
            if listed:
                raise InvalidInput(f"{listed_name} needs a {name} beside it", field=listed_name)
            out[code] = None
            continue
        entry: dict[str, int | None] = {"price_minor": money.parse_amount(text, code, field=name)}
        if listed_name in values:
            entry["list_price_minor"] = (
                money.parse_amount(listed, code, field=listed_name) if listed else None
            )
        out[code] = entry
    for name in values:
        found = CURRENCY_COLUMN_RE.fullmatch(name)
        if found is not None and found.group(1) and found.group(2).upper() not in out:
            raise InvalidInput(
                f"{name} needs a {price_column(found.group(2))} beside it", field=name
            )
    return out


def parse_product_text(values: dict[str, str], *, currency: str | None = None) -> dict[str, Any]:
    """Text fields (``price`` and ``list_price`` in major units, ``19.99``) as the typed
    values the models take: prices to minor units of the ``currency`` value given (else
    ``currency``, else EUR), empty text to None for the fields that may be empty,
    booleans from yes/no/true/false/1/0, whole numbers and ISO dates. Raises InvalidInput
    naming the field; the models check the rest."""
    out: dict[str, Any] = {}
    code = (values.get("currency") or "").strip() or currency or money.DEFAULT_CURRENCY
    prices = _currency_prices(values)
    if prices:
        out["prices"] = prices
    for name, raw in values.items():
        text = raw.strip()
        if CURRENCY_COLUMN_RE.fullmatch(name):
            continue
        if name in PRICE_FIELDS:
            target = PRICE_FIELDS[name]
            if text == "" and target in NULLABLE:
                out[target] = None
                continue
            if not CURRENCY_RE.fullmatch(code):
                raise InvalidInput(MESSAGES["currency"], field="currency")
            out[target] = money.parse_amount(text, code, field=name)
        elif name in ("is_preorder", "featured", "active"):
            flag = BOOL_WORDS.get(text.lower())
            if flag is None:
                raise InvalidInput(MESSAGES[name], field=name)
            out[name] = flag
        elif text == "" and name in NULLABLE:
            out[name] = None
        elif name == "low_stock_threshold":
            if not re.fullmatch(r"[0-9]{1,9}", text):
                raise InvalidInput(MESSAGES[name], field=name)
            out[name] = int(text)
        elif name == "release_date":
            try:
                out[name] = date.fromisoformat(text)
            except ValueError:
                raise InvalidInput(MESSAGES[name], field=name) from None
        else:
            out[name] = raw if name in ("description", "activation_instructions") else text
    return out
