"""Lines of the file into codes and CSV fields, ``batch_size`` lines at a time: each line
either parsed or rejected with a reason (never with its text: keys are secrets)."""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from core import money
from core.config import get_settings
from core.services.importer.source import _line_limit, _Lines, _open_text, _Source

EMPTY = "empty"
TOO_LONG = "too long"
CONTROL = "control or binary characters"
MALFORMED_CSV = "malformed CSV"
UNKNOWN_PRODUCT = "unknown product"
# What is wrong with a CSV line, naming the field (reasons start with MALFORMED_CSV when
# the line is not a record at all, with "bad FIELD" when one field is wrong).
UNCLOSED_QUOTE = f"{MALFORMED_CSV}: a quote is not closed on this line"
BAD_QUOTE = f"{MALFORMED_CSV}: a quote in the middle of a field"
BAD_COST_NUMBER = "bad cost: not a number"
BAD_COST_NEGATIVE = "bad cost: negative"
BAD_CURRENCY = "bad currency: not a three-letter code such as EUR"


def wrong_field_count(got: int, expected: int) -> str:
    fields = "field" if got == 1 else "fields"
    return f"{MALFORMED_CSV}: {got} {fields}, the header has {expected}"


def bad_cost_precision(currency: str) -> str:
    return f"bad cost: too many decimals for {currency}, or too large"


SUPPLIER_MAX = 120  # keys.supplier is VARCHAR(120)
BAD_SUPPLIER = f"bad supplier: longer than {SUPPLIER_MAX} characters"
COST_MAX_MINOR = 10**15

# Characters the fingerprint ignores (core.crypto.normalise_code): a line made only of
# these has no code in it.
_SEPARATORS = " \t-\u00a0\u2010\u2011\u2012\u2013\u2014"
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


@dataclass
class Rejection:
    """A line that was not imported. Never carries the line's text (keys are secrets)."""

    line: int
    reason: str


# One parsed line: (line number, code, product slug or None, supplier, cost, currency).
_Parsed = tuple[int, str, str | None, str | None, Decimal | None, str | None]


@dataclass
class _Chunk:
    """``batch_size`` lines as read: what is left to import, and what was rejected."""

    read: int = 0
    parsed: list[_Parsed] = field(default_factory=list)  # CSV records
    codes: list[str] = field(default_factory=list)  # lines of a .txt file (default product)
    rejections: list[tuple[int, str]] = field(default_factory=list)
    bytes_done: int = 0


def _code_problem(code: str, max_len: int) -> str | None:
    if not code or not code.strip(_SEPARATORS):
        return EMPTY
    if not code.isprintable() and (
        # Every non-printable ASCII character is a control character (Cc); beyond ASCII,
        # separators such as U+00A0 are not printable either but are allowed.
        code.isascii() or any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in code)
    ):
        return CONTROL
    if len(code) > max_len:
        return TOO_LONG
    return None


def _chunks_txt(source: _Source, batch_size: int) -> Iterator[_Chunk]:
    max_len = get_settings().max_key_length
    raw, fh = _open_text(source)
    with raw, fh:
        lines = _Lines(fh, _line_limit())
        chunk = _Chunk()
        for number, line in enumerate(lines, 1):
            chunk.read += 1
            if lines.overlong:
                lines.overlong = False
                chunk.rejections.append((number, TOO_LONG))
            else:
                code = line.strip()
                problem = _code_problem(code, max_len)
                if problem is None:
                    chunk.codes.append(code)
                else:
                    chunk.rejections.append((number, problem))
            if chunk.read >= batch_size:
                chunk.bytes_done = raw.tell()
                yield chunk
                chunk = _Chunk()
        if chunk.read:
            chunk.bytes_done = source.size
            yield chunk


def _chunks_csv(source: _Source, batch_size: int) -> Iterator[_Chunk]:
    max_len = get_settings().max_key_length
    ncols = len(source.columns)
    i_key = source.column("key")
    i_cost, i_currency = source.column("cost"), source.column("currency")
    i_supplier, i_product = source.column("supplier"), source.column("product")
    assert i_key is not None
    raw, fh = _open_text(source)
    with raw, fh:
        lines = _Lines(fh, _line_limit())
        # One physical line is one record: a key never spans lines, and a record parsed
        # on its own cannot run on, so an unclosed quote refuses its own line instead of
        # swallowing every line after it.
        delimiter = source.delimiter
        numbered = enumerate(lines, 1)
        next(numbered, None)  # the header, checked by _read_csv_header
        lines.overlong = False
        chunk = _Chunk()
        for start, line in numbered:
            row: list[str] | None
            quoting: str | None = None
            try:
                row = next(csv.reader((line,), delimiter=delimiter, strict=True), [])
            except csv.Error as exc:
                row = None
                quoting = UNCLOSED_QUOTE if "end of data" in str(exc) else BAD_QUOTE
            chunk.read += 1
            overlong, lines.overlong = lines.overlong, False
            if overlong:
                chunk.rejections.append((start, TOO_LONG))
            elif row is None:
                chunk.rejections.append((start, quoting or MALFORMED_CSV))
            elif not any(cell.strip() for cell in row):
                chunk.rejections.append((start, EMPTY))
            elif len(row) != ncols:
                chunk.rejections.append((start, wrong_field_count(len(row), ncols)))
            else:
                code = row[i_key].strip()
                problem = _code_problem(code, max_len)
                if problem is None:
                    parsed = _csv_fields(row, i_supplier, i_cost, i_currency, i_product)
                    if isinstance(parsed, str):
                        problem = parsed
                    else:
                        chunk.parsed.append((start, code, *parsed))
                if problem is not None:
                    chunk.rejections.append((start, problem))
            if chunk.read >= batch_size:
                chunk.bytes_done = raw.tell()
                yield chunk
                chunk = _Chunk()
        if chunk.read:
            chunk.bytes_done = source.size
            yield chunk


def _csv_fields(
    row: list[str],
    i_supplier: int | None,
    i_cost: int | None,
    i_currency: int | None,
    i_product: int | None,
) -> tuple[str | None, str | None, Decimal | None, str | None] | str:
    """(product slug, supplier, cost, currency) of one CSV row, or a rejection reason."""
    slug = row[i_product].strip() or None if i_product is not None else None
    if slug is not None and _code_problem(slug, len(slug)) == CONTROL:
        return CONTROL  # undecodable bytes cannot even be looked up
    supplier = row[i_supplier].strip() or None if i_supplier is not None else None
    if supplier is not None:
        if _code_problem(supplier, SUPPLIER_MAX) == CONTROL:
            return CONTROL
        if len(supplier) > SUPPLIER_MAX:
            return BAD_SUPPLIER
    cost: Decimal | None = None
    cost_text = row[i_cost].strip() if i_cost is not None else ""
    if cost_text:
        try:
            cost = Decimal(cost_text)
        except InvalidOperation:
            return BAD_COST_NUMBER
        if not cost.is_finite():
            return BAD_COST_NUMBER
        if cost < 0:
            return BAD_COST_NEGATIVE
    currency = row[i_currency].strip().upper() or None if i_currency is not None else None
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isalpha()
    ):
        return BAD_CURRENCY
    return slug, supplier, cost, currency


def _minor_units(cost: Decimal, currency: str) -> int | None:
    scaled = cost.scaleb(money.exponent(currency))
    if scaled != scaled.to_integral_value() or scaled >= COST_MAX_MINOR:
        return None
    return int(scaled)
