"""Money: an integer count of minor units and an ISO 4217 currency code. Never a float.

The one home of every money rule (STYLE "One rule, one place"):

- :func:`exponent`: how many decimals a currency has (ISO 4217: JPY 0, EUR 2, KWD 3);
- :func:`parse_amount`: a customer's or operator's text (``"19.99"``, ``"1,200"``,
  ``"1.234"``) to minor units, exactly, without floats; more decimals than the currency
  has, a negative amount, or anything that is not a number is refused with
  :class:`~core.errors.InvalidInput` naming the field;
- :func:`format_money`: minor units for display (``€19.99``, ``¥1,200``, ``1.234 KWD``,
  or ``19.99 EUR`` with ``style="code"`` for operator screens and alerts);
- :class:`Money`: arithmetic that refuses to mix currencies;
- :func:`to_decimal` / :func:`to_minor`: exact conversions at the edges (provider
  prices, CSV costs).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

from core.errors import InvalidInput

#: ISO 4217 currencies whose minor unit is not 1/100; every other code has two decimals.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
#: Currencies shown with a sign before the amount; the rest show their code after it.
SIGNS: dict[str, str] = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
#: The currency the storefront's price filter reads amounts in until customers choose
#: their own (the demo catalogue and the store API's price bounds are in it).
DEFAULT_CURRENCY = "EUR"
#: The currencies a customer can shop in (a product is sold in those it has a price in).
SHOP_CURRENCIES: tuple[str, ...] = ("EUR", "USD", "GBP")
#: The largest amount accepted from text, in major units (a sanity bound, not a policy).
MAX_MAJOR = Decimal(10) ** 12


def normalise_currency(currency: str) -> str:
    """``"eur"`` → ``"EUR"``; anything that is not three ASCII letters is refused."""
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidInput(f"{currency!r} is not a currency code", field="currency")
    return code


def exponent(currency: str) -> int:
    """How many decimal places ``currency`` has (ISO 4217)."""
    return _EXPONENTS.get(currency.upper(), 2)


def to_decimal(minor: int, currency: str) -> Decimal:
    """``1999, "EUR"`` → ``Decimal("19.99")``; ``1200, "JPY"`` → ``Decimal("1200")``."""
    places = exponent(currency)
    return (Decimal(minor) / (Decimal(10) ** places)).quantize(Decimal(1).scaleb(-places))


def to_minor(amount: Decimal | str | int, currency: str, *, exact: bool = True) -> int:
    """A decimal amount in major units as minor units. ``exact`` refuses amounts with
    more decimals than the currency has (InvalidInput); otherwise they are rounded half
    up (a provider's ``5.795`` becomes ``580``)."""
    try:
        value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation:
        raise InvalidInput(f"{amount!r} is not an amount", field="amount") from None
    if not value.is_finite():
        raise InvalidInput(f"{amount!r} is not an amount", field="amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        if exact:
            raise InvalidInput(
                f"{currency.upper()} amounts have at most {exponent(currency)} decimals",
                field="amount",
            )
        scaled = scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


def parse_amount(
    text: str, currency: str, *, field: str = "amount", allow_negative: bool = False
) -> int:
    """A person's amount text as minor units of ``currency``, exactly.

    Accepts ``19.99``, ``19,99`` (a lone comma as the decimal mark), ``1,200.50`` and
    ``1.200,50`` (thousands separators), an optional currency sign or code around it.
    Refuses (InvalidInput naming ``field``): empty text, anything not a number, more
    decimals than the currency has, a negative amount unless ``allow_negative``, and
    amounts over a trillion."""
    code = normalise_currency(currency)
    raw = (text or "").strip()
    for mark in (code, code.lower(), SIGNS.get(code, "\0")):
        raw = raw.replace(mark, "")
    raw = raw.replace(" ", "").replace("\u00a0", "").replace("_", "")
    if not raw:
        raise InvalidInput(f"{field}: enter an amount", field=field)
    negative = raw.startswith("-")
    digits = raw.lstrip("+-")
    if "," in digits and "." in digits:
        # the mark that comes last is the decimal mark, the other separates thousands
        decimal_mark = "," if digits.rfind(",") > digits.rfind(".") else "."
        thousands = "." if decimal_mark == "," else ","
        digits = digits.replace(thousands, "").replace(decimal_mark, ".")
    elif digits.count(",") == 1 and len(digits.split(",")[1]) != 3:
        digits = digits.replace(",", ".")  # "19,99": a decimal comma
    elif "," in digits:
        digits = digits.replace(",", "")  # "1,200" or "1,200,000": thousands
    if not digits or not all(c.isdigit() or c == "." for c in digits) or digits.count(".") > 1:
        raise InvalidInput(f"{field}: {text!r} is not an amount", field=field)
    value = Decimal(digits)
    if negative:
        value = -value
    if value < 0 and not allow_negative:
        raise InvalidInput(f"{field}: the amount cannot be negative", field=field)
    if abs(value) > MAX_MAJOR:
        raise InvalidInput(f"{field}: the amount is too large", field=field)
    places = exponent(code)
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            f"{field}: {code} amounts have "
            + (f"at most {places} decimals" if places else "no decimals"),
            field=field,
        )
    return int(scaled)


def format_money(
    minor: int | None,
    currency: str,
    *,
    style: Literal["sign", "code"] = "sign",
    language: str | None = None,
) -> str:
    """Minor units for display: ``€19.99``, ``-$5.00``, ``¥1,200``, ``1.234 KWD`` (a
    currency without a sign shows its code after the amount); ``style="code"`` always
    shows the code (``19.99 EUR``: operator screens, alerts). None is an empty string.

    ``language`` (a storefront language other than English, ``core.i18n``): the
    locale's own form through Babel, ``19,99 €``, ``1.200 ¥``; the amount is the same
    exact decimal either way."""
    if minor is None:
        return ""
    code = currency.upper()
    if language and style == "sign" and language != "en":
        return _format_for_locale(minor, code, language)
    places = exponent(code)
    amount = f"{to_decimal(abs(minor), code):,.{places}f}"
    sign = "-" if minor < 0 else ""
    symbol = SIGNS.get(code) if style == "sign" else None
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {code}"


def _format_for_locale(minor: int, code: str, language: str) -> str:
    """Babel's currency pattern of ``language`` with exactly the currency's ISO 4217
    decimals (this module's :func:`exponent`, not Babel's own table)."""
    from copy import copy

    from babel import Locale
    from babel.numbers import parse_pattern

    locale = Locale.parse(language)
    pattern = copy(parse_pattern(locale.currency_formats["standard"]))
    places = exponent(code)
    pattern.frac_prec = (places, places)
    return str(pattern.apply(to_decimal(minor, code), locale, currency=code, currency_digits=False))


class CurrencyMismatch(InvalidInput):
    code = "currency_mismatch"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency. Adding or comparing two currencies raises
    :class:`CurrencyMismatch`; there is no exchange rate anywhere in keyshop."""

    minor: int
    currency: str

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency} and {other.currency}",
                currencies=[self.currency, other.currency],
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise TypeError("money is multiplied by whole quantities only")
        return Money(self.minor * quantity, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __str__(self) -> str:
        return format_money(self.minor, self.currency)


def total(amounts: list[Money], currency: str) -> Money:
    """The sum of ``amounts`` (an empty list is zero of ``currency``); mixed currencies
    raise :class:`CurrencyMismatch`."""
    result = Money(0, currency.upper())
    for amount in amounts:
        result = result + amount
    return result
