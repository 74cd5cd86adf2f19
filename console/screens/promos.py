"""Promo codes: the codes (newest first, ``/`` filters by the start of the code), and
below them the selected code's usage (uses, given back, discount per currency, the
latest orders); above them the discount given in the last 30 days per currency
(:func:`core.services.reports.discounts_given`). ``n`` creates a code in a dialog checked by the same validation as the
CLI (:func:`core.services.operator.promos.promo_spec`); ``p`` pauses or resumes the
selected code (confirmed). Both audited. Bulk single-use codes: ``keyshop promo
generate``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
)
from textual.worker import get_current_worker

from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen
from console.widgets.formatting import money
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.errors import DomainError, InvalidInput
from core.models import PromoScope
from core.services.operator import promos
from core.services.promos import normalise_code
from core.services.reports import DiscountRow, discounts_given


class PromosLoaded(Message):
    def __init__(self, rows: list[promos.PromoRow], given: list[DiscountRow]) -> None:
        super().__init__()
        self.rows = rows
        self.given = given


class UsageLoaded(Message):
    def __init__(self, usage: promos.PromoUsage | None) -> None:
        super().__init__()
        self.usage = usage


class PromoChecked(Message):
    def __init__(self, data: promos.PromoInput, error: str) -> None:
        super().__init__()
        self.data = data
        self.error = error


def value_text(row: promos.PromoRow) -> str:
    if row.percent_bp is not None:
        return f"{row.percent_bp / 100:g} %"
    return ", ".join(money(m, c) for c, m in sorted(row.amounts.items()))


def _when(text: str, name: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)", field=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _count(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"{name}: a whole number", field=name)
    return int(text)


class PromoFormScreen(ModalScreen[promos.PromoInput | None]):
    """The terms of a new code. A bad value is named in the dialog (the service's own
    validation, run on a read-only session), so nothing has to be typed again."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Label("New promo code", classes="dialog-title")
            yield Input(placeholder="code, e.g. SUMMER10", id="promo-code")
            yield Input(placeholder="percent off, e.g. 10 (or leave empty)", id="promo-percent")
            yield Input(placeholder="or amounts off: EUR=5, USD=5", id="promo-amounts")
            yield Input(placeholder="minimum order: EUR=20 (optional)", id="promo-minimum")
            yield Select(
                [(s.value, s.value) for s in PromoScope],
                value=PromoScope.SHOP.value,
                allow_blank=False,
                id="promo-scope",
            )
            yield Input(
                placeholder="products, platforms or genres, comma-separated", id="promo-only"
            )
            yield Input(placeholder="starts YYYY-MM-DD (optional, UTC)", id="promo-starts")
            yield Input(placeholder="ends YYYY-MM-DD (optional, UTC)", id="promo-ends")
            yield Input(placeholder="uses in all (optional)", id="promo-max-uses")
            yield Input(placeholder="uses per customer (optional)", id="promo-per-customer")
            yield Checkbox("may be combined with other codes", id="promo-stackable")
            yield Checkbox("may go below the cost floor", id="promo-below-cost")
            yield Static("", id="promo-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create", variant="primary", id="confirm")
                yield Button("Cancel", id="cancel")

    def _value(self, name: str) -> str:
        return self.query_one(f"#promo-{name}", Input).value

    def _read(self) -> promos.PromoInput:
        scope = self.query_one("#promo-scope", Select).value
        return promos.PromoInput(
            code=normalise_code(self._value("code")),
            percent=self._value("percent").strip() or None,
            amounts=self._value("amounts").strip() or None,
            minimum=self._value("minimum").strip() or None,
            scope=str(scope),
            scope_values=[v.strip() for v in self._value("only").split(",") if v.strip()],
            starts_at=_when(self._value("starts"), "starts"),
            ends_at=_when(self._value("ends"), "ends"),
            max_uses=_count(self._value("max-uses"), "uses in all"),
            per_customer=_count(self._value("per-customer"), "uses per customer"),
            stackable=self.query_one("#promo-stackable", Checkbox).value,
            below_cost=self.query_one("#promo-below-cost", Checkbox).value,
        )

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        try:
            data = self._read()
        except DomainError as exc:
            self.query_one("#promo-error", Static).update(exc.message)
            return
        self._check(data)

    @work(thread=True, exclusive=True, group="check")
    def _check(self, data: promos.PromoInput) -> None:
        """The service's validation (it reads product slugs) off the UI thread."""
        try:
            with session_scope(write=False) as session:
                promos.promo_spec(session=session, data=data)
        except DomainError as exc:
            self.post_message(PromoChecked(data, exc.message))
        else:
            self.post_message(PromoChecked(data, ""))

    @on(PromoChecked)
    def _checked(self, message: PromoChecked) -> None:
        if message.error:
            self.query_one("#promo-error", Static).update(message.error)
        else:
            self.dismiss(message.data)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class PromosScreen(ConsoleScreen):
    NAME = "promos"
    AUTO_FOCUS = "#promos-table"
    BINDINGS = [
        Binding("n", "create", "New code", id="promos.create"),
        Binding("p", "pause", "Pause/resume", id="promos.pause"),
        Binding("slash", "filter", "Filter", id="promos.filter"),
    ]
    PALETTE = [
        ("Create a promo code", "create", "audited"),
        ("Pause or resume the selected promo code", "pause", "audited"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        with Vertical():
            yield Static("", id="promo-totals")
            yield Input(placeholder="/ filter: the start of a code", id="promos-filter")
            yield DataTable(id="promos-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="promo-usage")
            yield DataTable(id="usage-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#promos-table", DataTable).add_columns(
            "Code", "Value", "Scope", "Uses", "State", "Valid", "Campaign"
        )
        self.query_one("#usage-table", DataTable).add_columns(
            "When", "Order", "Status", "E-mail", "Discount"
        )

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        query = self.query_one("#promos-filter", Input).value
        today = self.deps.now().date()
        with session_scope(write=False) as session:
            rows = promos.list_promos(session=session, query=query)
            given = discounts_given(
                session=session, start=today - timedelta(days=29), end=today, by="currency"
            )
        if not get_current_worker().is_cancelled:  # a newer load (after an action) replaced it
            self.post_message(PromosLoaded(rows, given))

    @on(PromosLoaded)
    def show(self, message: PromosLoaded) -> None:
        table = self.query_one("#promos-table", DataTable)
        selected = self.selected_key(table)
        table.clear()
        for r in message.rows:
            uses = f"{r.uses}/{r.max_uses}" if r.max_uses is not None else f"{r.uses}/-"
            valid = (f"{r.starts_at:%Y-%m-%d}" if r.starts_at else "") + (
                f"..{r.ends_at:%Y-%m-%d}" if r.ends_at else ""
            )
            state = Text("paused", style="yellow") if r.paused else Text("active", style="green")
            table.add_row(
                r.code, value_text(r), r.scope, Text(uses, justify="right"), state, valid,
                r.campaign or "", key=r.code,
            )  # fmt: skip
        if selected is not None and selected in {r.code for r in message.rows}:
            table.move_cursor(row=table.get_row_index(selected))
        given = ", ".join(money(r.discount_minor, r.currency) for r in message.given) or "nothing"
        orders = sum(r.orders for r in message.given)
        self.query_one("#promo-totals", Static).update(
            f"discount given in the last 30 days: {given} on {orders} paid order(s) "
            "(keyshop report discounts for any period)"
        )
        self.sub_title = f"{len(message.rows)} code(s) · {self.updated()}"
        self._load_usage(self.selected_key(table))

    @on(DataTable.RowHighlighted, "#promos-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._load_usage(event.row_key.value if event.row_key else None)

    @work(thread=True, exclusive=True, group="usage")
    def _load_usage(self, code: str | None) -> None:
        if code is None:
            self.post_message(UsageLoaded(None))
            return
        with session_scope(write=False) as session:
            usage = promos.promo_usage(session=session, code=code)
        if not get_current_worker().is_cancelled:
            self.post_message(UsageLoaded(usage))

    @on(UsageLoaded)
    def show_usage(self, message: UsageLoaded) -> None:
        table = self.query_one("#usage-table", DataTable)
        table.clear()
        usage = message.usage
        summary = self.query_one("#promo-usage", Static)
        if usage is None:
            summary.update("no code selected")
            return
        given = ", ".join(money(m, c) for c, m in sorted(usage.discount.items())) or "nothing"
        summary.update(
            f"{usage.promo.code}: {usage.live} use(s), {usage.released} given back by "
            f"cancelled orders; discount given {given}"
        )
        for u in usage.uses:
            table.add_row(
                f"{u.created_at:%Y-%m-%d %H:%M}", u.order,
                "given back" if u.released else u.status, u.email,
                Text("-" + money(u.discount_minor, u.currency), justify="right"),
            )  # fmt: skip

    @on(Input.Submitted, "#promos-filter")
    def _filtered(self) -> None:
        self.load()
        self.query_one("#promos-table", DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#promos-filter", Input).focus()

    def action_create(self) -> None:
        def created(data: promos.PromoInput | None) -> None:
            if data is not None:
                self.run_operator_action(
                    "create promo code",
                    lambda: (
                        f"promo code {promos.create_promo(data=data, actor=self.actor)} created"
                    ),
                )

        self.app.push_screen(PromoFormScreen(), created)

    def action_pause(self) -> None:
        table = self.query_one("#promos-table", DataTable)
        code = self.selected_key(table)
        if code is None:
            return
        paused = str(table.get_row(code)[4]) == "paused"
        verb = "Resume" if paused else "Pause"

        def confirmed(yes: bool | None) -> None:
            if yes:

                def call() -> str:
                    promos.set_paused(code=code, paused=not paused, actor=self.actor)
                    return f"promo code {code} {'resumed' if paused else 'paused'}"

                self.run_operator_action(f"{verb.lower()} promo code", call)

        body = (
            "Checkouts may use it again."
            if paused
            else "Checkouts refuse it until it is resumed; orders placed keep their discount."
        )
        self.app.push_screen(ConfirmScreen(f"{verb} promo code {code}?", body), confirmed)
