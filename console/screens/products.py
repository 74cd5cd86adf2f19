"""Products: the catalogue, searched by slug or title and paged lazily; add a product,
edit the selected one (a form whose fields are the product model's, checked by the same
model family as the CLI and the CSV import before anything is sent, plus a cover image
file checked and resized before anything is written), retire it (with a reason) or put
it back on sale. Every action goes through
:mod:`core.services.operator.catalogue` and is audited there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from console.messages import PageLoaded
from console.screens.base import ConsoleScreen
from console.screens.modals import ConfirmScreen, Reason, ReasonScreen
from console.widgets.formatting import money, short
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.errors import InvalidInput
from core.services.catalogue import get_product_by_slug
from core.services.catalogue.covers import load_cover_file, set_cover
from core.services.catalogue.prices import other_prices
from core.services.catalogue.product_input import (
    ProductCreate,
    ProductUpdate,
    parse_product_text,
    validate_create,
    validate_update,
)
from core.services.operator import catalogue as ops
from core.services.operator.catalogue_csv import COLUMNS, product_text

LABELS = {
    "price": "price (e.g. 19.99)",
    "list_price": "list price (empty: none)",
    "release_date": "release date YYYY-MM-DD",
    "is_preorder": "pre-order (yes/no)",
    "featured": "featured (yes/no)",
    "active": "on sale (yes/no)",
}


@dataclass(frozen=True)
class ProductForm:
    """What the form returns: the checked fields, and a cover image already checked and
    resized (:func:`core.services.catalogue.covers.load_cover_file`) when a file was
    named."""

    data: ProductCreate | ProductUpdate
    cover_sizes: dict[str, bytes] | None = None
    cover_name: str = ""


class ProductFormScreen(ModalScreen[ProductForm | None]):
    """A product's fields as text, and a cover image file. Returns a :class:`ProductForm`
    with a checked :class:`ProductCreate` (no ``current``) or the :class:`ProductUpdate`
    of the fields changed; a bad field or cover is shown in the form, which stays
    open."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, current: dict[str, str] | None = None) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        values = self.current or {"currency": "EUR", "region": "GLOBAL"}
        title = f"Edit {values['slug']}" if self.current else "Add a product"
        with Vertical(classes="dialog product-form"):
            yield Label(title, classes="dialog-title")
            with VerticalScroll(id="product-fields"):
                for name in COLUMNS:
                    yield Label(LABELS.get(name, name.replace("_", " ")))
                    yield Input(value=values.get(name, ""), id=f"field-{name}")
                yield Label("cover image file (JPEG, PNG or WebP; empty: keep the cover)")
                yield Input(value="", id="field-cover_file")
            yield Static("", id="product-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#field-slug" if self.current is None else "#field-title", Input).focus()

    def typed(self) -> dict[str, str]:
        return {name: self.query_one(f"#field-{name}", Input).value for name in COLUMNS}

    def checked(self) -> ProductCreate | ProductUpdate:
        values = self.typed()
        if self.current is None:  # an empty field takes the model's default
            given = {k: v for k, v in values.items() if v.strip()}
            return validate_create(parse_product_text(given), strict=False)
        changed = {k: v for k, v in values.items() if v != self.current.get(k)}
        if "price" in changed or "list_price" in changed:
            changed.setdefault("currency", values["currency"])
        return validate_update(parse_product_text(changed), strict=False)

    @on(Button.Pressed, "#confirm")
    @on(Input.Submitted)
    def action_confirm(self) -> None:
        try:
            data = self.checked()
            path = self.query_one("#field-cover_file", Input).value.strip()
            sizes = load_cover_file(Path(path).expanduser()) if path else None
            result = ProductForm(data, sizes, Path(path).name if path else "")
        except InvalidInput as exc:
            self.query_one("#product-error", Static).update(exc.message)
            field = str(exc.data.get("field", ""))
            field = {
                "price_minor": "price",
                "list_price_minor": "list_price",
                "cover": "cover_file",
            }.get(field, field)
            if field in (*COLUMNS, "cover_file"):
                self.query_one(f"#field-{field}", Input).focus()
            return
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ProductsScreen(ConsoleScreen):
    NAME = "products"
    AUTO_FOCUS = "#products-table"
    BINDINGS = [
        Binding("slash", "focus_filter", "Search", id="products.search"),
        Binding("a", "add", "Add", id="products.add"),
        Binding("e", "edit", "Edit", id="products.edit"),
        Binding("x", "retire", "Retire", id="products.retire"),
        Binding("u", "restore", "Restore", id="products.restore"),
    ]
    PALETTE = [
        ("Add a product", "add", "a form; audited"),
        ("Edit the selected product", "edit", "audited with before and after"),
        ("Retire the selected product", "retire", "off sale, kept with its orders"),
        ("Restore the selected product", "restore", "back on sale"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pager = Pager()
        self.query_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield Input(placeholder="search slug or title", id="products-filter")
        yield DataTable(id="products-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#products-table", DataTable).add_columns(
            "Slug", "Title", "Platform", "Region", "Price", "State", "Keys", "Offers", "Orders"
        )

    def action_focus_filter(self) -> None:
        self.query_one("#products-filter", Input).focus()

    @on(Input.Submitted, "#products-filter")
    def load(self) -> None:
        self.query_text = self.query_one("#products-filter", Input).value
        self.pager.reset()
        self.fetch(self.query_text, None)

    @work(thread=True, exclusive=True, group="load")
    def fetch(self, query: str, after_id: int | None) -> None:
        with session_scope(write=False) as session:
            rows = ops.list_products(session=session, query=query, after_id=after_id, limit=PAGE)
        self.post_message(
            PageLoaded("products-table", rows, first_page=after_id is None, more=len(rows) >= PAGE)
        )

    @on(PageLoaded)
    def show_rows(self, message: PageLoaded) -> None:
        table = self.query_one("#products-table", DataTable)
        if message.first_page:
            table.clear()
        for r in message.rows:
            table.add_row(
                r.slug,
                short(r.title, 40),
                r.platform,
                r.region,
                Text(money(r.price_minor, r.currency), justify="right"),
                Text("on sale", style="green") if r.active else Text("retired", style="dim"),
                Text(str(r.available_keys), justify="right"),
                Text(str(r.mapped_offers), justify="right"),
                Text(str(r.ordered), justify="right"),
                key=r.slug,
            )
        self.pager.loaded(message.rows, message.rows[-1].id if message.rows else None)
        more = "+" if self.pager.more else ""
        self.sub_title = f"{table.row_count}{more} products · {self.updated()}"

    @on(DataTable.RowHighlighted, "#products-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#products-table", DataTable)
        if self.pager.wants_more(table, event.cursor_row):
            self.fetch(self.query_text, self.pager.cursor)

    # -- actions -----------------------------------------------------------------------

    def selected_slug(self) -> str | None:
        return self.selected_key(self.query_one("#products-table", DataTable))

    def action_add(self) -> None:
        def added(result: ProductForm | None) -> None:
            if result is not None and isinstance(result.data, ProductCreate):
                data = result.data

                def call() -> str:
                    slug = ops.add_product(data=data, actor=self.actor).slug
                    return f"added {slug}" + self.upload_cover(slug, result)

                self.run_operator_action("add product", call)

        self.app.push_screen(ProductFormScreen(), added)

    def upload_cover(self, slug: str, form: ProductForm) -> str:
        """Store the form's cover, if it has one; what to add to the notification."""
        if form.cover_sizes is None:
            return ""
        set_cover(slug=slug, sizes=form.cover_sizes, actor=self.actor, file_name=form.cover_name)
        return f", cover {form.cover_name} uploaded"

    def action_edit(self) -> None:
        slug = self.selected_slug()
        if slug is not None:
            self.open_editor(slug)

    @work(thread=True, group="actions")
    def open_editor(self, slug: str) -> None:
        with session_scope(write=False) as session:
            product = get_product_by_slug(session=session, slug=slug)
            assert product.id is not None
            prices = other_prices(session=session, product_ids=[product.id])[product.id]
            current = product_text(product, prices)
        self.app.call_from_thread(self.show_editor, current)

    def show_editor(self, current: dict[str, str]) -> None:
        slug = current["slug"]

        def edited(result: ProductForm | None) -> None:
            if result is not None and isinstance(result.data, ProductUpdate):
                data = result.data

                def call() -> str:
                    changes = ops.edit_product(slug=slug, data=data, actor=self.actor)
                    now = changes.get("slug", slug)
                    text = f"{slug}: changed {', '.join(sorted(changes)) or 'nothing'}"
                    return text + self.upload_cover(now, result)

                self.run_operator_action("edit product", call)

        self.app.push_screen(ProductFormScreen(current), edited)

    def action_retire(self) -> None:
        slug = self.selected_slug()
        if slug is None:
            return

        def confirmed(reason: Reason | None) -> None:
            if reason is not None:
                self.run_operator_action(
                    "retire product",
                    lambda: (
                        f"{slug}: retired"
                        if ops.retire_product(slug=slug, actor=self.actor, reason=reason.text)
                        else f"{slug}: already retired"
                    ),
                )

        self.app.push_screen(
            ReasonScreen(
                f"Retire {slug}?",
                "It leaves the storefront; its orders, keys and offers are kept.",
                confirm_label="Retire",
            ),
            confirmed,
        )

    def action_restore(self) -> None:
        slug = self.selected_slug()
        if slug is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_operator_action(
                    "restore product",
                    lambda: (
                        f"{slug}: back on sale"
                        if ops.restore_product(slug=slug, actor=self.actor)
                        else f"{slug}: already on sale"
                    ),
                )

        self.app.push_screen(ConfirmScreen(f"Put {slug} back on sale?"), confirmed)
