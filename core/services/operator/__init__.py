"""Operator actions: orders that need a human (the console's attention queue), among
them provider purchases whose outcome is unknown (send again once the operator confirmed
no charge, or enter / fetch what was bought), customers' faulty-key reports, stock
(thresholds, revoking keys) and provider syncs.

Every action is audited (invariant 7) and goes through the same services as the
automatic paths: the order status machine, the inventory, fulfilment, the webhook path
for refunds. Every action owns its transaction, as fulfilment does: the console never
opens a write transaction itself (functions taking a ``session`` only read). Provider
and payment calls happen outside any transaction.

Orders and faulty-key reports are in :mod:`.orders`, purchases of unknown outcome in
:mod:`.purchases`, stock and provider syncs in :mod:`.stock`.
"""

from core.services.operator.orders import (
    REPORT_ACTIONS,
    assign_from_stock,
    buy_from_provider,
    cancel_order,
    refund_order,
    replace_faulty_key,
    resolve_key_report,
    retry_fulfilment,
    reveal_key_for_operator,
    revealable_keys,
    revoke_delivered_key,
)
from core.services.operator.purchases import (
    PURCHASE_ACTIONS,
    UnknownPurchase,
    enter_purchase_keys,
    fetch_purchase_by_provider_order,
    parse_entered_keys,
    parse_provider_order_id,
    resend_purchase,
    unknown_purchases,
)
from core.services.operator.stock import (
    MAX_KEYS_REVOKED_AT_ONCE,
    MAX_LOW_STOCK_THRESHOLD,
    acknowledge_alerts,
    parse_low_stock_threshold,
    request_provider_sync,
    revoke_stock_keys,
    set_low_stock_threshold,
)

__all__ = [
    "MAX_KEYS_REVOKED_AT_ONCE",
    "MAX_LOW_STOCK_THRESHOLD",
    "PURCHASE_ACTIONS",
    "REPORT_ACTIONS",
    "UnknownPurchase",
    "acknowledge_alerts",
    "assign_from_stock",
    "buy_from_provider",
    "cancel_order",
    "enter_purchase_keys",
    "fetch_purchase_by_provider_order",
    "parse_entered_keys",
    "parse_low_stock_threshold",
    "parse_provider_order_id",
    "refund_order",
    "replace_faulty_key",
    "request_provider_sync",
    "resend_purchase",
    "resolve_key_report",
    "retry_fulfilment",
    "reveal_key_for_operator",
    "revealable_keys",
    "revoke_delivered_key",
    "revoke_stock_keys",
    "set_low_stock_threshold",
    "unknown_purchases",
]
