"""Inventory: products with their key counts (low stock highlighted, paged lazily),
importing keys from a file with a progress bar and the import report, setting a
product's low-stock threshold, revoking available keys of a product (how many, and
optionally only those of one import), and the import history (file, counts, operator,
time, the reasons lines were rejected). A file that cannot be imported (missing,
binary, empty) or an unknown product is reported and changes nothing: the importer
refuses those before writing anything; so do the threshold and revoke services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import (
    ContentSwitcher,
    DataTable,
    Footer,
    Header,
    Input,
    ProgressBar,
    Static,
)

from console.messages import (
    ImportFailed,
    ImportFinished,
    ImportProgressed,
    PageLoaded,
)
from console.screens.base import ConsoleScreen
from console.screens.modals import RevokeKeys, RevokeKeysScreen, ValueScreen
from console.widgets.columns import Col, lay_out
from console.widgets.formatting import short, when
from console.widgets.navbar import NavBar
from console.widgets.paging import PAGE, Pager
from core.db import session_scope
from core.errors import DomainError
from core.services import operator as ops
from core.services.console_reads.inventory import (
    ImportRow,
    ProductStockRow,
    import_history,
    product_stock,
)
from core.services.importer import ImportReport, import_keys


def describe_report(report: ImportReport) -> str:
    lines = [
        f"Import #{report.batch_id} of {report.file_name}: read {report.read}, "
        f"imported {report.imported}, duplicate in file {report.duplicate_in_file}, "
        f"duplicate of stock {report.duplicate_in_stock}, rejected {report.rejected}"
    ]
    lines += [f"  line {r.line}: {r.reason}" for r in report.rejections[:5]]
    if report.rejected > 5:
        lines.append(f"  … and {report.rejected - 5} more rejected lines")
    return "\n".join(lines)


# The title and the slug share the terminal's spare width; the highlighted product is
# shown whole (slug, platform) in the line below the table.
STOCK_COLUMNS = [
    Col("Product", 12, grow=1),
    Col("Slug", 16, grow=2),
    Col("Platform", 8),
    Col("Avail", 6),
    Col("Resv", 5),
    Col("Deliv", 6),
    Col("Low at", 9),
]
IMPORT_COLUMNS = [
    ("#", 5),
    ("File", 20),
    ("Product", 20),
    ("When", 16),
    ("By", 10),
    ("Status", 9),
    ("Read", 8),
    ("New", 8),
    ("Dup", 6),
    ("Rej", 5),
]


class InventoryScreen(ConsoleScreen):
    NAME = "inventory"
    BINDINGS = [
        # short labels: every key fits the footer at 80 columns (? names them)
        Binding("i", "focus_import", "Import", id="inventory.import"),
        Binding("t", "threshold", "Threshold", id="inventory.threshold"),
        Binding("k", "revoke_keys", "Revoke", id="inventory.revoke"),
        Binding("h", "toggle_history", "History", id="inventory.history"),
        Binding("escape", "focus_table", "Products", show=False, id="inventory.products"),
    ]
    PALETTE = [
        ("Import keys from a file", "focus_import", "a .txt or .csv file of keys"),
        ("Set the selected product's low-stock threshold", "threshold", "audited"),
        ("Revoke available keys of the selected product", "revoke_keys", "how many; audited"),
        ("Show the import history", "toggle_history", "files, counts, rejected lines"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: dict[str, ProductStockRow] = {}
        self.imports: dict[str, ImportRow] = {}
        self.importing = False
        self.pager = Pager()
        self.imports_pager = Pager()

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        with ContentSwitcher(initial="stock-view", id="inventory-views"):
            with Vertical(id="stock-view"):
                yield DataTable(id="stock-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="stock-detail", classes="detail", markup=False)
            with Vertical(id="history-view"):
                yield DataTable(id="imports-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="import-detail", classes="detail")
        with Vertical(id="import-panel"):
            with Horizontal(classes="import-fields"):
                yield Input(placeholder="file of keys (.txt or .csv)", id="import-path")
                yield Input(placeholder="product slug (default: selected)", id="import-product")
            yield ProgressBar(id="import-progress", show_eta=False, total=1)
            yield Static("", id="import-report", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.stock_width = self.app.size.width
        self.widths = lay_out(
            self.query_one("#stock-table", DataTable), STOCK_COLUMNS, self.stock_width
        )
        imports = self.query_one("#imports-table", DataTable)
        for label, width in IMPORT_COLUMNS:
            imports.add_column(label, width=width)
        self.query_one("#import-panel").border_title = "Import keys (Enter in a field starts)"

    def on_resize(self) -> None:
        """The terminal changed width: fit the product columns to it again."""
        if self.app.size.width != self.stock_width:
            self.stock_width = self.app.size.width
            table = self.query_one("#stock-table", DataTable)
            self.widths = lay_out(table, STOCK_COLUMNS, self.stock_width)
            self.rows = {}
            self.load()

    def load(self) -> None:
        """(Re)load the first page of products, and of the import history."""
        self.pager.reset()
        self.fetch_stock(None)
        self.imports_pager.reset()
        self.fetch_imports(None)

    @work(thread=True, exclusive=True, group="load")
    def fetch_stock(self, after: tuple[str, int] | None) -> None:
        with session_scope(write=False) as session:
            rows = product_stock(session=session, after=after, limit=PAGE)
        self.post_message(
            PageLoaded("stock-table", rows, first_page=after is None, more=len(rows) >= PAGE)
        )

    @work(thread=True, exclusive=True, group="imports")
    def fetch_imports(self, before_id: int | None) -> None:
        with session_scope(write=False) as session:
            rows = import_history(session=session, before_id=before_id, limit=PAGE)
        self.post_message(
            PageLoaded("imports-table", rows, first_page=before_id is None, more=len(rows) >= PAGE)
        )

    @on(PageLoaded)
    def show_page(self, message: PageLoaded) -> None:
        if message.table_id == "stock-table":
            self.show_stock(message)
        else:
            self.show_imports(message)

    def show_stock(self, message: PageLoaded) -> None:
        table = self.query_one("#stock-table", DataTable)
        keep = self.selected_key(table)
        if message.first_page:
            table.clear()
            self.rows = {}
        w = self.widths
        for row in message.rows:
            self.rows[row.slug] = row
            style = "bold red" if row.low else ""
            table.add_row(
                Text(short(row.title + (" (LOW)" if row.low else ""), w["Product"]), style=style),
                short(row.slug, w["Slug"]),
                short(row.platform, w["Platform"]),
                Text(str(row.available), style=style, justify="right"),
                Text(str(row.reserved), justify="right"),
                Text(str(row.delivered), justify="right"),
                Text(f"{row.threshold:,}", justify="right"),
                key=row.slug,
            )
        last = message.rows[-1] if message.rows else None
        self.pager.loaded(message.rows, (last.title, last.id) if last else None)
        if message.first_page and keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        low = sum(1 for r in self.rows.values() if r.low)
        more = "+" if self.pager.more else ""
        self.sub_title = (
            f"{len(self.rows)}{more} products shown, {low} low on stock · {self.updated()}"
        )

        self._show_stock_detail()

    def _show_stock_detail(self) -> None:
        row = self.rows.get(self.selected_key(self.query_one("#stock-table", DataTable)) or "")
        text = "" if row is None else f"{row.title} · {row.slug} · {row.platform}"
        self.query_one("#stock-detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#stock-table")
    def _stock_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_stock_detail()
        table = self.query_one("#stock-table", DataTable)
        if self.pager.wants_more(table, event.cursor_row):
            self.fetch_stock(self.pager.cursor)

    def show_imports(self, message: PageLoaded) -> None:
        table = self.query_one("#imports-table", DataTable)
        if message.first_page:
            table.clear()
            self.imports = {}
        for b in message.rows:
            self.imports[str(b.id)] = b
            table.add_row(
                str(b.id),
                short(b.file_name, 20),
                short(b.product, 20),
                when(b.started_at),
                short(b.operator, 10),
                b.status,
                Text(str(b.read), justify="right"),
                Text(str(b.imported), justify="right"),
                Text(str(b.duplicate_in_file + b.duplicate_in_stock), justify="right"),
                Text(str(b.rejected), justify="right", style="red" if b.rejected else ""),
                key=str(b.id),
            )
        self.imports_pager.loaded(message.rows, message.rows[-1].id if message.rows else None)
        self._show_import_detail()

    @on(DataTable.RowHighlighted, "#imports-table")
    def _import_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_import_detail()
        table = self.query_one("#imports-table", DataTable)
        if self.imports_pager.wants_more(table, event.cursor_row):
            self.fetch_imports(self.imports_pager.cursor)

    def _show_import_detail(self) -> None:
        key = self.selected_key(self.query_one("#imports-table", DataTable))
        b = self.imports.get(key or "")
        if b is None:
            text = "No imports yet."
        else:
            text = (
                f"#{b.id} {b.file_name} into {b.product}: read {b.read}, imported {b.imported}, duplicate in "
                f"file {b.duplicate_in_file}, of stock {b.duplicate_in_stock}, rejected "
                f"{b.rejected}; by {b.operator or '?'} at {when(b.started_at)}"
            )
            if b.error:
                text += f"\nfailed: {b.error}"
            text += "".join(f"\n  line {line}: {reason}" for line, reason in b.rejections[:3])
            if b.rejected > 3:
                text += f"\n  … {b.rejected - 3} more rejected lines"
        self.query_one("#import-detail", Static).update(Text(text))

    def action_toggle_history(self) -> None:
        switcher = self.query_one("#inventory-views", ContentSwitcher)
        if switcher.current == "stock-view":
            switcher.current = "history-view"
            self.query_one("#imports-table", DataTable).focus()
        else:
            switcher.current = "stock-view"
            self.query_one("#stock-table", DataTable).focus()

    # -- threshold and revoking ------------------------------------------------------------

    def _need_product(self) -> ProductStockRow | None:
        switcher = self.query_one("#inventory-views", ContentSwitcher)
        slug = self.selected_key(self.query_one("#stock-table", DataTable))
        product = self.rows.get(slug or "")
        if product is None or switcher.current != "stock-view":
            self.notify("Select a product first.", severity="warning")
            return None
        return product

    def action_threshold(self) -> None:
        if (product := self._need_product()) is None:
            return

        def given(value: str | None) -> None:
            if value is not None:
                self.run_operator_action(
                    "Low-stock threshold", lambda: self._set_threshold(product, value)
                )

        self.app.push_screen(
            ValueScreen(
                f"Low-stock threshold of {product.title}",
                f"Now {product.threshold:,}. A whole number from 0 (never low) to "
                f"{ops.MAX_LOW_STOCK_THRESHOLD:,}.",
                value=str(product.threshold),
                check=ops.parse_low_stock_threshold,
            ),
            given,
        )

    def _set_threshold(self, product: ProductStockRow, value: str) -> str:
        done = ops.set_low_stock_threshold(product_id=product.id, threshold=value, actor=self.actor)
        threshold = done.low_stock_threshold
        return f"{product.title}: low-stock threshold {product.threshold:,} → {threshold:,}"

    def action_revoke_keys(self) -> None:
        if (product := self._need_product()) is None:
            return

        def given(request: RevokeKeys | None) -> None:
            if request is not None:
                self.run_operator_action("Revoke keys", lambda: self._revoke(product, request))

        self.app.push_screen(
            RevokeKeysScreen(
                f"Revoke available keys of {product.title}?",
                f"{product.available} available. The oldest are taken first; revoked "
                "keys are never sold.",
            ),
            given,
        )

    def _revoke(self, product: ProductStockRow, request: RevokeKeys) -> str:
        ids = ops.revoke_stock_keys(
            product_id=product.id,
            count=request.count,
            actor=self.actor,
            reason=request.reason,
            import_batch_id=request.import_batch_id,
        )
        return f"{len(ids)} key(s) of {product.slug} revoked"

    def action_focus_import(self) -> None:
        self.query_one("#import-path", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#stock-table", DataTable).focus()

    @on(Input.Submitted, "#import-path, #import-product")
    def start_import(self) -> None:
        if self.importing:
            self.notify("An import is already running.", severity="warning")
            return
        raw_path = self.query_one("#import-path", Input).value.strip()
        if not raw_path:
            self.notify("Type the path of a file of keys.", severity="warning")
            return
        slug = self.query_one("#import-product", Input).value.strip()
        if not slug:
            slug = self.selected_key(self.query_one("#stock-table", DataTable)) or ""
        if not slug:
            self.notify("Choose a product: select a row or type its slug.", severity="warning")
            return
        self.importing = True
        bar = self.query_one("#import-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self.query_one("#import-report", Static).update(f"Importing {raw_path} into {slug}…")
        self.run_import(Path(raw_path).expanduser(), slug)

    # not exclusive: an import is never cancelled for a newer one (``importing`` allows
    # one at a time), so what it did is always reported
    @work(thread=True, group="import")
    def run_import(self, path: Path, slug: str) -> None:
        def progress(done: int, total: int | None) -> None:
            self.post_message(ImportProgressed(done, total))

        try:
            report = import_keys(
                path=path, product_slug=slug, operator=self.operator, progress=progress
            )
        except DomainError as exc:
            self.post_message(ImportFailed(exc.message))
        else:
            self.post_message(ImportFinished(report))

    @on(ImportProgressed)
    def show_progress(self, message: ImportProgressed) -> None:
        self.query_one("#import-progress", ProgressBar).update(
            total=message.total, progress=message.done
        )

    @on(ImportFinished)
    def show_report(self, message: ImportFinished) -> None:
        self.importing = False
        bar = self.query_one("#import-progress", ProgressBar)
        bar.update(total=bar.total or 1, progress=bar.total or 1)
        text = describe_report(message.report)
        self.query_one("#import-report", Static).update(text)
        self.notify(text.splitlines()[0], title="Import finished")
        self.load()

    @on(ImportFailed)
    def show_failure(self, message: ImportFailed) -> None:
        self.importing = False
        # A total stops the bar (without one it animates as if still working).
        self.query_one("#import-progress", ProgressBar).update(total=1, progress=0)
        self.query_one("#import-report", Static).update(f"Nothing imported: {message.text}")
        self.notify(message.text, title="Import refused", severity="error")
