"""Providers: health (the last successful call and the last error, from what the shop
records), balance (asked live, in a worker, with a timeout: a failure is shown, never
raised), the last sync and the offers mapped, unmapped and in stock; the offers of the
selected provider, paged lazily (an unmapped one shows the products closest to it,
:func:`core.services.provider_sync.closest_products`, for a mapping by hand); and starting
a sync, which queues the same
``sync_provider`` job the scheduler runs (confirmed, audited) and follows it until the
provider's last sync time moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.messages import (
    BalancesChecked,
    OfferCandidatesLoaded,
    OffersLoaded,
    ProvidersLoaded,
)
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.columns import Col, lay_out
from console.widgets.formatting import money, short, when
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.services import operator as ops
from core.services.console_reads.providers import (
    BalanceRow,
    OfferRow,
    ProviderCall,
    ProviderStatusRow,
    provider_balances_from,
    provider_health,
    provider_offers,
    provider_overview,
)
from core.services.provider_sync import closest_products

SYNC_PATIENCE_SECONDS = 600  # stop following a queued sync after this long
HEALTH_STYLE = {"ok": "green", "failing": "bold red", "unknown": "dim"}


@dataclass
class PendingSync:
    requested_at: datetime
    last_sync_before: datetime | None


def balance_text(balance: BalanceRow | None) -> Text:
    if balance is None:
        return Text("…", style="dim")
    if balance.error is not None or balance.amount_minor is None:
        error = (balance.error or "no amount").removeprefix(f"{balance.provider}: ")
        return Text(short(f"failed: {error}", 30), style="red")
    return Text(money(balance.amount_minor, balance.currency or "?"), justify="right")


# The offer id, its name and our product share the terminal's spare width; the
# highlighted offer's whole id is in the detail line below the table.
OFFER_COLUMNS = [
    Col("External id", 12, grow=3),
    Col("Offer", 10, grow=2),
    Col("Our product", 10, grow=1),
    Col("Cost", 11),
    Col("Stock", 5),
    Col("Synced", 16),
]


class ProvidersScreen(ConsoleScreen):
    NAME = "providers"
    AUTO_FOCUS = "#providers-table"
    BINDINGS = [
        Binding("s", "sync", "Start a sync", id="providers.sync"),
        Binding("b", "balances", "Check balances", id="providers.balances"),
        Binding("o", "focus_offers", "Offers", id="providers.offers"),
        Binding("escape", "focus_providers", "Providers", show=False, id="providers.list"),
    ]
    PALETTE = [
        ("Start a sync of the selected provider", "sync", "queues the sync job; audited"),
        ("Check the providers' balances", "balances", "asks each provider now"),
    ]

    def __init__(self, *, refresh_seconds: float = 10.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.refresh_seconds = refresh_seconds
        self.rows: dict[str, ProviderStatusRow] = {}
        self.balances: dict[str, BalanceRow] = {}
        self.pending: dict[str, PendingSync] = {}
        self.offers_of: str | None = None
        self.offers_pager = Pager()
        self.offer_rows: dict[int, OfferRow] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="providers-table", cursor_type="row")
        yield Static("", id="provider-detail", classes="detail")
        yield DataTable(id="offers-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="offer-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#providers-table", DataTable).add_columns(
            "Provider", "Health", "Balance", "Last sync", "Mapped", "Unmapped", "In stock"
        )
        offers = self.query_one("#offers-table", DataTable)
        self.table_width = self.app.size.width
        self.widths = lay_out(offers, OFFER_COLUMNS, self.table_width)
        offers.border_title = "Offers"
        if self.refresh_seconds > 0:
            self.set_interval(min(self.refresh_seconds, 2.0), self._tick)

    def on_resize(self) -> None:
        """The terminal changed width: fit the offer columns to it again."""
        if self.app.size.width != self.table_width:
            self.table_width = self.app.size.width
            offers = self.query_one("#offers-table", DataTable)
            self.widths = lay_out(offers, OFFER_COLUMNS, self.table_width)
            if self.offers_of:
                self.load_offers(self.offers_of, None)

    def _tick(self) -> None:
        if self.is_current and self.pending and not self.running("load"):
            self.load()

    def on_screen_resume(self) -> None:
        self.load()
        self.check_balances()

    def action_reload(self) -> None:
        self.load()
        self.check_balances()

    def action_balances(self) -> None:
        self.check_balances()

    def action_focus_offers(self) -> None:
        self.query_one("#offers-table", DataTable).focus()

    def action_focus_providers(self) -> None:
        self.query_one("#providers-table", DataTable).focus()

    # -- loading -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            rows = provider_overview(session=session, providers=list(self.settings.providers))
        self.post_message(ProvidersLoaded(rows))

    @work(thread=True, exclusive=True, group="balances")
    def check_balances(self) -> None:
        rows = provider_balances_from(
            self.deps.provider_clients,
            providers=self.settings.providers,
            timeout=self.deps.balance_timeout,
            now=self.deps.now,
        )
        self.post_message(BalancesChecked(rows))

    @on(ProvidersLoaded)
    def show_providers(self, message: ProvidersLoaded) -> None:
        self.rows = {r.provider: r for r in message.rows}
        self._follow_syncs()
        self._render_providers()
        selected = self.selected_provider()
        if selected is not None and selected != self.offers_of:
            self.load_offers(selected, None)

    @on(BalancesChecked)
    def show_balances(self, message: BalancesChecked) -> None:
        self.balances = {b.provider: b for b in message.rows}
        self._render_providers()

    def _render_providers(self) -> None:
        table = self.query_one("#providers-table", DataTable)
        keep = self.selected_key(table)
        table.clear()
        for name, r in self.rows.items():
            health, latest = self.health_of(r)
            label = f"{health} {latest.at:%H:%M}" if latest else health
            table.add_row(
                Text(name, style="bold"),
                Text(label, style=HEALTH_STYLE.get(health, "")),
                balance_text(self.balances.get(name)),
                when(r.last_sync) + (" (syncing)" if name in self.pending else ""),
                Text(str(r.mapped), justify="right"),
                Text(str(r.unmapped), justify="right"),
                Text(str(r.in_stock), justify="right"),
                key=name,
            )
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_detail()

    def health_of(self, row: ProviderStatusRow) -> tuple[str, ProviderCall | None]:
        """Health from the most recent call: the recorded ones and the balance check."""
        balance = self.balances.get(row.provider)
        return provider_health([*row.calls, balance.call if balance else None])

    def selected_provider(self) -> str | None:
        return self.selected_key(self.query_one("#providers-table", DataTable))

    @on(DataTable.RowHighlighted, "#providers-table")
    def _provider_highlighted(self) -> None:
        self._show_detail()
        name = self.selected_provider()
        if name is not None and name != self.offers_of:
            self.load_offers(name, None)

    def _show_detail(self) -> None:
        name = self.selected_provider()
        r = self.rows.get(name or "")
        if r is None:
            self.query_one("#provider-detail", Static).update("No providers configured.")
            return
        health, latest = self.health_of(r)
        text = f"{name}: {health}"
        if latest is not None:
            outcome = f"failed: {short(latest.error, 60)}" if latest.error else "succeeded"
            text += f", from the last call: {latest.what} at {when(latest.at)} {outcome}"
        text += f"\nlast success {when(r.last_success)}"
        if r.last_error:
            text += f"; last error {when(r.last_error_at)}: {short(r.last_error, 60)}"
        balance = self.balances.get(r.provider)
        if balance is not None and balance.error:
            text += f"; balance check: {short(balance.error, 40)}"
        self.query_one("#provider-detail", Static).update(Text(text))

    # -- offers, paged lazily ------------------------------------------------------------

    @work(thread=True, exclusive=True, group="offers")
    def load_offers(self, provider: str, after_id: int | None) -> None:
        with session_scope(write=False) as session:
            rows = provider_offers(
                session=session, provider=provider, after_id=after_id, limit=PAGE
            )
        self.post_message(OffersLoaded(provider, rows, first_page=after_id is None))

    @on(OffersLoaded)
    def show_offers(self, message: OffersLoaded) -> None:
        table = self.query_one("#offers-table", DataTable)
        if message.first_page:
            table.clear()
            self.offers_pager.reset()
            self.offers_of = message.provider
        elif message.provider != self.offers_of:
            return
        for o in message.rows:
            self.offer_rows[o.id] = o
            cost = "-" if o.cost_minor is None else money(o.cost_minor, o.currency)
            w = self.widths
            table.add_row(
                short(o.external_id, w["External id"]),
                short(o.name, w["Offer"]),
                Text(short(o.product, w["Our product"]))
                if o.product
                else Text("unmapped", style="yellow"),
                Text(cost, justify="right"),
                Text(str(o.stock), justify="right"),
                when(o.last_synced_at),
                key=str(o.id),
            )
        self.offers_pager.loaded(message.rows, message.rows[-1].id if message.rows else None)
        table.border_title = f"Offers of {message.provider} ({table.row_count} shown" + (
            ", more below)" if self.offers_pager.more else ")"
        )

    @on(DataTable.RowHighlighted, "#offers-table")
    def _offer_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#offers-table", DataTable)
        if self.offers_of and self.offers_pager.wants_more(table, event.cursor_row):
            self.load_offers(self.offers_of, self.offers_pager.cursor)
        key = event.row_key.value if event.row_key else None
        offer = self.offer_rows.get(int(key)) if key else None
        detail = self.query_one("#offer-detail", Static)
        if offer is None:
            detail.update("")
        elif offer.product:
            detail.update(Text(f"{offer.external_id} {short(offer.name, 60)}: {offer.product}"))
        else:
            detail.update(
                Text(
                    f"{offer.external_id} {short(offer.name, 60)}: unmapped; looking for the "
                    "closest products…"
                )
            )
            self.load_candidates(offer.id)

    @work(thread=True, exclusive=True, group="candidates")
    def load_candidates(self, offer_id: int) -> None:
        with session_scope(write=False) as session:
            found = closest_products(session=session, offer_id=offer_id)
        self.post_message(OfferCandidatesLoaded(offer_id, found))

    @on(OfferCandidatesLoaded)
    def show_candidates(self, message: OfferCandidatesLoaded) -> None:
        offer = self.offer_rows.get(message.offer_id)
        if offer is None:
            return
        closest = "; ".join(
            f"{c.title} ({c.platform}, {c.region}) {c.score:.0%}" for c in message.candidates
        )
        self.query_one("#offer-detail", Static).update(
            Text(
                f"{offer.external_id} {short(offer.name, 50)}: unmapped. "
                f"Closest: {closest or 'no products'}"
            )
        )

    # -- sync ----------------------------------------------------------------------------

    def action_sync(self) -> None:
        name = self.selected_provider()
        if name is None:
            self.notify("No provider selected.", severity="warning")
            return
        if name in self.pending:
            self.notify(f"A sync of {name} is already on its way.", severity="warning")
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_operator_action("Sync", lambda: self._sync(name))

        self.app.push_screen(
            ConfirmScreen(
                f"Start a sync of {name}?",
                "Offers, prices and stock are read again from the provider by a worker.",
                confirm_label="Sync",
            ),
            confirmed,
        )

    def _sync(self, name: str) -> str:
        before = self.rows[name].last_sync if name in self.rows else None
        requested = self.deps.now()
        ops.request_provider_sync(provider=name, actor=self.actor)
        self.pending[name] = PendingSync(requested, before)
        return f"sync of {name} queued; the last sync time moves when it is done"

    def _follow_syncs(self) -> None:
        now = self.deps.now()
        for name, pending in list(self.pending.items()):
            row = self.rows.get(name)
            if (
                row is not None
                and row.last_sync is not None
                and (pending.last_sync_before is None or row.last_sync > pending.last_sync_before)
            ):
                del self.pending[name]
                if name == self.selected_provider():
                    self.load_offers(name, None)
                self.notify(
                    f"{name} synced at {when(row.last_sync)}: {row.offers} offers, "
                    f"{row.mapped} mapped, {row.unmapped} unmapped, {row.in_stock} in stock",
                    title="Sync finished",
                )
            elif (now - pending.requested_at).total_seconds() > SYNC_PATIENCE_SECONDS:
                del self.pending[name]
                self.notify(
                    f"the sync of {name} queued at {when(pending.requested_at)} has not "
                    "finished; is a worker running? (see its log)",
                    title="Sync not finished",
                    severity="warning",
                )
