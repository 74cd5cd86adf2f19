"""Offers: every provider's offers, searched by name or id and paged lazily (``u`` shows
only the unmapped ones); the highlighted unmapped offer shows the products closest to
it. Map it to one of them (or any slug), unmap it, or create a product from it; each
action goes through :mod:`core.services.operator.offers` and is audited there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, OptionList, Static

from console.messages import PageLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.columns import Col, lay_out
from console.widgets.formatting import money, short
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.services.catalogue.covers import copy_linked_cover
from core.services.operator import offers as ops
from core.services.provider_sync import Candidate


class SuggestionsLoaded(Message):
    def __init__(self, key: str, candidates: list[Candidate]) -> None:
        super().__init__()
        self.key = key
        self.candidates = candidates


@dataclass(frozen=True)
class MapTo:
    """Map the offer to product ``slug``."""

    slug: str


class MapScreen(ModalScreen[MapTo | None]):
    """Choose the product: one of the closest ones, or a slug typed in."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, offer_name: str, candidates: list[tuple[str, str]]) -> None:
        super().__init__()
        self.offer_name = offer_name
        self.candidates = candidates  # (slug, label)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Map {short(self.offer_name, 50)} to…", classes="dialog-title")
            yield OptionList(*[label for _, label in self.candidates], id="candidates")
            yield Input(placeholder="or a product slug", id="map-slug")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Map", variant="primary", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        options = self.query_one("#candidates", OptionList)
        if self.candidates:
            options.highlighted = 0
            options.focus()
        else:
            self.query_one("#map-slug", Input).focus()

    @on(OptionList.OptionSelected, "#candidates")
    @on(Input.Submitted, "#map-slug")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        typed = self.query_one("#map-slug", Input).value.strip()
        if typed:
            self.dismiss(MapTo(typed))
            return
        index = self.query_one("#candidates", OptionList).highlighted
        if index is not None and self.candidates:
            self.dismiss(MapTo(self.candidates[index][0]))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


# The offer id, its name and our product share the terminal's spare width; the
# highlighted offer's whole id is in the detail line below the table.
OFFER_COLUMNS = [
    Col("Provider", 8),
    Col("Offer", 12, grow=3),
    Col("Name", 6, grow=2),
    Col("Platform", 8),
    Col("Region", 6),
    Col("Cost", 9),
    Col("Stock", 5),
    Col("Product", 8, grow=1),
]


def offer_label(row: ops.OfferListRow) -> str:
    """The offer whole: provider, id, platform and region (the detail line's start)."""
    return f"{row.provider} {row.external_id} ({row.platform or '-'}, {row.region or '-'})"


