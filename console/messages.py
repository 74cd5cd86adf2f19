"""Messages the console's thread workers post back to their screen ("messages up").

Named as past-tense events. They carry plain rows from
:mod:`core.services.console_queries` (or service results), never ORM objects bound to
a session, and never key plaintext — except :class:`KeyRevealed`, which goes straight
to the reveal modal and is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from core.services.console_queries import (
    DashboardFigures,
    ImportRow,
    OrderRow,
    ProductStockRow,
    Timeline,
)
from core.services.importer import ImportReport


class OrdersLoaded(Message):
    """Rows for an order list (the attention queue, an order search)."""

    def __init__(self, rows: list[OrderRow], *, query: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.query = query


class TimelineLoaded(Message):
    def __init__(self, timeline: Timeline | None) -> None:
        super().__init__()
        self.timeline = timeline


class StockLoaded(Message):
    def __init__(self, rows: list[ProductStockRow], imports: list[ImportRow]) -> None:
        super().__init__()
        self.rows = rows
        self.imports = imports


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
    """An operator action was refused (a DomainError): nothing changed."""

    def __init__(self, action: str, text: str) -> None:
        super().__init__()
        self.action = action
        self.text = text


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

    def __rich_repr__(self):  # type: ignore[no-untyped-def]
        yield "key_label", self.key_label
