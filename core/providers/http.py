"""Shared httpx plumbing for the provider clients.

One place decides how a failed HTTP exchange becomes a typed provider error, so both
clients agree on the rule that matters most (invariant 3): once a state-changing request
(order creation) may have reached the provider, a lost answer is
:class:`~core.providers.base.ProviderOutcomeUnknown`, never a plain transient error.

Every exchange is logged as ``method path status latency`` on the ``core.providers``
logger. Bodies (which carry keys), query strings and headers (which carry credentials)
are never logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from core import metrics, tracing
from core.providers.base import (
    ProviderOutcomeUnknown,
    ProviderTransientError,
)

log = logging.getLogger("core.providers")

USER_AGENT = "keyshop-provider-client/1"

# Errors raised before a single byte of the request left this machine: safe to retry.
_BEFORE_SEND = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


def make_http_client(
    base_url: str,
    timeout: float,
    *,
    transport: httpx.BaseTransport | None = None,
    http_client: httpx.Client | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """The ``httpx.Client`` a provider client uses: the given one, or a new one on
    ``base_url`` with a timeout on connect, read, write and pool."""
    if http_client is not None:
        return http_client
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout),
        transport=transport,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        follow_redirects=False,
    )


def send(
    client: httpx.Client,
    provider: str,
    method: str,
    path: str,
    *,
    state_changing: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; map transport failures to typed errors and log the exchange.

    ``state_changing`` marks requests whose effect may exist even when the answer is
    lost (order creation): a read timeout, a dropped connection or a failed write after
    the request started going out is then :class:`ProviderOutcomeUnknown`.
    """
    started = time.perf_counter()
    operation = metrics.operation_of(method, path)
    with tracing.span(f"{provider} {operation}", **{"keyshop.provider": provider}) as current:
        response = _request(client, provider, method, path, started, state_changing, **kwargs)
        current.set_attribute("http.response.status_code", response.status_code)
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.observe_provider_call(
        provider, method, path, elapsed_ms / 1000, f"{response.status_code // 100}xx"
    )
    log.info(
        "%s %s %s -> %s in %.0f ms",
        provider,
        method,
        path,
        response.status_code,
        elapsed_ms,
        extra={
            "provider": provider,
            "method": method,
            "path": path,
            "status": response.status_code,
            "latency_ms": round(elapsed_ms, 1),
        },
    )
    return response


def _request(
    client: httpx.Client,
    provider: str,
    method: str,
    path: str,
    started: float,
    state_changing: bool,
    **kwargs: Any,
) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except _BEFORE_SEND as exc:
        _log_failure(provider, method, path, started, type(exc).__name__)
        raise ProviderTransientError(
            provider, f"{method} {path}: cannot reach the provider ({type(exc).__name__})"
        ) from None
    except httpx.TimeoutException as exc:  # read/write timeout: the request went out
        _log_failure(provider, method, path, started, type(exc).__name__)
        if state_changing:
            raise ProviderOutcomeUnknown(
                provider,
                f"{method} {path}: no answer within the timeout; the request may have been processed",
            ) from None
        raise ProviderTransientError(
            provider, f"{method} {path}: timed out ({type(exc).__name__})"
        ) from None
    except httpx.TransportError as exc:  # connection dropped, protocol error, reset…
        _log_failure(provider, method, path, started, type(exc).__name__)
        if state_changing:
            raise ProviderOutcomeUnknown(
                provider,
                f"{method} {path}: connection lost before the answer; the request may have been processed",
            ) from None
        raise ProviderTransientError(
            provider, f"{method} {path}: connection failed ({type(exc).__name__})"
        ) from None


def _log_failure(provider: str, method: str, path: str, started: float, kind: str) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.observe_provider_call(provider, method, path, elapsed_ms / 1000, kind)
    log.warning(
        "%s %s %s -> %s after %.0f ms",
        provider,
        method,
        path,
        kind,
        elapsed_ms,
        extra={
            "provider": provider,
            "method": method,
            "path": path,
            "status": None,
            "latency_ms": round(elapsed_ms, 1),
        },
    )


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or ``None`` when the body is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def safe_text(value: object, limit: int = 200) -> str:
    """A provider-supplied message fit for an error or a log line: one line, bounded."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601 (``2024-06-18T10:00:00+00:00``, ``…Z``, or a bare date) as an aware
    datetime; naive values are taken as UTC. ``None`` for anything unreadable."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: object) -> date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def decimal_json(value: object) -> float:
    """A ``Decimal`` price for a JSON body. ``json`` cannot write ``Decimal``; the float's
    shortest repr of a two-place amount is exactly that amount (``Decimal('9.99')`` is
    written ``9.99``), and no arithmetic happens on the float."""
    return float(str(value))


def parse_decimal(value: object) -> Decimal | None:
    """A JSON number or numeric string as a ``Decimal`` (never through ``float``); None
    for anything else, booleans included."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def is_number(value: object) -> bool:
    return parse_decimal(value) is not None


def parse_int(value: object) -> int | None:
    """A JSON integer or integer string; None for anything else, booleans included."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None
