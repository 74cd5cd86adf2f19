"""Account pages: sign up, sign in, password reset, order history."""

from __future__ import annotations

import reflex as rx

from core.i18n import gettext as _
from core.i18n import localised_path
from web.components.layout import callout_error, callout_info, page
from web.state.account import AccountState

WIDE_ONLY = rx.breakpoints(initial="none", sm="table-cell")  # hidden on phone-sized screens


def field(
    label: str, name: str, *, kind: str = "text", autocomplete: str = "", **props: object
) -> rx.Component:
    return rx.vstack(
        rx.el.label(rx.text(label, as_="span", size="2"), html_for=f"field-{name}"),
        rx.input(
            name=name,
            type=kind,
            id=f"field-{name}",
            auto_complete=autocomplete or None,
            width="100%",
            **props,
        ),
        spacing="1",
        width="100%",
    )


def form_card(*children: rx.Component, on_submit: object) -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(*children, spacing="3", width="100%"),
            on_submit=on_submit,
            reset_on_submit=False,
        ),
        width="100%",
        max_width="26em",
    )


def submit(label: str, button_id: str) -> rx.Component:
    return rx.button(
        rx.cond(AccountState.busy, rx.spinner(size="2")),
        label,
        type="submit",
        disabled=AccountState.busy,
        id=button_id,
        width="100%",
    )


def sign_in() -> rx.Component:
    return page(
        form_card(
            callout_error(AccountState.error),
            field(_("E-mail"), "email", kind="email", autocomplete="email", required=True),
            field(
                _("Password"),
                "password",
                kind="password",
                autocomplete="current-password",
                required=True,
            ),
            rx.cond(
                AccountState.need_code,
                field(
                    _("Authentication code (or a recovery code)"),
                    "code",
                    autocomplete="one-time-code",
                    max_length=64,
                ),
            ),
            submit(_("Sign in"), "signin-submit"),
            rx.cond(
                AccountState.oidc_name != "",
                rx.el.a(  # a full page load: the provider's sign-in is outside the app
                    rx.button(
                        AccountState.oidc_label,
                        variant="outline",
                        width="100%",
                        type="button",
                    ),
                    href="/api/oidc/login",
                    id="signin-oidc",
                    style={"width": "100%"},
                ),
            ),
            rx.hstack(
                rx.link(_("Create an account"), href=localised_path("/signup"), size="2"),
                rx.link(
                    _("Forgot your password?"), href=localised_path("/forgot-password"), size="2"
                ),
                justify="between",
                width="100%",
            ),
            on_submit=AccountState.sign_in,
        ),
        title=_("Sign in"),
    )


def sign_up() -> rx.Component:
    return page(
        form_card(
            callout_error(AccountState.error),
            callout_info(AccountState.info),
            field(_("Name (optional)"), "name", autocomplete="name"),
            field(_("E-mail"), "email", kind="email", autocomplete="email", required=True),
            field(
                _("Password (at least 12 characters)"),
                "password",
                kind="password",
                autocomplete="new-password",
                required=True,
                min_length=12,
            ),
            field(
                _("Password again"),
                "password_again",
                kind="password",
                autocomplete="new-password",
                required=True,
            ),
            submit(_("Create account"), "signup-submit"),
            rx.link(
                _("I already have an account"),
                href=localised_path("/signin"),
                size="2",
                underline="always",
            ),
            on_submit=AccountState.sign_up,
        ),
        title=_("Create your account"),
    )


def forgot_password() -> rx.Component:
    return page(
        form_card(
            callout_error(AccountState.error),
            callout_info(AccountState.info),
            rx.text(_("We will e-mail you a link to choose a new password."), size="2"),
            field(_("E-mail"), "email", kind="email", autocomplete="email", required=True),
            submit(_("Send the link"), "forgot-submit"),
            on_submit=AccountState.request_reset,
        ),
        title=_("Forgot your password?"),
    )