class OffersScreen(ConsoleScreen):
    NAME = "offers"
    AUTO_FOCUS = "#offers-table"
    BINDINGS = [
        Binding("slash", "focus_filter", "Search", id="offers.search"),
        Binding("u", "toggle_unmapped", "Unmapped", id="offers.unmapped"),
        Binding("m", "map", "Map", id="offers.map"),
        Binding("n", "unmap", "Unmap", id="offers.unmap"),
        Binding("c", "create_product", "New product", id="offers.create"),
    ]
    PALETTE = [
        ("Map the selected offer to a product", "map", "audited"),
        ("Unmap the selected offer", "unmap", "audited"),
        ("Create a product from the selected offer", "create_product", "and map it; audited"),
        ("Show only unmapped offers (toggle)", "toggle_unmapped", ""),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pager = Pager()
        self.query_text = ""
        self.unmapped = False
        self.rows: dict[str, ops.OfferListRow] = {}
        self.suggested: dict[str, list[Candidate]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(placeholder="search offer name or id", id="offers-filter")
        yield DataTable(id="offers-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="offer-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.table_width = self.app.size.width
        self.widths = lay_out(
            self.query_one("#offers-table", DataTable), OFFER_COLUMNS, self.table_width
        )

    def on_resize(self) -> None:
        """The terminal changed width: fit the columns to it again."""
        if self.app.size.width != self.table_width:
            self.table_width = self.app.size.width
            table = self.query_one("#offers-table", DataTable)
            self.widths = lay_out(table, OFFER_COLUMNS, self.table_width)
            self.load()

    def action_focus_filter(self) -> None:
        self.query_one("#offers-filter", Input).focus()

    def action_toggle_unmapped(self) -> None:
        self.unmapped = not self.unmapped
        self.load()

    @on(Input.Submitted, "#offers-filter")
    def load(self) -> None:
        self.query_text = self.query_one("#offers-filter", Input).value
        self.pager.reset()
        self.fetch(self.query_text, self.unmapped, None)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, query: str, unmapped: bool, after_id: int | None) -> None:
        with session_scope(write=False) as session:
            rows = ops.list_offers(
                session=session, query=query, unmapped=unmapped, after_id=after_id, limit=PAGE
            )
        self.post_message(
            PageLoaded("offers-table", rows, first_page=after_id is None, more=len(rows) >= PAGE)
        )

    @on(PageLoaded)
    def show_rows(self, message: PageLoaded) -> None:
        table = self.query_one("#offers-table", DataTable)
        if message.first_page:
            table.clear()
            self.rows.clear()
        for r in message.rows:
            key = f"{r.provider}\t{r.external_id}"
            self.rows[key] = r
            w = self.widths
            table.add_row(
                short(r.provider, w["Provider"]),
                short(r.external_id, w["Offer"]),
                short(r.name, w["Name"]),
                short(r.platform or "-", w["Platform"]),
                short(r.region or "-", w["Region"]),
                Text(money(r.cost_minor, r.currency) if r.cost_minor is not None else "-"),
                Text(str(r.stock), justify="right"),
                Text(r.product_slug, style="green")
                if r.product_slug
                else Text("unmapped", style="yellow"),
                key=key,
            )
        self.pager.loaded(message.rows, message.rows[-1].id if message.rows else None)
        more = "+" if self.pager.more else ""
        which = "unmapped offers" if self.unmapped else "offers"
        self.sub_title = f"{table.row_count}{more} {which} · {self.updated()}"

    @on(DataTable.RowHighlighted, "#offers-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#offers-table", DataTable)
        if self.pager.wants_more(table, event.cursor_row):
            self.fetch(self.query_text, self.unmapped, self.pager.cursor)
        key = event.row_key.value
        row = self.rows.get(key or "")
        detail = self.query_one("#offer-detail", Static)
        if row is None or key is None:
            detail.update("")
        elif row.product_slug:
            detail.update(f"{offer_label(row)} {short(row.name, 60)}: mapped to {row.product_slug}")
        else:
            detail.update(
                f"{offer_label(row)} {short(row.name, 60)}: unmapped; looking for the closest "
                "products…"
            )
            self.suggest(key, row.provider, row.external_id)

    @work(thread=True, exclusive=True, group="suggest")
    def suggest(self, key: str, provider: str, external_id: str) -> None:
        with session_scope(write=False) as session:
            found = ops.suggestions(session=session, provider=provider, external_id=external_id)
        self.post_message(SuggestionsLoaded(key, found))

    @on(SuggestionsLoaded)
    def show_suggestions(self, message: SuggestionsLoaded) -> None:
        self.suggested[message.key] = message.candidates
        row = self.rows.get(message.key)
        if (
            row is None
            or self.selected_key(self.query_one("#offers-table", DataTable)) != message.key
        ):
            return
        closest = "; ".join(
            f"{c.title} ({c.platform}, {c.region}) {c.score:.2f}" for c in message.candidates
        )
        self.query_one("#offer-detail", Static).update(
            f"{offer_label(row)} {short(row.name, 50)}: unmapped. "
            f"Closest: {closest or 'no products'}"
        )

    # -- actions -----------------------------------------------------------------------

    def selected(self) -> tuple[str, ops.OfferListRow] | None:
        key = self.selected_key(self.query_one("#offers-table", DataTable))
        row = self.rows.get(key or "")
        return None if key is None or row is None else (key, row)

    def action_map(self) -> None:
        chosen = self.selected()
        if chosen is None:
            return
        key, row = chosen
        self.open_map(key, row)

    @work(thread=True, group="actions")
    def open_map(self, key: str, row: ops.OfferListRow) -> None:
        with session_scope(write=False) as session:
            found = ops.suggestions(
                session=session, provider=row.provider, external_id=row.external_id, limit=5
            )
            slugs = ops.product_slugs(session=session, ids=[c.product_id for c in found])
        options = [
            (slugs[c.product_id], f"{c.title} ({c.platform}, {c.region}) {c.score:.2f}")
            for c in found
            if c.product_id in slugs
        ]
        self.app.call_from_thread(self.show_map, row, options)

    def show_map(self, row: ops.OfferListRow, options: list[tuple[str, str]]) -> None:
        def chosen(result: MapTo | None) -> None:
            if result is not None:
                self.run_operator_action(
                    "map offer",
                    lambda: (
                        f"{row.provider} {row.external_id} → {result.slug}"
                        if ops.map_offer(
                            provider=row.provider,
                            external_id=row.external_id,
                            slug=result.slug,
                            actor=self.actor,
                        )
                        else f"{row.provider} {row.external_id}: already mapped to {result.slug}"
                    ),
                )

        self.app.push_screen(MapScreen(row.name, options), chosen)

    def action_unmap(self) -> None:
        chosen = self.selected()
        if chosen is None or chosen[1].product_slug is None:
            return
        row = chosen[1]

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_operator_action(
                    "unmap offer",
                    lambda: (
                        f"{row.provider} {row.external_id}: unmapped"
                        if ops.unmap_offer(
                            provider=row.provider, external_id=row.external_id, actor=self.actor
                        )
                        else "it was not mapped"
                    ),
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Unmap {row.provider} {row.external_id} from {row.product_slug}?",
                "The shop stops buying this offer for that product.",
            ),
            confirmed,
        )

    def action_create_product(self) -> None:
        chosen = self.selected()
        if chosen is None or chosen[1].product_slug is not None:
            return
        row = chosen[1]

        def confirmed(yes: bool | None) -> None:
            if yes:

                def call() -> str:
                    slug = ops.create_product_from_offer(
                        provider=row.provider, external_id=row.external_id, actor=self.actor
                    ).slug
                    copied = copy_linked_cover(slug=slug, actor=self.actor)
                    text = f"added {slug}, mapped to {row.provider} {row.external_id}"
                    return text + (f"; {copied}" if copied else "")

                self.run_operator_action("create product", call)

        self.app.push_screen(
            ConfirmScreen(
                f"Create a product from {short(row.name, 50)}?",
                "Title, platform, region and release date come from the offer; the price is "
                "the smallest …99 keeping the minimum margin over its cost (edit it after).",
                confirm_label="Create",
            ),
            confirmed,
        )
