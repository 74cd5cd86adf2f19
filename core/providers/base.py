"""The one small protocol every wholesale provider client implements.

Fulfilment (core.services.fulfilment) talks only to this protocol; the CodesWholesale
and Kinguin clients translate it to their HTTP contracts (../shared/docs/providers.md),
and map every failure onto the typed errors below so the caller can decide: retry
(transient), fall through to the next provider (permanent), or ask the provider by our
reference before doing anything else (outcome unknown).

Asking by reference (:meth:`ProviderClient.find_purchase`) answers one of three things,
and the type says which (DESIGN §4 invariant 3): :class:`Found` (the order exists),
:class:`Absent` (the provider *positively* showed it has no order under our reference:
a successful, readable search that rules it out) or :class:`Unclear` (the lookup failed
or its answer cannot rule the order out). Only :class:`Absent` ever allows sending a
purchase again; neither provider documents that it de-duplicates a repeated reference
(shared/docs/providers.md, Corrections: "CW duplicate order id", "KG duplicate
``orderExternalId``").

Money crosses this boundary as integer minor units plus an ISO currency code; the
clients convert the providers' decimal prices with ``Decimal`` (never float arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol, runtime_checkable

from core.errors import DomainError

# -- errors -----------------------------------------------------------------------------


class ProviderError(DomainError):
    """Base of every provider failure. ``provider`` names the provider; ``permanent``
    says whether trying the same call again can help."""

    code = "provider_error"
    permanent = True

    def __init__(self, provider: str, message: str, **data: object) -> None:
        super().__init__(f"{provider}: {message}", provider=provider, **data)
        self.provider = provider


class OutOfStock(ProviderError):
    code = "provider_out_of_stock"


class InsufficientBalance(ProviderError):
    code = "provider_insufficient_balance"


class ProviderAuthError(ProviderError):
    code = "provider_auth_failed"


class ProviderRejected(ProviderError):
    """The provider refused the request for another reason (bad payload, pre-order
    rules, product delisted…)."""

    code = "provider_rejected"


class ProviderTransientError(ProviderError):
    """5xx, 429, connection refused, a timeout before anything was sent: try again later."""

    code = "provider_transient"
    permanent = False


class ProviderOutcomeUnknown(ProviderTransientError):
    """The request may have reached the provider but the answer was lost (timeout or
    connection dropped after sending). Before any retry, ask the provider by our
    reference (invariant 3)."""

    code = "provider_outcome_unknown"


# -- values -----------------------------------------------------------------------------


def to_minor(amount: float | str | Decimal, exponent: int = 2) -> int:
    """A provider's decimal price (``5.79``) as integer minor units (``579``)."""
    value = Decimal(str(amount)) * (Decimal(10) ** exponent)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor(amount: int, exponent: int = 2) -> Decimal:
    return (Decimal(amount) / (Decimal(10) ** exponent)).quantize(Decimal(1).scaleb(-exponent))


@dataclass(frozen=True)
class Offer:
    """A provider's sellable product as we see it."""

    provider: str
    external_id: str
    name: str
    cost_minor: int | None
    currency: str
    stock: int
    is_preorder: bool = False
    release_date: date | None = None
    platform: str | None = None
    region: str | None = None
    updated_at: datetime | None = None
    # The base title to map on when ``name`` carries more (Kinguin's ``originalName``;
    # its ``name`` ends with the platform, "... Steam CD Key").
    title: str | None = None
    # The provider's cover picture (an https URL), when it has one: a product created
    # from the offer shows it.
    cover_url: str | None = None


MAX_COVER_URL = 1000


def cover_url_or_none(value: object) -> str | None:
    """An https URL of at most MAX_COVER_URL characters, else None (a provider's cover
    is shown as given, so nothing else, no ``javascript:`` or ``data:``, gets through;
    the storefront's Content-Security-Policy loads images over https only)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if len(url) > MAX_COVER_URL or not url.lower().startswith("https://"):
        return None
    if any(c.isspace() or c in "\"'<>" for c in url):
        return None
    return url


@dataclass(frozen=True)
class DeliveredKey:
    """One key as the provider hands it over. Exactly one of ``code`` (text) and
    ``image`` (bytes, with ``image_type`` such as ``image/png``) is set.
    ``repr`` never shows the secret."""

    external_id: str
    code: str | None = field(default=None, repr=False)
    image: bytes | None = field(default=None, repr=False)
    image_type: str | None = None


PurchaseState = Literal["completed", "pending", "failed"]


@dataclass(frozen=True)
class PurchaseResult:
    """What the provider says about one of our purchases."""

    provider_order_id: str
    reference: str
    state: PurchaseState  # completed: all keys out; pending: some keys still to come
    keys: list[DeliveredKey] = field(default_factory=list)
    quantity: int = 0
    total_cost_minor: int | None = None
    currency: str = "EUR"
    preorder: bool = False


@dataclass(frozen=True)
class Found:
    """The provider has an order under our reference (with whatever keys are out)."""

    purchase: PurchaseResult


@dataclass(frozen=True)
class Absent:
    """The provider positively showed it has no order under our reference; ``evidence``
    says how (for the purchase's record and the operator)."""

    evidence: str


@dataclass(frozen=True)
class Unclear:
    """The lookup could not tell: it failed, or its answer cannot rule the order out.
    Never a reason to send the purchase again."""

    reason: str


PurchaseLookup = Found | Absent | Unclear


@dataclass(frozen=True)
class Balance:
    amount_minor: int
    currency: str


@runtime_checkable
class ProviderClient(Protocol):
    """A client may also set ``max_units_per_purchase`` (Kinguin: 9 units per offer in
    one order); fulfilment then splits a larger line into several purchases."""

    name: str

    def list_offers(self, *, updated_since: datetime | None = None) -> Iterator[Offer]:
        """Every offer (paging handled inside), newest changes only when
        ``updated_since`` is given and the provider supports it."""
        ...

    def get_offer(self, external_id: str) -> Offer: ...

    def balance(self) -> Balance: ...

    def purchase(
        self,
        *,
        reference: str,
        external_id: str,
        quantity: int,
        max_unit_cost_minor: int,
        currency: str,
        allow_preorder: bool = True,
    ) -> PurchaseResult:
        """Buy ``quantity`` units under our idempotency ``reference``."""
        ...

    def find_purchase(self, *, reference: str, placed_at: datetime) -> PurchaseLookup:
        """Our purchase looked up by our reference (sent at ``placed_at`` or later), with
        whatever keys are out. Never raises for a failed lookup: that is
        :class:`Unclear`."""
        ...

    def fetch_keys(self, *, provider_order_id: str, reference: str) -> PurchaseResult:
        """The keys of an order already placed (paging handled inside)."""
        ...

    def close(self) -> None: ...
