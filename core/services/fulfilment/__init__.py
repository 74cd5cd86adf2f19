"""Fulfilment: a paid order becomes delivered keys — from our own stock first, then from
the wholesale providers — without ever losing the order, delivering a key twice or
paying a provider twice (DESIGN §4 invariants 1 to 3, §5.3).

:func:`fulfil_order` is idempotent and safe to run any number of times, from any number
of workers, at any moment (the Huey task, reconciliation, an operator's retry):

1. **Lease.** One worker at a time: a compare-and-set on ``orders.fulfilment_lease_until``
   (only ``paid`` orders). A worker that dies leaves a lease that expires; reconciliation
   then runs the order again.
2. **Open purchases first.** A :class:`ProviderPurchase` left ``requested`` or ``unknown``
   by an earlier attempt (its answer was lost) is resolved by asking the provider *by our
   reference* before anything else (invariant 3). Found: its keys are collected.
   Positively absent (:class:`~core.providers.base.Absent`) and the last request older
   than twice ``KEYSHOP_PROVIDER_TIMEOUT`` (so it cannot still be in flight): sent again
   under the *same* reference. Anything else — the lookup failed, or cannot rule the
   order out — and the purchase is *not* sent again: it waits (the run ends in
   :class:`FulfilmentRetry`; reconciliation asks again), and once it has been unknown
   for ``KEYSHOP_UNKNOWN_PURCHASE_SECONDS`` the order goes to ``needs_attention`` with
   the purchase named, for an operator to confirm it was not charged (send again) or
   enter what was bought (core.services.operator). Neither provider documents that it
   de-duplicates a repeated reference (shared/docs/providers.md, Corrections), so
   nothing here relies on it. An unknown purchase's units count as on their way, so its
   line is never bought from the next provider meanwhile. ``pending`` purchases
   (pre-orders, late keys) collect whatever keys are out.
3. **Stock.** The keys checkout reserved for the order (``core.services.reservations``)
   are delivered; each line claims what it still lacks from stock (one atomic statement)
   and the claimed keys are delivered in the same transaction. The common case — every
   line reserved at checkout, or all of it in stock — is one transaction
   (``flow._fulfil_from_stock_at_once``).
4. **Providers.** For what is still missing, walk the provider chain
   (``KEYSHOP_PROVIDER_CHAIN``, default CodesWholesale then Kinguin). At each provider
   take its cheapest mapped offer with enough free units (stock minus other orders'
   checkout holds) whose cost keeps the minimum margin
   (``KEYSHOP_MIN_MARGIN_PERCENT``; offers in another currency than the product's price
   are skipped — there is no exchange-rate guess). A ``requested`` purchase is committed
   *before* the call; the outcome is recorded after it. Transient errors are retried with
   exponential backoff and jitter; permanent ones fall through to the next provider.
5. **Finish.** Every line complete → ``fulfilled`` and the delivery e-mail. Keys still on
   their way (pre-order, late keys) → the order stays ``paid`` and waits (what was
   delivered stays delivered). Nothing left to try → ``needs_attention`` with a reason an
   operator can act on, and an alert.

No row lock is held while a provider is called. Key plaintext exists only in memory
between the provider's answer and its encryption.

The order flow (lease, stock, finish, the fast path) is in :mod:`.flow`; everything
about provider purchases (open, call, record, settle unknown outcomes) in
:mod:`.purchases`; what a run reports and what each line still needs in :mod:`.state`.
"""

from core.services.fulfilment.flow import deliver_missing_from_stock, fulfil_order
from core.services.fulfilment.purchases import provider_clients, store_purchase_result
from core.services.fulfilment.state import (
    FulfilmentResult,
    FulfilmentRetry,
    LineNeed,
    Retry,
    line_needs,
)

__all__ = [
    "FulfilmentResult",
    "FulfilmentRetry",
    "LineNeed",
    "Retry",
    "deliver_missing_from_stock",
    "fulfil_order",
    "line_needs",
    "provider_clients",
    "store_purchase_result",
]
