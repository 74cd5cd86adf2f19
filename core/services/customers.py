"""Customers and e-mail addresses."""

from __future__ import annotations

import re

from core.errors import InvalidInput

# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is proven by
# the e-mail itself, not by a regular expression.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased (the domain is case-insensitive, and shops in practice
    treat the local part so too); raises InvalidInput when it is not an address."""
    value = (email or "").strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidInput("that is not a valid e-mail address", field="email")
    return value
