"""Inventory: products with their key counts (low stock highlighted), and importing
keys from a file with a progress bar and the import report. A file that cannot be
imported (missing, binary, empty) or an unknown product is reported and changes
nothing: the importer refuses those before writing anything."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Static

from console.messages import ImportFailed, ImportFinished, ImportProgressed, StockLoaded
from console.screens.base import ConsoleScreen
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.errors import DomainError
from core.services.console_queries import ProductStockRow, import_history, product_stock
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


class InventoryScreen(ConsoleScreen):
    NAME = "inventory"
    BINDINGS = [
        Binding("i", "focus_import", "Import keys", id="inventory.import"),
        Binding("escape", "focus_table", "Products", show=False, id="inventory.products"),
    ]
    PALETTE = [
        ("Import keys from a file", "focus_import", "a .txt or .csv file of keys"),
    ]

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)
        self.rows: dict[str, ProductStockRow] = {}
        self.importing = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="stock-table", cursor_type="row", zebra_stripes=True)
        with Vertical(id="import-panel"):
            with Horizontal(classes="import-fields"):
                yield Input(placeholder="file of keys (.txt or .csv)", id="import-path")
                yield Input(placeholder="product slug (default: selected)", id="import-product")
            yield ProgressBar(id="import-progress", show_eta=False)
            yield Static("", id="import-report", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#stock-table", DataTable)
        table.add_columns("Product", "Slug", "Avail", "Resv", "Deliv", "Low at")
        self.query_one("#import-panel").border_title = "Import keys (Enter in a field starts)"

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            rows = product_stock(session=session)
            imports = import_history(session=session, limit=20)
        self.post_message(StockLoaded(rows, imports))

    @on(StockLoaded)
    def show_stock(self, message: StockLoaded) -> None:
        table = self.query_one("#stock-table", DataTable)
        keep = self.selected_key(table)
        table.clear()
        self.rows = {row.slug: row for row in message.rows}
        for row in message.rows:
            style = "bold red" if row.low else ""
            table.add_row(
                Text(row.title + (" (LOW)" if row.low else ""), style=style),
                row.slug,
                Text(str(row.available), style=style, justify="right"),
                Text(str(row.reserved), justify="right"),
                Text(str(row.delivered), justify="right"),
                Text(str(row.threshold), justify="right"),
                key=row.slug,
            )
        if keep in self.rows:
            table.move_cursor(row=table.get_row_index(keep))
        low = sum(1 for r in message.rows if r.low)
        self.sub_title = f"{len(message.rows)} products, {low} low on stock"

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

    @work(thread=True, exclusive=True, group="import")
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
        self.query_one("#import-progress", ProgressBar).update(total=None, progress=0)
        self.query_one("#import-report", Static).update(f"Nothing imported: {message.text}")
        self.notify(message.text, title="Import refused", severity="error")
