"""The webhook sources keyshop accepts, as one static table: source name → how its
requests are authenticated and how a stored event is acted on. Adding a source is a
line here (no registration by import side effect)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.services import nowpayments, payments, provider_events
from core.services.webhook_types import Authenticator, Handler


@dataclass(frozen=True)
class Source:
    authenticate: Authenticator
    handle: Handler


SOURCES: Mapping[str, Source] = {
    "stripe": Source(payments.authenticate_stripe, payments.handle_stripe),
    "nowpayments": Source(nowpayments.authenticate_nowpayments, nowpayments.handle_nowpayments),
    "kinguin": Source(provider_events.authenticate_kinguin, provider_events.handle_kinguin),
    "codeswholesale": Source(
        provider_events.authenticate_codeswholesale, provider_events.handle_codeswholesale
    ),
}
