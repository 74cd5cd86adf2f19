"""What every webhook source shares: the request refused (:class:`WebhookRejected`), what
an authenticator extracts from a genuine request (:class:`Verified`), the answer
(:class:`Receipt`), and the JSON body parser. Imports nothing of the sources, so a
source's module and the inbox can both import it without a cycle."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.errors import DomainError
from core.models import WebhookEvent


class WebhookRejected(DomainError):
    """The request is refused; ``http_status`` says how (400 malformed or too large,
    401 forged, 404 unknown source)."""

    code = "webhook_rejected"

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


@dataclass(frozen=True)
class Verified:
    """What a source's authenticator extracts from a genuine request."""

    event_id: str
    event_type: str
    payload: dict[str, Any]
    #: Our order number when the event is about one (payment events), else None.
    subject: str | None = None


#: source → authenticate(headers, raw body) → Verified; raises WebhookRejected.
Authenticator = Callable[[Mapping[str, str], bytes], Verified]
#: source → handle(session, event row, payload) → outcome text (runs in the claim's transaction).
Handler = Callable[[Session, WebhookEvent, dict[str, Any]], str]


@dataclass(frozen=True)
class Receipt:
    status: int  # the HTTP status to answer with
    webhook_id: int | None
    duplicate: bool


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected("body is not JSON", 400) from None
    except RecursionError:  # "[" * 100_000: nested deeper than any real event
        raise WebhookRejected("body is nested too deeply", 400) from None
    if not isinstance(payload, dict):
        raise WebhookRejected("body is not a JSON object", 400)
    return payload
