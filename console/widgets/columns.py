"""Table columns sized to the terminal: each column has the width it needs at least,
and the columns that hold long text (titles, slugs, ids) share what is left of the
screen's width. A screen lays its table out when it mounts and again when the terminal
is resized, so a wide terminal shows long values whole and a narrow one keeps every
column on screen (the highlighted row is shown whole in the screen's detail line)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets import DataTable

PADDING = 2  # a DataTable cell's padding, left and right
SCROLLBAR = 2  # room kept for the table's vertical scrollbar


@dataclass(frozen=True)
class Col:
    label: str
    width: int  # at least
    grow: int = 0  # share of the width left over


def fitted(columns: list[Col], room: int) -> dict[str, int]:
    """Each column's width (by label) when the table is ``room`` cells wide."""
    widths = {c.label: c.width for c in columns}
    spare = room - SCROLLBAR - sum(c.width + PADDING for c in columns)
    growing = [c for c in columns if c.grow]
    if spare <= 0 or not growing:
        return widths
    shares = sum(c.grow for c in growing)
    for c in growing:
        widths[c.label] += spare * c.grow // shares
    widths[growing[-1].label] += spare - sum(spare * c.grow // shares for c in growing)
    return widths


def lay_out(table: DataTable, columns: list[Col], room: int) -> dict[str, int]:
    """Replace the table's columns (and rows) with ``columns`` fitted to ``room``."""
    widths = fitted(columns, room)
    table.clear(columns=True)
    for c in columns:
        table.add_column(c.label, width=widths[c.label])
    return widths
