"""What ``keyshop check-config`` shows for each setting: generated from the settings
model, secrets masked, and for a few settings what the embedded default does when they
are unset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from core.config_values import mask_url, parse_keyring, reveal

if TYPE_CHECKING:
    from core.config import Settings


def _keyring_shown(s: Settings) -> str:
    value = reveal(s.keyring)
    if not value:
        return f"(generated file {s.keyring_file})" if s.env == "embedded" else "(missing)"
    ids = sorted(parse_keyring(value))
    return f"*** key ids {ids}, active {ids[-1]}"


#: Settings whose value is shown differently from plain ``str(value)`` / ``***``: what
#: the embedded default does when they are unset, or a masked form.
_DESCRIBE: dict[str, Any] = {
    "database_url": lambda s: mask_url(s.effective_database_url),
    "queue_url": lambda s: mask_url(s.effective_queue_url),
    "keyring": _keyring_shown,
    "fingerprint_key": lambda s: (
        "***" if s.fingerprint_key else f"(generated file {s.keyring_file})"
    ),
    "codeswholesale_base_url": lambda s: (
        s.codeswholesale_base_url or f"{s.simulator_url}/codeswholesale (simulator)"
    ),
    "codeswholesale_client_id": lambda s: s.codeswholesale_client_id or "(simulator)",
    "codeswholesale_client_secret": lambda s: (
        "***" if s.codeswholesale_client_secret else "(simulator)"
    ),
    "codeswholesale_client_signature": lambda s: (
        "***" if s.codeswholesale_client_signature else "(simulator)"
    ),
    "kinguin_base_url": lambda s: s.kinguin_base_url or f"{s.simulator_url}/kinguin (simulator)",
    "kinguin_api_key": lambda s: "***" if s.kinguin_api_key else "(simulator)",
    "kinguin_webhook_secret": lambda s: "***" if s.kinguin_webhook_secret else "(simulator)",
    "secret_key": lambda s: "***" if s.secret_key else f"(generated file {s.secret_key_file})",
    "stripe_secret_key": lambda s: (
        "***" + (reveal(s.stripe_secret_key) or "")[-4:]
        if s.stripe_secret_key
        else "(built-in test payments)"
    ),
    "stripe_webhook_secret": lambda s: "***" if s.stripe_webhook_secret else "(local test secret)",
    "stripe_api_base": lambda s: s.stripe_api_base or "(Stripe's own API)",
    "nowpayments_api_key": lambda s: (
        "***" if s.nowpayments_api_key else "(simulator)" if s.test_payments else "(crypto off)"
    ),
    "nowpayments_ipn_secret": lambda s: (
        "***" if s.nowpayments_ipn_secret else "(simulator)" if s.test_payments else "(crypto off)"
    ),
    "nowpayments_base_url": lambda s: (
        s.nowpayments_base_url
        or (
            "https://api.nowpayments.io"
            if s.nowpayments_api_key
            else f"{s.simulator_url}/nowpayments (simulator)"
        )
    ),
    "smtp_url": lambda s: (
        mask_url(reveal(s.smtp_url) or "") if s.smtp_url else f"(e-mails written to {s.outbox_dir})"
    ),
    "log_format": lambda s: s.effective_log_format,
    "oidc_issuer": lambda s: s.oidc_issuer or "(no sign-in with an OpenID Connect provider)",
    "blob_store": lambda s: s.blob_store if s.blob_store == "s3" else f"local ({s.blob_dir})",
}


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(setting, value with secrets masked, where it came from) for check-config: every
    field of the model, in declaration order. A :class:`~pydantic.SecretStr` shows as
    ``***``; a few settings show what the embedded default does instead (``_DESCRIBE``)."""
    given = settings.model_fields_set
    rows = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        special = _DESCRIBE.get(name)
        if special is not None:
            shown = special(settings)
        elif isinstance(value, SecretStr):
            shown = "***"
        elif value is None:
            shown = "-"
        else:
            shown = str(value)
        rows.append(
            (str(field.validation_alias), shown, "environment" if name in given else "default")
        )
    return rows
