"""Modal dialogs. Each returns a typed result through ``dismiss``: ``bool`` for a plain
confirmation, :class:`Reason` for actions that need one, :class:`ProviderChoice` for a
purchase, ``None`` when the operator backs out (Escape)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static

from core.errors import DomainError


@dataclass(frozen=True)
class Reason:
    """The operator confirmed an action and gave this reason."""

    text: str


@dataclass(frozen=True)
class ProviderChoice:
    """The operator chose to buy from ``provider`` (even below margin if asked)."""

    provider: str
    ignore_margin: bool


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no. Returns True only when the operator confirms."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
        Binding("y", "confirm", "Yes", id="modal.confirm"),
        Binding("n", "cancel", "No", show=False, id="modal.no"),
    ]

    def __init__(self, title: str, body: str = "", *, confirm_label: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class ReasonScreen(ModalScreen[Reason | None]):
    """Asks for a reason (required) before a destructive action."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, title: str, body: str = "", *, confirm_label: str = "Confirm") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            yield Input(placeholder="reason (required)", id="reason")
            yield Static("", id="reason-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted, "#reason")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        text = self.query_one("#reason", Input).value.strip()
        if not text:
            self.query_one("#reason-error", Static).update("A reason is required.")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(Reason(text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ProviderScreen(ModalScreen[ProviderChoice | None]):
    """Choose the provider to buy from; Enter on a provider confirms the purchase."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, order_number: str, providers: list[str]) -> None:
        super().__init__()
        self.order_number = order_number
        self.providers = providers

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Buy what {self.order_number} lacks from…", classes="dialog-title")
            yield OptionList(*self.providers, id="providers")
            yield Checkbox("Even below the minimum margin", id="ignore-margin")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Buy", variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        options = self.query_one("#providers", OptionList)
        options.highlighted = 0 if self.providers else None
        options.focus()

    @on(OptionList.OptionSelected, "#providers")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        index = self.query_one("#providers", OptionList).highlighted
        if index is None:
            return
        self.dismiss(
            ProviderChoice(
                provider=self.providers[index],
                ignore_margin=self.query_one("#ignore-margin", Checkbox).value,
            )
        )

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class RevealScreen(ModalScreen[None]):
    """Shows a revealed key code. The code lives only in this widget; closing the
    dialog drops it."""

    BINDINGS = [Binding("escape,enter", "close", "Close", id="modal.close")]

    def __init__(self, key_label: str, code: str) -> None:
        super().__init__()
        self.key_label = key_label
        self._code = code

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Key {self.key_label}", classes="dialog-title")
            yield Static(self._code, id="revealed-code", classes="revealed-code", markup=False)
            yield Static(
                "Recorded in the audit trail as an operator reveal; not the customer's.",
                classes="dialog-body",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self._code = ""
        self.dismiss(None)


class ValueScreen(ModalScreen[str | None]):
    """Asks for one value. ``check`` (the service's own parser) refuses a bad value in
    the dialog, with its message, so nothing has to be typed again; the service that
    receives the value checks it once more."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(
        self,
        title: str,
        body: str = "",
        *,
        value: str = "",
        confirm_label: str = "Save",
        check: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.value = value
        self.confirm_label = confirm_label
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            yield Input(value=self.value, id="value")
            yield Static("", id="value-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted, "#value")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        value = self.query_one("#value", Input).value
        if self.check is not None:
            try:
                self.check(value)
            except DomainError as exc:
                self.query_one("#value-error", Static).update(exc.message)
                self.query_one("#value", Input).focus()
                return
        self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class RevokeKeys:
    """Revoke ``count`` available keys (of import ``import_batch_id`` if given)."""

    count: int
    import_batch_id: int | None
    reason: str


class RevokeKeysScreen(ModalScreen[RevokeKeys | None]):
    """How many available keys to revoke, optionally only from one import, and why."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, title: str, body: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            yield Input(placeholder="how many keys", id="count")
            yield Input(placeholder="only from import # (optional)", id="batch")
            yield Input(placeholder="reason (required)", id="reason")
            yield Static("", id="revoke-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Revoke", variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def _refuse(self, text: str, field: str) -> None:
        self.query_one("#revoke-error", Static).update(text)
        self.query_one(f"#{field}", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        count = self.query_one("#count", Input).value.strip()
        batch = self.query_one("#batch", Input).value.strip().lstrip("#")
        reason = self.query_one("#reason", Input).value.strip()
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            self._refuse("How many keys: a whole number, 1 or more.", "count")
            return
        if batch and not (batch.isascii() and batch.isdigit()):
            self._refuse("Import: the number of an import, or empty.", "batch")
            return
        if not reason:
            self._refuse("A reason is required.", "reason")
            return
        self.dismiss(RevokeKeys(int(count), int(batch) if batch else None, reason))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[int | None]):
    """Choose one of ``options``; returns its index (Enter on it, or the button)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, title: str, options: list[str], *, confirm_label: str = "Choose") -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(*self.options, id="choices")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, variant="error", id="confirm")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        options = self.query_one("#choices", OptionList)
        options.highlighted = 0 if self.options else None
        options.focus()

    @on(OptionList.OptionSelected, "#choices")
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        index = self.query_one("#choices", OptionList).highlighted
        if index is not None:
            self.dismiss(index)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
