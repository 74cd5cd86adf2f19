"""Settings: one ``Settings`` class, one module-level ``settings``.

The embedded default needs no settings at all: SQLite and a SQLite-backed queue under
``var/``, a keyring generated into ``var/`` on first use. Production is chosen with
``KEYSHOP_ENV=production`` and then refuses to start without PostgreSQL, Redis and a
keyring given by the environment.

Every setting is read from the environment (or a ``.env`` file) under the name shown in
``keyshop check-config``. A malformed value raises :class:`core.errors.ConfigError`
naming the setting; the CLI turns it into one line and exit status 2.

Values that need parsing (secrets, the keyring, database URLs) are in
:mod:`core.config_values` and what ``check-config`` shows in :mod:`core.config_display`;
both are re-exported here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config_values import (
    KEY_BYTES,
    mask_url,
    normalise_database_url,
    parse_keyring,
    parse_secret_key,
    reveal,
)
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.proxies import TrustedProxies

__all__ = [
    "KEY_BYTES",
    "Settings",
    "get_settings",
    "load_settings",
    "mask_url",
    "normalise_database_url",
    "on_settings_change",
    "parse_keyring",
    "parse_secret_key",
    "reveal",
    "use_settings",
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
    )

    env: Literal["embedded", "production"] = Field("embedded", validation_alias="KEYSHOP_ENV")
    var_dir: Path = Field(Path("var"), validation_alias="KEYSHOP_VAR_DIR")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    queue_url: str | None = Field(None, validation_alias="QUEUE_URL")
    queue_name: str = Field(
        "keyshop", pattern=r"^[A-Za-z0-9_.-]{1,64}$", validation_alias="KEYSHOP_QUEUE_NAME"
    )
    keyring: SecretStr | None = Field(None, validation_alias="KEYSHOP_KEYRING")
    fingerprint_key: SecretStr | None = Field(None, validation_alias="KEYSHOP_FINGERPRINT_KEY")
    import_batch_size: int = Field(
        5000, ge=100, le=100_000, validation_alias="KEYSHOP_IMPORT_BATCH_SIZE"
    )
    max_key_length: int = Field(512, ge=8, le=65536, validation_alias="KEYSHOP_MAX_KEY_LENGTH")
    default_low_stock_threshold: int = Field(
        5, ge=0, validation_alias="KEYSHOP_LOW_STOCK_THRESHOLD"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="KEYSHOP_LOG_LEVEL"
    )
    #: ``json`` (one object per line, the production default) or ``text``.
    log_format: Literal["text", "json"] | None = Field(None, validation_alias="KEYSHOP_LOG_FORMAT")

    # -- wholesale providers (embedded default: the built-in simulators on loopback) --
    provider_chain: str = Field("codeswholesale,kinguin", validation_alias="KEYSHOP_PROVIDER_CHAIN")
    provider_timeout_seconds: float = Field(
        10.0, gt=0, le=120, validation_alias="KEYSHOP_PROVIDER_TIMEOUT"
    )
    min_margin_percent: float = Field(
        5.0, ge=-100, le=100, validation_alias="KEYSHOP_MIN_MARGIN_PERCENT"
    )
    simulator_host: str = Field("127.0.0.1", validation_alias="KEYSHOP_SIMULATOR_HOST")
    simulator_port: int = Field(8701, ge=1, le=65535, validation_alias="KEYSHOP_SIMULATOR_PORT")
    codeswholesale_base_url: str | None = Field(None, validation_alias="CODESWHOLESALE_BASE_URL")
    codeswholesale_client_id: str | None = Field(None, validation_alias="CODESWHOLESALE_CLIENT_ID")
    codeswholesale_client_secret: SecretStr | None = Field(
        None, validation_alias="CODESWHOLESALE_CLIENT_SECRET"
    )
    codeswholesale_client_signature: SecretStr | None = Field(
        None, validation_alias="CODESWHOLESALE_CLIENT_SIGNATURE"
    )
    kinguin_base_url: str | None = Field(None, validation_alias="KINGUIN_BASE_URL")
    kinguin_api_key: SecretStr | None = Field(None, validation_alias="KINGUIN_API_KEY")
    kinguin_webhook_secret: SecretStr | None = Field(
        None, validation_alias="KINGUIN_WEBHOOK_SECRET"
    )

    # -- public address (links in e-mails, webhook targets of the simulators) --
    public_url: str = Field("http://127.0.0.1:3000", validation_alias="KEYSHOP_PUBLIC_URL")
    # Reverse proxies whose X-Forwarded-For/Forwarded is believed (core.proxies): empty
    # (none, the TCP peer is the client), a hop count, or comma-separated networks.
    trusted_proxies: str = Field("", validation_alias="KEYSHOP_TRUSTED_PROXIES")

    # -- selling to consumers: VAT by buyer country, the seller on every receipt --
    # Rates override or extend core.services.vat.DEFAULT_RATES: "DE=19,FR=20,CH=8.1".
    vat_rates: str = Field("", validation_alias="KEYSHOP_VAT_RATES")
    seller_name: str = Field("keyshop demo seller", validation_alias="KEYSHOP_SELLER_NAME")
    seller_address: str = Field(
        "Example Street 1, 10115 Berlin, Germany", validation_alias="KEYSHOP_SELLER_ADDRESS"
    )
    seller_vat_id: str = Field("", validation_alias="KEYSHOP_SELLER_VAT_ID")

    # -- observability (core.metrics, core.tracing) --
    # a bearer token for /api/metrics; unset: only clients on loopback may scrape
    metrics_token: SecretStr | None = Field(None, validation_alias="KEYSHOP_METRICS_TOKEN")
    # where OpenTelemetry spans go (OTLP over HTTP, e.g. http://collector:4318); unset: off
    otlp_endpoint: str | None = Field(None, validation_alias="KEYSHOP_OTLP_ENDPOINT")

    # -- signing secret for links and tokens (embedded default: generated under var/) --
    secret_key: SecretStr | None = Field(None, validation_alias="KEYSHOP_SECRET_KEY")

    # -- customer accounts: sessions, password resets, password hashing --
    session_days: int = Field(30, ge=1, le=365, validation_alias="KEYSHOP_SESSION_DAYS")
    password_reset_minutes: int = Field(
        60, ge=5, le=1440, validation_alias="KEYSHOP_PASSWORD_RESET_MINUTES"
    )
    password_hashing: Literal["recommended", "fast"] = Field(
        "recommended", validation_alias="KEYSHOP_PASSWORD_HASHING"
    )
    # sign in with an OpenID Connect provider (core.services.oidc): all three or none
    oidc_issuer: str | None = Field(None, validation_alias="KEYSHOP_OIDC_ISSUER")
    oidc_client_id: str | None = Field(None, validation_alias="KEYSHOP_OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(
        None, validation_alias="KEYSHOP_OIDC_CLIENT_SECRET"
    )
    oidc_name: str = Field("Google", max_length=40, validation_alias="KEYSHOP_OIDC_NAME")

    # -- payments: Stripe Checkout when configured, else built-in test payments --
    # Stripe's API address: only changed to point at stripe-mock or a test server.
    stripe_api_base: str | None = Field(None, validation_alias="STRIPE_API_BASE")
    allow_test_payments: bool = Field(False, validation_alias="KEYSHOP_ALLOW_TEST_PAYMENTS")
    stripe_secret_key: SecretStr | None = Field(None, validation_alias="STRIPE_SECRET_KEY")
    stripe_webhook_secret: SecretStr | None = Field(None, validation_alias="STRIPE_WEBHOOK_SECRET")
    stripe_tolerance_seconds: int = Field(
        300, ge=1, le=3600, validation_alias="STRIPE_WEBHOOK_TOLERANCE"
    )
    # -- crypto payments through NOWPayments (core.providers.nowpayments): offered when
    # the API key is set; in the embedded default against the built-in simulator --
    nowpayments_api_key: SecretStr | None = Field(None, validation_alias="NOWPAYMENTS_API_KEY")
    nowpayments_ipn_secret: SecretStr | None = Field(
        None, validation_alias="NOWPAYMENTS_IPN_SECRET"
    )
    nowpayments_base_url: str | None = Field(None, validation_alias="NOWPAYMENTS_BASE_URL")
    #: The IPN status that marks an order paid: ``finished`` (the money reached the
    #: shop's wallet) or ``confirmed`` (enough blockchain confirmations, earlier).
    nowpayments_paid_status: Literal["finished", "confirmed"] = Field(
        "finished", validation_alias="NOWPAYMENTS_PAID_STATUS"
    )
    attention_after_minutes: int = Field(
        30, ge=1, le=10080, validation_alias="KEYSHOP_ATTENTION_AFTER_MINUTES"
    )
    reconcile_after_seconds: int = Field(
        180, ge=1, le=86400, validation_alias="KEYSHOP_RECONCILE_AFTER_SECONDS"
    )
    fulfilment_lease_seconds: int = Field(
        120, ge=1, le=3600, validation_alias="KEYSHOP_FULFILMENT_LEASE_SECONDS"
    )
    # How long a provider purchase whose outcome is unknown (and that the provider cannot
    # yet show it has or has not) waits before its order goes to an operator.
    unknown_purchase_seconds: int = Field(
        900, ge=0, le=7 * 86400, validation_alias="KEYSHOP_UNKNOWN_PURCHASE_SECONDS"
    )
    balance_warn_hours: float = Field(
        24.0, ge=0, le=24 * 90, validation_alias="KEYSHOP_BALANCE_WARN_HOURS"
    )
    balance_floor_minor: int = Field(10_000, ge=0, validation_alias="KEYSHOP_BALANCE_FLOOR_MINOR")
    unpaid_order_minutes: int = Field(
        60, ge=1, le=10080, validation_alias="KEYSHOP_UNPAID_ORDER_MINUTES"
    )
    #: Referral rewards (core.services.referrals): store credit for both customers, per
    #: currency (``EUR:5,USD:5``) or a percent of the first order (``10%``); empty: off.
    referral_reward: str = Field("", max_length=200, validation_alias="KEYSHOP_REFERRAL_REWARD")
    #: How long the referred customer's first order must stay paid and unrefunded.
    referral_hold_days: int = Field(14, ge=0, le=365, validation_alias="KEYSHOP_REFERRAL_HOLD_DAYS")
    webhook_max_bytes: int = Field(
        1_048_576, ge=1024, le=16_777_216, validation_alias="KEYSHOP_WEBHOOK_MAX_BYTES"
    )
    #: An authenticated webhook still unprocessed this long is queued again by
    #: reconciliation (its first hand-over to the queue may have been lost).
    webhook_retry_seconds: int = Field(
        60, ge=1, le=86400, validation_alias="KEYSHOP_WEBHOOK_RETRY_SECONDS"
    )
    #: Rejected (unauthenticated) deliveries are deleted after this many days.
    rejected_webhook_days: int = Field(
        30, ge=1, le=3650, validation_alias="KEYSHOP_REJECTED_WEBHOOK_DAYS"
    )

    # -- workers: heartbeat and giving up on a queue that is gone --
    worker_stale_seconds: int = Field(
        60, ge=4, le=3600, validation_alias="KEYSHOP_WORKER_STALE_SECONDS"
    )
    queue_down_exit_seconds: int = Field(
        60, ge=1, le=3600, validation_alias="KEYSHOP_QUEUE_DOWN_EXIT_SECONDS"
    )

    # -- e-mail: SMTP in production, .eml files in var/outbox/ by default --
    smtp_url: SecretStr | None = Field(None, validation_alias="SMTP_URL")
    mail_from: str = Field("keyshop <shop@keyshop.localhost>", validation_alias="KEYSHOP_MAIL_FROM")

    # -- blob store for image keys: a folder under var/ by default, or S3-compatible --
    blob_store: Literal["local", "s3"] = Field("local", validation_alias="KEYSHOP_BLOB_STORE")
    s3_bucket: str | None = Field(None, validation_alias="S3_BUCKET")
    s3_endpoint_url: str | None = Field(None, validation_alias="S3_ENDPOINT_URL")
    s3_region: str = Field("us-east-1", validation_alias="S3_REGION")
    blob_link_seconds: int = Field(
        900, ge=30, le=86400, validation_alias="KEYSHOP_BLOB_LINK_SECONDS"
    )

    @field_validator(
        "codeswholesale_client_secret",
        "codeswholesale_client_signature",
        "kinguin_api_key",
        "kinguin_webhook_secret",
        "oidc_client_secret",
        "nowpayments_api_key",
        "nowpayments_ipn_secret",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value in (None, "") else value

    @field_validator("stripe_secret_key", mode="before")
    @classmethod
    def _stripe_key(cls, value: str | None) -> str | None:
        value = reveal(value)
        if value in (None, ""):
            return None
        if not value.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ValueError(
                "must be a Stripe secret key (sk_live_…, sk_test_… or a restricted rk_… key)"
            )
        return value

    @field_validator("stripe_webhook_secret", mode="before")
    @classmethod
    def _stripe_webhook_secret(cls, value: str | None) -> str | None:
        value = reveal(value)
        if value in (None, ""):
            return None
        if not value.startswith("whsec_"):
            raise ValueError("must be a Stripe webhook signing secret (whsec_…)")
        return value

    @property
    def test_payments(self) -> bool:
        """The built-in test payments run when Stripe is not configured (in production only
        with ``KEYSHOP_ALLOW_TEST_PAYMENTS=true``, for a staging shop)."""
        return not self.stripe_secret_key

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        value = reveal(value)
        if value in (None, ""):
            return None
        if len(value) < 32:
            raise ValueError("must be at least 32 characters (use `keyshop keys new-secret`)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str | None) -> str:
        from core.proxies import parse_trusted_proxies

        parse_trusted_proxies(value)
        return (value or "").strip()

    @property
    def proxies(self) -> TrustedProxies:
        from core.proxies import parse_trusted_proxies

        return parse_trusted_proxies(self.trusted_proxies)

    @field_validator("password_hashing")
    @classmethod
    def _password_hashing(cls, value: str, info: ValidationInfo) -> str:
        if value == "fast" and info.data.get("env") == "production":
            raise ValueError("fast (a test-only parameter set) is refused in production")
        return value

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        value = reveal(value)
        if value in (None, ""):
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError(
                "must be smtp://[user:pass@]host[:port], smtp+starttls://… or smtps://…"
            )
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise ValueError("has a bad port") from None
        return value

    @field_validator("provider_chain")
    @classmethod
    def _provider_chain(cls, value: str) -> str:
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in ("codeswholesale", "kinguin")]
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r} (codeswholesale, kinguin)")
        if len(set(names)) != len(names):
            raise ValueError("names a provider twice")
        return ",".join(names)

    @field_validator(
        "codeswholesale_base_url",
        "kinguin_base_url",
        "public_url",
        "stripe_api_base",
        "oidc_issuer",
        "nowpayments_base_url",
        "otlp_endpoint",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if (
            not value.startswith(("http://", "https://"))
            or "://" not in value
            or not value.split("://", 1)[1]
        ):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_database_url(value)

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in ("redis", "rediss", "sqlite"):
            raise ValueError("must be redis://host:port/db, rediss://… or sqlite:///path")
        return value

    @field_validator("keyring", mode="before")
    @classmethod
    def _keyring(cls, value: str | None) -> str | None:
        value = reveal(value)
        if value in (None, ""):
            return None
        parse_keyring(value)
        return value

    @field_validator("fingerprint_key", mode="before")
    @classmethod
    def _fingerprint_key(cls, value: str | None) -> str | None:
        value = reveal(value)
        if value in (None, ""):
            return None
        parse_secret_key(value)
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        given = [bool(self.oidc_issuer), bool(self.oidc_client_id), bool(self.oidc_client_secret)]
        if any(given) and not all(given):
            missing = [
                name
                for name, ok in zip(
                    ("KEYSHOP_OIDC_ISSUER", "KEYSHOP_OIDC_CLIENT_ID", "KEYSHOP_OIDC_CLIENT_SECRET"),
                    given,
                    strict=True,
                )
                if not ok
            ]
            raise ValueError(f"{missing[0]}: required with the other KEYSHOP_OIDC_ settings")
        return self

    @model_validator(mode="after")
    def _nowpayments_complete(self) -> Settings:
        # An API key without the IPN secret would take payments it can never confirm.
        if bool(self.nowpayments_api_key) != bool(self.nowpayments_ipn_secret):
            raise ValueError(
                "NOWPAYMENTS_IPN_SECRET: NOWPAYMENTS_API_KEY and NOWPAYMENTS_IPN_SECRET go together"
            )
        return self

    @property
    def crypto_payments(self) -> bool:
        """Crypto payments are offered: NOWPayments is configured, or the shop runs its
        built-in test payments (then against the NOWPayments simulator)."""
        return bool(self.nowpayments_api_key) or self.test_payments

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @model_validator(mode="after")
    def _production_needs(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, val in (
                    ("DATABASE_URL", self.database_url),
                    ("QUEUE_URL", self.queue_url),
                    ("KEYSHOP_KEYRING", self.keyring),
                    ("KEYSHOP_FINGERPRINT_KEY", self.fingerprint_key),
                )
                if not val
            ]
            if missing:
                raise ValueError(f"{missing[0]}: required when KEYSHOP_ENV=production")
            if not self.effective_database_url.startswith("postgresql"):
                raise ValueError("DATABASE_URL: production runs on PostgreSQL")
            if not self.secret_key:
                raise ValueError("KEYSHOP_SECRET_KEY: required when KEYSHOP_ENV=production")
            if not self.stripe_secret_key and not self.allow_test_payments:
                # Without Stripe anyone could "pay" with the test payment page: a live shop
                # would hand out keys for free.
                raise ValueError(
                    "STRIPE_SECRET_KEY: required when KEYSHOP_ENV=production "
                    "(a staging shop that must never sell may set KEYSHOP_ALLOW_TEST_PAYMENTS=true)"
                )
            if bool(self.stripe_secret_key) != bool(self.stripe_webhook_secret):
                raise ValueError(
                    "STRIPE_WEBHOOK_SECRET: STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET go together"
                )
            if self.blob_store == "s3" and not self.s3_bucket:
                raise ValueError("S3_BUCKET: required when KEYSHOP_BLOB_STORE=s3")
            for name in self.providers:
                for setting, val in self.provider_credentials(name).items():
                    if not val:
                        raise ValueError(
                            f"{setting}: required when KEYSHOP_ENV=production and {name} is in KEYSHOP_PROVIDER_CHAIN"
                        )
        return self

    # -- providers ------------------------------------------------------------------

    @property
    def providers(self) -> list[str]:
        return [n for n in self.provider_chain.split(",") if n]

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker writes its heartbeat (and so probes its queue): often enough
        that a live worker never looks stale and a lost queue is noticed well within
        ``queue_down_exit_seconds``."""
        return max(0.5, min(10.0, self.worker_stale_seconds / 4, self.queue_down_exit_seconds / 4))

    @property
    def effective_log_format(self) -> str:
        """JSON lines in production, the plain format elsewhere, unless set."""
        return self.log_format or ("json" if self.env == "production" else "text")

    @property
    def simulator_url(self) -> str:
        return f"http://{self.simulator_host}:{self.simulator_port}"

    def provider_credentials(self, name: str) -> dict[str, str | SecretStr | None]:
        if name == "codeswholesale":
            return {
                "CODESWHOLESALE_BASE_URL": self.codeswholesale_base_url,
                "CODESWHOLESALE_CLIENT_ID": self.codeswholesale_client_id,
                "CODESWHOLESALE_CLIENT_SECRET": self.codeswholesale_client_secret,
                "CODESWHOLESALE_CLIENT_SIGNATURE": self.codeswholesale_client_signature,
            }
        return {
            "KINGUIN_BASE_URL": self.kinguin_base_url,
            "KINGUIN_API_KEY": self.kinguin_api_key,
            "KINGUIN_WEBHOOK_SECRET": self.kinguin_webhook_secret,
        }

    # -- derived values -----------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'keyshop.db').as_posix()}"

    @property
    def effective_queue_url(self) -> str:
        return self.queue_url or f"sqlite:///{(self.var_dir / 'queue.db').as_posix()}"

    @property
    def keyring_file(self) -> Path:
        return self.var_dir / "keyring.json"

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @property
    def blob_dir(self) -> Path:
        return self.var_dir / "blobs"

    @property
    def secret_key_file(self) -> Path:
        return self.var_dir / "secret.key"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith("postgresql")

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, value with secrets masked, where it came from) for check-config:
        every field, generated from the model (:mod:`core.config_display`)."""
        from core.config_display import describe

        return describe(self)


_ALIASES = {name: (f.validation_alias or name).upper() for name, f in Settings.model_fields.items()}  # type: ignore[union-attr]


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (plus overrides), or raise ConfigError naming
    the first bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if loc:
            name = str(loc[0])
            return_name = _ALIASES.get(name, name.upper())
            raise ConfigError(return_name, msg) from None
        # model-level validator: message starts with the setting name
        name, _, problem = msg.partition(": ")
        raise ConfigError(name, problem or msg) from None


@functools.cache
def _cached() -> Settings:
    return load_settings()


_override: Settings | None = None


def get_settings() -> Settings:
    return _override if _override is not None else _cached()


def use_settings(new: Settings | None) -> None:
    """Replace the settings in force (CLI start-up and tests). ``None`` goes back to the
    environment."""
    global _override
    _override = new
    _cached.cache_clear()
    for reset in _on_change:
        reset()


#: What modules that cache something built from the settings (the engine, the vault,
#: the signing secret) registered to drop when the settings change. config imports none
#: of them: a module not imported has nothing cached.
_on_change: list[Callable[[], None]] = []


def on_settings_change(reset: Callable[[], None]) -> Callable[[], None]:
    """Register ``reset`` to run whenever :func:`use_settings` replaces the settings."""
    if reset not in _on_change:
        _on_change.append(reset)
    return reset


def __getattr__(name: str) -> Any:
    # ``from core.config import settings`` reads the settings lazily, so importing
    # ``core`` never fails on a bad environment; the first use does, with a clear error.
    if name == "settings":
        return get_settings()
    raise AttributeError(name)
