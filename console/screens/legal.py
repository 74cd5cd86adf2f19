"""The legal pages (terms, privacy, imprint, withdrawal): see when each was last written
and edit its Markdown in place. Saving goes through the same operator service as
``keyshop pages set`` (audited as ``legal.update``); an empty page is refused in the
editor, which stays open with the text as typed."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static, TextArea

from console.messages import RowsLoaded
from console.screens.base import ConsoleScreen
from console.widgets.formatting import when
from console.widgets.navbar import NavBar
from core.db import session_scope
from core.errors import InvalidInput
from core.services.legal import NOT_WRITTEN, check_page_text, get_page, list_pages
from core.services.operator.legal import save_legal_page


@dataclass(frozen=True)
class PageEdit:
    title: str
    body: str


class LegalPageScreen(ModalScreen[PageEdit | None]):
    """The page's title and Markdown, editable. Ctrl+S or Save; Escape cancels."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
        Binding("ctrl+s", "confirm", "Save", id="modal.save"),
    ]

    def __init__(self, slug: str, title: str, body: str) -> None:
        super().__init__()
        self.slug, self.page_title, self.body = slug, title, body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog legal-form"):
            yield Label(f"Edit the {self.slug} page (Markdown)", classes="dialog-title")
            yield Input(value=self.page_title, id="legal-title")
            yield TextArea(self.body, id="legal-body", language="markdown")
            yield Static("", id="legal-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#legal-body", TextArea).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        body = self.query_one("#legal-body", TextArea).text
        try:
            check_page_text(body)
        except InvalidInput as exc:
            self.query_one("#legal-error", Static).update(exc.message)
            return
        self.dismiss(PageEdit(self.query_one("#legal-title", Input).value, body))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class LegalScreen(ConsoleScreen):
    NAME = "legal"
    PALETTE = [("Edit a legal page", "edit", "Write the selected page's Markdown")]
    BINDINGS = [Binding("e,enter", "edit", "Edit", id="legal.edit")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.NAME)
        yield DataTable(id="legal-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#legal-table", DataTable)
        table.add_columns("Page", "Title", "Last written", "Characters")

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        with session_scope(write=False) as session:
            pages = list_pages(session=session)
        rows = [
            (
                p.slug,
                p.title,
                when(p.updated_at) if p.updated_at else "not written yet",
                "" if p.updated_at is None else f"{len(p.body):,}",
            )
            for p in pages
        ]
        self.post_message(RowsLoaded(rows))

    @on(RowsLoaded)
    def show_rows(self, message: RowsLoaded) -> None:
        table = self.query_one("#legal-table", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(*row, key=row[0])
        self.sub_title = f"{len(message.rows)} legal pages · {self.updated()}"

    def action_edit(self) -> None:
        slug = self.selected_key(self.query_one("#legal-table", DataTable))
        if slug is not None:
            self.open_editor(slug)

    @work(thread=True, group="load")
    def open_editor(self, slug: str) -> None:
        with session_scope(write=False) as session:
            page = get_page(session=session, slug=slug)
        body = "" if page.updated_at is None and page.body == NOT_WRITTEN else page.body
        self.app.call_from_thread(self._edit, slug, page.title, body)

    def _edit(self, slug: str, title: str, body: str) -> None:
        def saved(edit: PageEdit | None) -> None:
            if edit is None:
                return
            self.run_operator_action(
                "Save legal page",
                lambda: _save(slug, edit, self.operator),
            )

        self.app.push_screen(LegalPageScreen(slug, title, body), saved)


def _save(slug: str, edit: PageEdit, operator: str) -> str:
    page = save_legal_page(slug=slug, body=edit.body, title=edit.title, operator=operator)
    return f"{page.title} saved: {len(page.body):,} characters"
