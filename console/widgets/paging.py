"""Lazy paging for long tables: the first page is loaded when a screen opens, the next
one when the cursor comes near the last row shown. Pages are keyset pages from
:mod:`core.services.console_reads` (the cursor is the last row's key), so a page costs
the same however far down the list it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.widgets import DataTable

PAGE = 100  # rows per page
NEAR_END = 5  # load the next page when the cursor is this close to the last row


@dataclass
class Pager:
    """Where a paged table stands: the keyset cursor of the last row shown, whether the
    last page was full (more may follow) and whether a page is on its way."""

    cursor: Any = None
    more: bool = False
    loading: bool = False

    def reset(self) -> None:
        self.cursor, self.more, self.loading = None, False, True

    def wants_more(self, table: DataTable, row: int) -> bool:
        """True (and marks a page as on its way) when the cursor at ``row`` is near the
        end of what is shown and more rows may follow."""
        if self.more and not self.loading and row >= table.row_count - NEAR_END:
            self.loading = True
            return True
        return False

    def loaded(self, rows: list[Any], cursor: Any, page: int = PAGE) -> None:
        self.loading = False
        self.more = len(rows) >= page
        if rows:
            self.cursor = cursor