def reset_password() -> rx.Component:
    return page(
        form_card(
            callout_error(AccountState.error),
            field(
                _("New password (at least 12 characters)"),
                "password",
                kind="password",
                autocomplete="new-password",
                required=True,
                min_length=12,
            ),
            field(
                _("New password again"),
                "password_again",
                kind="password",
                autocomplete="new-password",
                required=True,
            ),
            submit(_("Set the new password"), "reset-submit"),
            on_submit=AccountState.reset_password,
        ),
        title=_("Choose a new password"),
    )


def account() -> rx.Component:
    return page(
        rx.hstack(
            rx.text(
                _("Signed in as"),
                " ",
                rx.text.strong(AccountState.customer_email),
                id="account-email",
            ),
            rx.button(_("Sign out"), variant="soft", on_click=AccountState.sign_out, id="signout"),
            justify="between",
            align="center",
            width="100%",
            wrap="wrap",
        ),
        rx.heading(_("Store credit"), as_="h2", size="5", margin_top="1em"),
        callout_error(AccountState.error),
        callout_info(AccountState.info),
        rx.text(
            _("Your store credit: "),
            rx.text.strong(AccountState.credit_balance),
            id="credit-balance",
        ),
        rx.text(
            _(
                "Refunds to store credit and redeemed gift cards land here; tick “Use my store "
                "credit” at checkout to spend it."
            ),
            size="1",
            color_scheme="gray",
        ),
        rx.form(
            rx.hstack(
                rx.input(
                    name="code",
                    placeholder=_("Gift card code"),
                    id="redeem-code",
                    max_length=64,
                    aria_label=_("Gift card code"),
                ),
                rx.button(_("Add to my credit"), type="submit", id="redeem"),
                wrap="wrap",
            ),
            on_submit=AccountState.redeem_gift_card,
            reset_on_submit=True,
        ),
        rx.cond(
            AccountState.credit_lines.length() > 0,  # type: ignore[attr-defined]
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(_("Date")),
                        rx.table.column_header_cell(_("What")),
                        rx.table.column_header_cell(_("Amount")),
                        rx.table.column_header_cell(_("Balance"), display=WIDE_ONLY),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        AccountState.credit_lines,
                        lambda ln: rx.table.row(
                            rx.table.cell(ln["date"]),
                            rx.table.cell(ln["what"]),
                            rx.table.cell(ln["amount"]),
                            rx.table.cell(ln["balance"], display=WIDE_ONLY),
                        ),
                    )
                ),
                id="credit-ledger",
                size="1",
            ),
        ),
        rx.text(
            _(
                "Invite friends with your link: when a friend's first order has been kept for "
                "the shop's hold period, you both get store credit."
            ),
            " ",
            rx.code(AccountState.referral_link, id="referral-link"),
            size="2",
        ),
        rx.foreach(
            AccountState.referrals,
            lambda r: rx.text(r["when"], " · ", r["who"], " · ", r["status"], size="1"),
        ),
        rx.heading(_("Your orders"), as_="h2", size="5", margin_top="1em"),
        rx.cond(
            AccountState.orders.length() > 0,  # type: ignore[attr-defined]
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(_("Order")),
                        rx.table.column_header_cell(_("Placed")),
                        rx.table.column_header_cell(_("Items"), display=WIDE_ONLY),
                        rx.table.column_header_cell(_("Total")),
                        rx.table.column_header_cell(_("Status")),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        AccountState.orders,
                        lambda o: rx.table.row(
                            rx.table.cell(rx.link(o["number"], href=o["href"])),
                            rx.table.cell(o["created"]),
                            rx.table.cell(o["items"], display=WIDE_ONLY),
                            rx.table.cell(o["total"]),
                            rx.table.cell(o["status"]),
                        ),
                    )
                ),
                id="order-history",
                width="100%",
            ),
            rx.text(_("No orders yet."), id="no-orders"),
        ),
        rx.heading(_("Where you are signed in"), as_="h2", size="5", margin_top="1em"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell(_("Browser")),
                    rx.table.column_header_cell(_("Address"), display=WIDE_ONLY),
                    rx.table.column_header_cell(_("Signed in"), display=WIDE_ONLY),
                    rx.table.column_header_cell(_("Last used")),
                    rx.table.column_header_cell(""),
                )
            ),
            rx.table.body(
                rx.foreach(
                    AccountState.sessions,
                    lambda s: rx.table.row(
                        rx.table.cell(
                            s["browser"],
                            rx.cond(
                                s["current"] != "", rx.badge(_("this browser"), margin_left="0.5em")
                            ),
                        ),
                        rx.table.cell(s["ip"], display=WIDE_ONLY),
                        rx.table.cell(s["started"], display=WIDE_ONLY),
                        rx.table.cell(s["last_used"]),
                        rx.table.cell(
                            rx.button(
                                _("Sign out"),
                                size="1",
                                variant="soft",
                                on_click=AccountState.end_session(s["id"]),
                            )
                        ),
                    ),
                )
            ),
            id="sessions",
            width="100%",
        ),
        rx.button(
            _("Sign out everywhere"),
            color_scheme="red",
            variant="soft",
            on_click=AccountState.sign_out_everywhere,
            id="signout-everywhere",
            margin_top="0.5em",
        ),
        rx.heading(_("Two-factor sign-in"), as_="h2", size="5", margin_top="1.5em"),
        rx.cond(
            AccountState.two_factor_on,
            rx.vstack(
                rx.text(
                    _(
                        "On: signing in and revealing keys ask for a code from your "
                        "authenticator app (or a recovery code)."
                    ),
                    size="2",
                    id="two-factor-on",
                ),
                rx.form(
                    rx.hstack(
                        rx.input(
                            name="code",
                            placeholder=_("Code"),
                            id="two-factor-off-code",
                            aria_label=_("Two-factor code"),
                        ),
                        rx.button(
                            _("Turn off"), type="submit", variant="soft", id="two-factor-off"
                        ),
                    ),
                    on_submit=AccountState.disable_two_factor,
                    reset_on_submit=True,
                ),
            ),
            rx.cond(
                AccountState.two_factor_setup,
                rx.form(
                    rx.text(
                        _(
                            "Scan the code with your authenticator app (or type the key "
                            "below), then enter the 6-digit code it shows."
                        ),
                        size="2",
                    ),
                    rx.hstack(
                        rx.input(
                            name="code",
                            placeholder="123456",
                            auto_complete="one-time-code",
                            id="two-factor-code",
                            aria_label=_("Code from your authenticator app"),
                        ),
                        rx.button(_("Turn on"), type="submit", id="two-factor-confirm"),
                    ),
                    on_submit=AccountState.confirm_two_factor,
                    reset_on_submit=True,
                ),
                rx.button(
                    _("Set up two-factor sign-in"),
                    variant="soft",
                    on_click=AccountState.start_two_factor,
                    id="two-factor-start",
                ),
            ),
        ),
        # filled by the browser code the handlers send (secrets never enter the state)
        rx.el.div(id="totp-qr"),
        rx.el.code(id="totp-secret", style={"wordBreak": "break-all"}),
        rx.el.pre(id="recovery-codes"),
        rx.heading(_("Delete your account"), as_="h2", size="5", margin_top="1.5em"),
        rx.text(
            _(
                "Your name, e-mail address, password and sessions are erased. Your orders are "
                "kept, as the law requires of a shop's sales records, and so is the audit trail."
            ),
            size="2",
        ),
        callout_error(AccountState.error),
        rx.form(
            rx.hstack(
                rx.input(
                    name="password",
                    type="password",
                    placeholder=_("Your password"),
                    auto_complete="current-password",
                    id="delete-password",
                    aria_label=_("Your password"),
                    required=True,
                ),
                rx.button(
                    _("Delete my account"),
                    color_scheme="red",
                    high_contrast=True,
                    type="submit",
                    id="delete-account",
                ),
                wrap="wrap",
            ),
            on_submit=AccountState.delete_account,
            reset_on_submit=True,
            margin_top="0.5em",
        ),
        title=_("Your account"),
    )
