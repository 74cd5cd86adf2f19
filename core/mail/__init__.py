"""E-mail: :mod:`core.mail.transport` sends messages (SMTP or the ``var/outbox`` folder);
:mod:`core.mail.notices` builds what they say from Jinja2 templates, plain text and HTML
from one source, never with a key in them."""

from core.mail.notices import (
    AFTERCARE_TEMPLATES,
    NEVER_BY_MAIL,
    aftercare_notice,
    attention_notice,
    compose,
    delivery_notice,
    password_reset_notice,
    preorder_notice,
    render,
    sign_up_attempt_notice,
    verification_notice,
)
from core.mail.transport import (
    InvalidRecipient,
    Mailer,
    MailError,
    OutboxItem,
    OutboxMailer,
    SmtpMailer,
    SmtpTarget,
    check_address,
    get_mailer,
    list_outbox,
    parse_smtp_url,
    read_outbox_message,
    recipients_of,
)

__all__ = [
    "AFTERCARE_TEMPLATES",
    "NEVER_BY_MAIL",
    "InvalidRecipient",
    "MailError",
    "Mailer",
    "OutboxItem",
    "OutboxMailer",
    "SmtpMailer",
    "SmtpTarget",
    "aftercare_notice",
    "attention_notice",
    "check_address",
    "compose",
    "delivery_notice",
    "get_mailer",
    "list_outbox",
    "parse_smtp_url",
    "password_reset_notice",
    "preorder_notice",
    "read_outbox_message",
    "recipients_of",
    "render",
    "sign_up_attempt_notice",
    "verification_notice",
]
