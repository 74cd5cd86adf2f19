"""VAT on digital services sold to consumers: the rate by buyer country, and the VAT
contained in a VAT-inclusive price.

Prices in keyshop are VAT-inclusive (what the customer pays). Under the EU one-stop-shop
rules a digital service is taxed at the rate of the buyer's country, which the customer
chooses at checkout and the order stores (``Order.country``, ``vat_rate_bp``,
``vat_minor``). The rates are :data:`DEFAULT_RATES` (standard rates, in basis points:
1900 = 19 %) with ``KEYSHOP_VAT_RATES`` (``"DE=19,CH=8.1"``) overriding or adding
countries. A country not in the table cannot be chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from core.config import Settings, get_settings
from core.errors import InvalidInput

#: Country → (name, standard VAT rate in basis points). EU member states (OSS), plus
#: the UK, Norway and Switzerland, which tax digital services to consumers too, and the
#: United States (no VAT).
DEFAULT_RATES: Final[dict[str, tuple[str, int]]] = {
    "AT": ("Austria", 2000), "BE": ("Belgium", 2100), "BG": ("Bulgaria", 2000),
    "HR": ("Croatia", 2500), "CY": ("Cyprus", 1900), "CZ": ("Czechia", 2100),
    "DK": ("Denmark", 2500), "EE": ("Estonia", 2400), "FI": ("Finland", 2550),
    "FR": ("France", 2000), "DE": ("Germany", 1900), "GR": ("Greece", 2400),
    "HU": ("Hungary", 2700), "IE": ("Ireland", 2300), "IT": ("Italy", 2200),
    "LV": ("Latvia", 2100), "LT": ("Lithuania", 2100), "LU": ("Luxembourg", 1700),
    "MT": ("Malta", 1800), "NL": ("Netherlands", 2100), "PL": ("Poland", 2300),
    "PT": ("Portugal", 2300), "RO": ("Romania", 2100), "SK": ("Slovakia", 2300),
    "SI": ("Slovenia", 2200), "ES": ("Spain", 2100), "SE": ("Sweden", 2500),
    "GB": ("United Kingdom", 2000), "NO": ("Norway", 2500), "CH": ("Switzerland", 810),
    "US": ("United States", 0),
}  # fmt: skip

#: The currency a country shops in until the customer switches.
COUNTRY_CURRENCY: Final[dict[str, str]] = {"GB": "GBP", "US": "USD"}
DEFAULT_COUNTRY: Final = "DE"


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    rate_bp: int

    @property
    def rate_text(self) -> str:
        """``19%``, ``8.1%``, ``25.5%``."""
        return rate_text(self.rate_bp)


def country_name(country: Country, language: str | None = None) -> str:
    """The country's name in ``language`` (default: the one in force, core.i18n): the
    table's English name, or CLDR's (Babel) in another language."""
    from core.i18n import current_language

    code = language or current_language()
    if code == "en":
        return country.name
    from babel import Locale

    return str(Locale.parse(code).territories.get(country.code, country.name))


def rate_text(rate_bp: int, language: str | None = None) -> str:
    """A VAT rate for display: ``19%``, ``8.1%``; in another storefront language the
    locale's own form through Babel (German ``19 %``, ``8,1 %``)."""
    if language and language != "en":
        from copy import copy

        from babel import Locale

        locale = Locale.parse(language)
        pattern = copy(locale.percent_formats[None])
        pattern.frac_prec = (0, 2)
        return str(pattern.apply(Decimal(rate_bp) / 10000, locale))
    text = f"{Decimal(rate_bp) / 100:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def _parse_rates(raw: str) -> dict[str, int]:
    rates: dict[str, int] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        code, sep, value = item.partition("=")
        code = code.strip().upper()
        if not sep or len(code) != 2 or not code.isalpha():
            raise InvalidInput(f"KEYSHOP_VAT_RATES: {item.strip()!r} is not CC=RATE", field="vat")
        try:
            rate = Decimal(value.strip()) * 100
        except InvalidOperation:
            raise InvalidInput(f"KEYSHOP_VAT_RATES: {value!r} is not a rate", field="vat") from None
        if rate != rate.to_integral_value() or not 0 <= rate <= 10000:
            raise InvalidInput(f"KEYSHOP_VAT_RATES: {value!r} is not a rate", field="vat")
        rates[code] = int(rate)
    return rates


def countries(settings: Settings | None = None) -> list[Country]:
    """Every country a customer can choose, by name."""
    settings = settings or get_settings()
    overrides = _parse_rates(settings.vat_rates)
    table = {code: Country(code, name, rate) for code, (name, rate) in DEFAULT_RATES.items()}
    for code, rate in overrides.items():
        name = table[code].name if code in table else code
        table[code] = Country(code, name, rate)
    return sorted(table.values(), key=lambda c: c.name)


def country(code: str | None, settings: Settings | None = None) -> Country:
    """The country ``code`` with its rate; InvalidInput (in the customer's words) for a
    country the shop does not sell to."""
    value = (code or "").strip().upper()
    for item in countries(settings):
        if item.code == value:
            return item
    raise InvalidInput("Choose the country you live in from the list.", field="country")


def vat_included(gross_minor: int, rate_bp: int) -> int:
    """The VAT contained in a VAT-inclusive amount, rounded half up to a minor unit:
    ``gross * rate / (1 + rate)``, in integers."""
    if rate_bp <= 0 or gross_minor <= 0:
        return 0
    numerator = gross_minor * rate_bp
    denominator = 10000 + rate_bp
    return (2 * numerator + denominator) // (2 * denominator)


def currency_for_country(code: str | None) -> str:
    """The currency a customer from ``code`` sees first (they can switch)."""
    return COUNTRY_CURRENCY.get((code or "").upper(), "EUR")


def country_from_languages(accept_language: str | None) -> str | None:
    """The first country a browser's ``Accept-Language`` names (``en-GB,en;q=0.8`` →
    ``GB``) that the shop sells to; None when it names none."""
    known = {c.code for c in countries()}
    for part in (accept_language or "")[:400].split(","):
        tag = part.split(";", 1)[0].strip()
        _, _, region = tag.partition("-")
        if len(region) == 2 and region.upper() in known:
            return region.upper()
    return None
