"""Crypto payments end to end in tests: the shop's NOWPayments settings pointed at the
simulator and at the HTTP API serving the IPN endpoint (tests.support.api)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.config import Settings

#: The modules whose ``get_settings`` decides where NOWPayments is and where IPNs go.
NOWPAYMENTS_READERS = ("core.services.nowpayments",)


def crypto_settings(settings: Settings, *, sim_url: str, api_url: str, **extra: Any) -> Settings:
    """``settings`` with NOWPayments at the simulator and IPNs sent to ``api_url``."""
    return settings.model_copy(
        update={"nowpayments_base_url": sim_url + "/nowpayments", "public_url": api_url, **extra}
    )


def invoice_id(invoice_url: str) -> str:
    """The invoice id in a NOWPayments ``invoice_url`` (``…/payment/?iid=ID``)."""
    return parse_qs(urlsplit(invoice_url).query)["iid"][0]
