"""All tables. Importing this package registers every model on ``SQLModel.metadata``."""

from core.models.audit import ActorType, Alert, AlertKind, AuditEvent, KeyReport, KeyReportStatus
from core.models.base import UTCDateTime, new_uuid, row_id, utcnow
from core.models.catalogue import PLATFORMS, REGIONS, Product, ProductPrice, ProviderOffer
from core.models.content import LegalPage
from core.models.credit import (
    AccountKind,
    CashbackCampaign,
    GiftCard,
    GiftCardStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerMovement,
    Referral,
    ReferralStatus,
)
from core.models.customers import Customer, CustomerSession, RateLimitCounter, RecoveryCode
from core.models.inventory import ImportBatch, ImportStatus, Key, KeyStatus
from core.models.orders import (
    Invoice,
    InvoiceCounter,
    MailOutbox,
    OfferHold,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
)
from core.models.payments import CryptoPayment
from core.models.pricing import PriceChange, PricingRule
from core.models.promos import PromoCode, PromoKind, PromoRedemption, PromoScope
from core.models.providers import ProviderPurchase, PurchaseStatus
from core.models.stock_alerts import StockAlert
from core.models.webhooks import WebhookAttempt, WebhookEvent

__all__ = [
    "PLATFORMS",
    "REGIONS",
    "AccountKind",
    "ActorType",
    "Alert",
    "AlertKind",
    "AuditEvent",
    "CashbackCampaign",
    "CryptoPayment",
    "Customer",
    "CustomerSession",
    "GiftCard",
    "GiftCardStatus",
    "ImportBatch",
    "ImportStatus",
    "Invoice",
    "InvoiceCounter",
    "Key",
    "KeyReport",
    "KeyReportStatus",
    "KeyStatus",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerMovement",
    "LegalPage",
    "MailOutbox",
    "OfferHold",
    "Order",
    "OrderEvent",
    "OrderLine",
    "OrderStatus",
    "PriceChange",
    "PricingRule",
    "Product",
    "ProductPrice",
    "PromoCode",
    "PromoKind",
    "PromoRedemption",
    "PromoScope",
    "ProviderOffer",
    "ProviderPurchase",
    "PurchaseStatus",
    "RateLimitCounter",
    "RecoveryCode",
    "Referral",
    "ReferralStatus",
    "StockAlert",
    "UTCDateTime",
    "WebhookAttempt",
    "WebhookEvent",
    "new_uuid",
    "row_id",
    "utcnow",
]
