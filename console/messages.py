"""Messages the console's thread workers post back to their screen ("messages up").

Named as past-tense events. They carry plain rows from
:mod:`core.services.console_reads` (or service results), never ORM objects bound to
a session, and never key plaintext — except :class:`KeyRevealed`, which goes straight
to the reveal modal and is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rich.repr
from textual.message import Message

from core.jobs import WorkerPresence
from core.services.console_reads.dashboard import DashboardFigures
from core.services.console_reads.key_reports import KeyReportRow
from core.services.console_reads.orders import OrderRow, Timeline
from core.services.console_reads.providers import BalanceRow, OfferRow, ProviderStatusRow
from core.services.importer import ImportReport
from core.services.operator import UnknownPurchase
from core.services.provider_sync import Candidate


class OrdersLoaded(Message):
    """Rows for an order list (the attention queue, an order search)."""

    def __init__(self, rows: list[OrderRow], *, query: str = "", quiet: bool = False) -> None:
        super().__init__()
        self.rows = rows
        self.query = query
        self.quiet = quiet  # a timer's reload: no notice, the cursor stays where it was


class AttentionLoaded(Message):
    """The attention queue: orders in needs_attention and open faulty-key reports."""

    def __init__(
        self,
        orders: list[OrderRow],
        reports: list[KeyReportRow],
        purchases: dict[int, list[UnknownPurchase]] | None = None,
        *,
        generation: int = 0,
    ) -> None:
        super().__init__()
        self.generation = generation  # loads are numbered in the order they start
        self.orders = orders
        self.reports = reports
        self.purchases = purchases or {}  # by order id: purchases whose outcome is unknown


class ProvidersLoaded(Message):
    def __init__(self, rows: list[ProviderStatusRow]) -> None:
        super().__init__()
        self.rows = rows


class BalancesChecked(Message):
    """Provider balances (or why there is none), from a worker that waited at most the
    balance timeout."""

    def __init__(self, rows: list[BalanceRow]) -> None:
        super().__init__()
        self.rows = rows


class OffersLoaded(Message):
    def __init__(self, provider: str, rows: list[OfferRow], *, first_page: bool) -> None:
        super().__init__()
        self.provider = provider
        self.rows = rows
        self.first_page = first_page


class OfferCandidatesLoaded(Message):
    """The products closest to an unmapped offer (for a mapping by hand)."""

    def __init__(self, offer_id: int, candidates: list[Candidate]) -> None:
        super().__init__()
        self.offer_id = offer_id
        self.candidates = candidates


class PageLoaded(Message):
    """One page of a lazily loaded list (``first_page``: replace what is shown)."""

    def __init__(self, table_id: str, rows: list[Any], *, first_page: bool, more: bool) -> None:
        super().__init__()
        self.table_id = table_id
        self.rows = rows
        self.first_page = first_page
        self.more = more


class WorkerHeartbeatRead(Message):
    """What the workers' heartbeat says (None with ``error`` when it could not be read)."""

    def __init__(self, presence: WorkerPresence | None, error: str | None = None) -> None:
        super().__init__()
        self.presence = presence
        self.error = error


class QueueDepthRead(Message):
    """The task queue's pending jobs (None with ``error`` when it could not be read)."""

    def __init__(self, depth: int | None, error: str | None = None) -> None:
        super().__init__()
        self.depth = depth
        self.error = error


class TimelineLoaded(Message):
    """An order's timeline, and the e-mails sent for it as (kind, ref)."""

    def __init__(
        self, timeline: Timeline | None, *, emails: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__()
        self.timeline = timeline
        self.emails = emails or []


class DashboardLoaded(Message):
    def __init__(self, figures: DashboardFigures) -> None:
        super().__init__()
        self.figures = figures


class RowsLoaded(Message):
    """Generic list screens (audit, alerts, webhooks, outbox)."""

    def __init__(self, rows: list[Any]) -> None:
        super().__init__()
        self.rows = rows


class ActionSucceeded(Message):
    """An operator action took effect; ``text`` says what happened."""

    def __init__(self, action: str, text: str) -> None:
        super().__init__()
        self.action = action
        self.text = text


class ActionFailed(Message):
    """An operator action was refused (a DomainError: nothing changed), or ran and
    failed (``verb`` "failed": what it did is in the audit, the reason in ``text``)."""

    def __init__(self, action: str, text: str, *, verb: str = "refused") -> None:
        super().__init__()
        self.action = action
        self.text = text
        self.verb = verb


class ImportProgressed(Message):
    def __init__(self, done: int, total: int | None) -> None:
        super().__init__()
        self.done = done
        self.total = total


class ImportFinished(Message):
    def __init__(self, report: ImportReport) -> None:
        super().__init__()
        self.report = report


class ImportFailed(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


@dataclass(frozen=True)
class _Secret:
    """Holds a revealed code; its repr never shows it (Textual may log messages)."""

    value: str

    def __repr__(self) -> str:
        return "_Secret(****)"


class KeyRevealed(Message):
    def __init__(self, key_label: str, code: str) -> None:
        super().__init__()
        self.key_label = key_label
        self.secret = _Secret(code)

    def __rich_repr__(self) -> rich.repr.Result:
        yield "key_label", self.key_label
