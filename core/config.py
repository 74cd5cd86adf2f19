"""Settings: one ``Settings`` class, one module-level ``settings``.

The embedded default needs no settings at all: SQLite and a SQLite-backed queue under
``var/``, a keyring generated into ``var/`` on first use. Production is chosen with
``KEYSHOP_ENV=production`` and then refuses to start without PostgreSQL, Redis and a
keyring given by the environment.

Every setting is read from the environment (or a ``.env`` file) under the name shown in
``keyshop check-config``. A malformed value raises :class:`core.errors.ConfigError`
naming the setting; the CLI turns it into one line and exit status 2.
"""

from __future__ import annotations

import base64
import binascii
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.proxies import TrustedProxies

KEY_BYTES = 32


def parse_secret_key(value: str) -> bytes:
    """A 32-byte secret written as standard or URL-safe base64."""
    text = value.strip()
    try:
        raw = base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if ("-" in text or "_" in text) else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"must be {KEY_BYTES} bytes of base64, got {len(raw)} bytes")
    return raw


def parse_keyring(value: str) -> dict[int, bytes]:
    """``ID:BASE64[,ID:BASE64...]``; the highest id encrypts, every id decrypts."""
    entries: dict[int, bytes] = {}
    for n, part in enumerate(p.strip() for p in value.split(",")):
        if not part:
            continue
        kid_text, sep, secret = part.partition(":")
        if not sep or not kid_text.strip().isdigit():
            raise ValueError(f"entry {n + 1} must look like ID:BASE64 with a numeric ID")
        kid = int(kid_text)
        if not 1 <= kid <= 32767:
            raise ValueError(f"entry {n + 1}: key id must be between 1 and 32767")
        if kid in entries:
            raise ValueError(f"key id {kid} appears twice")
        try:
            entries[kid] = parse_secret_key(secret)
        except ValueError as exc:
            raise ValueError(f"entry {kid}: {exc}") from None
    if not entries:
        raise ValueError("is empty")
    return entries


def normalise_database_url(value: str) -> str:
    if value.startswith("postgres://"):  # the spelling Heroku and others hand out
        value = "postgresql://" + value.removeprefix("postgres://")
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "is not a database URL (expected sqlite:///path or postgresql://user@host/db)"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        driver = url.get_driver_name()
        if driver not in ("psycopg", "postgresql", "postgres", ""):
            raise ValueError(
                f"PostgreSQL driver {driver!r} is not supported; use postgresql+psycopg://"
            )
        if not url.database:
            raise ValueError("names no database")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"database {backend!r} is not supported (SQLite or PostgreSQL)")


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
    keyring: str | None = Field(None, validation_alias="KEYSHOP_KEYRING", repr=False)
    fingerprint_key: str | None = Field(
        None, validation_alias="KEYSHOP_FINGERPRINT_KEY", repr=False
    )
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
    codeswholesale_client_secret: str | None = Field(
        None, validation_alias="CODESWHOLESALE_CLIENT_SECRET", repr=False
    )
    codeswholesale_client_signature: str | None = Field(
        None, validation_alias="CODESWHOLESALE_CLIENT_SIGNATURE", repr=False
    )
    kinguin_base_url: str | None = Field(None, validation_alias="KINGUIN_BASE_URL")
    kinguin_api_key: str | None = Field(None, validation_alias="KINGUIN_API_KEY", repr=False)
    kinguin_webhook_secret: str | None = Field(
        None, validation_alias="KINGUIN_WEBHOOK_SECRET", repr=False
    )

    # -- public address (links in e-mails, webhook targets of the simulators) --
    public_url: str = Field("http://127.0.0.1:3000", validation_alias="KEYSHOP_PUBLIC_URL")
    # Reverse proxies whose X-Forwarded-For/Forwarded is believed (core.proxies): empty
    # (none, the TCP peer is the client), a hop count, or comma-separated networks.
    trusted_proxies: str = Field("", validation_alias="KEYSHOP_TRUSTED_PROXIES")

    # -- signing secret for links and tokens (embedded default: generated under var/) --
    secret_key: str | None = Field(None, validation_alias="KEYSHOP_SECRET_KEY", repr=False)

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
    oidc_client_secret: str | None = Field(
        None, validation_alias="KEYSHOP_OIDC_CLIENT_SECRET", repr=False
    )
    oidc_name: str = Field("Google", max_length=40, validation_alias="KEYSHOP_OIDC_NAME")

    # -- payments: Stripe Checkout when configured, else built-in test payments --
    # Stripe's API address: only changed to point at stripe-mock or a test server.
    stripe_api_base: str | None = Field(None, validation_alias="STRIPE_API_BASE")
    allow_test_payments: bool = Field(False, validation_alias="KEYSHOP_ALLOW_TEST_PAYMENTS")
    stripe_secret_key: str | None = Field(None, validation_alias="STRIPE_SECRET_KEY", repr=False)
    stripe_webhook_secret: str | None = Field(
        None, validation_alias="STRIPE_WEBHOOK_SECRET", repr=False
    )
    stripe_tolerance_seconds: int = Field(
        300, ge=1, le=3600, validation_alias="STRIPE_WEBHOOK_TOLERANCE"
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
    balance_warn_hours: float = Field(
        24.0, ge=0, le=24 * 90, validation_alias="KEYSHOP_BALANCE_WARN_HOURS"
    )
    balance_floor_minor: int = Field(10_000, ge=0, validation_alias="KEYSHOP_BALANCE_FLOOR_MINOR")
    unpaid_order_minutes: int = Field(
        60, ge=1, le=10080, validation_alias="KEYSHOP_UNPAID_ORDER_MINUTES"
    )
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

    # -- e-mail: SMTP in production, .eml files in var/outbox/ by default --
    smtp_url: str | None = Field(None, validation_alias="SMTP_URL", repr=False)
    mail_from: str = Field("keyshop <shop@keyshop.localhost>", validation_alias="KEYSHOP_MAIL_FROM")

    # -- blob store for image keys: a folder under var/ by default, or S3-compatible --
    blob_store: Literal["local", "s3"] = Field("local", validation_alias="KEYSHOP_BLOB_STORE")
    s3_bucket: str | None = Field(None, validation_alias="S3_BUCKET")
    s3_endpoint_url: str | None = Field(None, validation_alias="S3_ENDPOINT_URL")
    s3_region: str = Field("us-east-1", validation_alias="S3_REGION")
    blob_link_seconds: int = Field(
        900, ge=30, le=86400, validation_alias="KEYSHOP_BLOB_LINK_SECONDS"
    )

    @field_validator("stripe_secret_key")
    @classmethod
    def _stripe_key(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ValueError(
                "must be a Stripe secret key (sk_live_…, sk_test_… or a restricted rk_… key)"
            )
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _stripe_webhook_secret(cls, value: str | None) -> str | None:
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

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
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

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
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

    @field_validator("keyring")
    @classmethod
    def _keyring(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parse_keyring(value)
        return value

    @field_validator("fingerprint_key")
    @classmethod
    def _fingerprint_key(cls, value: str | None) -> str | None:
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
    def simulator_url(self) -> str:
        return f"http://{self.simulator_host}:{self.simulator_port}"

    def provider_credentials(self, name: str) -> dict[str, str | None]:
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
        """(setting, value with secrets masked, where it came from) for check-config."""
        from sqlalchemy.engine import make_url as _url

        def mask_url(url: str) -> str:
            if url.startswith(("redis", "rediss", "smtp")) and "@" in url:
                scheme, rest = url.split("://", 1)
                return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
            if url.startswith(("redis", "rediss", "smtp")):
                return url
            return _url(url).render_as_string(hide_password=True)

        def mask_keyring(value: str | None) -> str:
            if not value:
                return (
                    f"(generated file {self.keyring_file})"
                    if self.env == "embedded"
                    else "(missing)"
                )
            ids = sorted(parse_keyring(value))
            return f"*** key ids {ids}, active {ids[-1]}"

        given = self.model_fields_set

        def src(field: str, default_note: str = "default") -> str:
            return "environment" if field in given else default_note

        return [
            ("KEYSHOP_ENV", self.env, src("env")),
            ("KEYSHOP_VAR_DIR", str(self.var_dir), src("var_dir")),
            (
                "DATABASE_URL",
                mask_url(self.effective_database_url),
                src("database_url", "embedded default"),
            ),
            ("QUEUE_URL", mask_url(self.effective_queue_url), src("queue_url", "embedded default")),
            ("KEYSHOP_KEYRING", mask_keyring(self.keyring), src("keyring", "embedded default")),
            (
                "KEYSHOP_FINGERPRINT_KEY",
                "***" if self.fingerprint_key else f"(generated file {self.keyring_file})",
                src("fingerprint_key", "embedded default"),
            ),
            ("KEYSHOP_IMPORT_BATCH_SIZE", str(self.import_batch_size), src("import_batch_size")),
            ("KEYSHOP_MAX_KEY_LENGTH", str(self.max_key_length), src("max_key_length")),
            (
                "KEYSHOP_LOW_STOCK_THRESHOLD",
                str(self.default_low_stock_threshold),
                src("default_low_stock_threshold"),
            ),
            ("KEYSHOP_LOG_LEVEL", self.log_level, src("log_level")),
            ("KEYSHOP_PROVIDER_CHAIN", self.provider_chain, src("provider_chain")),
            (
                "KEYSHOP_PROVIDER_TIMEOUT",
                str(self.provider_timeout_seconds),
                src("provider_timeout_seconds"),
            ),
            ("KEYSHOP_MIN_MARGIN_PERCENT", str(self.min_margin_percent), src("min_margin_percent")),
            (
                "CODESWHOLESALE_BASE_URL",
                self.codeswholesale_base_url or f"{self.simulator_url}/codeswholesale (simulator)",
                src("codeswholesale_base_url", "embedded default"),
            ),
            (
                "CODESWHOLESALE_CLIENT_ID",
                self.codeswholesale_client_id or "(simulator)",
                src("codeswholesale_client_id", "embedded default"),
            ),
            (
                "CODESWHOLESALE_CLIENT_SECRET",
                "***" if self.codeswholesale_client_secret else "(simulator)",
                src("codeswholesale_client_secret", "embedded default"),
            ),
            (
                "CODESWHOLESALE_CLIENT_SIGNATURE",
                "***" if self.codeswholesale_client_signature else "(simulator)",
                src("codeswholesale_client_signature", "embedded default"),
            ),
            (
                "KINGUIN_BASE_URL",
                self.kinguin_base_url or f"{self.simulator_url}/kinguin (simulator)",
                src("kinguin_base_url", "embedded default"),
            ),
            (
                "KINGUIN_API_KEY",
                "***" if self.kinguin_api_key else "(simulator)",
                src("kinguin_api_key", "embedded default"),
            ),
            (
                "KINGUIN_WEBHOOK_SECRET",
                "***" if self.kinguin_webhook_secret else "(simulator)",
                src("kinguin_webhook_secret", "embedded default"),
            ),
            ("KEYSHOP_PUBLIC_URL", self.public_url, src("public_url")),
            (
                "KEYSHOP_OIDC_ISSUER",
                self.oidc_issuer or "(no sign-in with an OpenID Connect provider)",
                src("oidc_issuer"),
            ),
            ("KEYSHOP_OIDC_CLIENT_ID", self.oidc_client_id or "-", src("oidc_client_id")),
            (
                "KEYSHOP_OIDC_CLIENT_SECRET",
                "***" if self.oidc_client_secret else "-",
                src("oidc_client_secret"),
            ),
            ("KEYSHOP_OIDC_NAME", self.oidc_name, src("oidc_name")),
            (
                "KEYSHOP_TRUSTED_PROXIES",
                self.trusted_proxies or "(none: the TCP peer is the client)",
                src("trusted_proxies"),
            ),
            (
                "KEYSHOP_SECRET_KEY",
                "***" if self.secret_key else f"(generated file {self.var_dir / 'secret.key'})",
                src("secret_key", "embedded default"),
            ),
            (
                "STRIPE_SECRET_KEY",
                ("***" + self.stripe_secret_key[-4:])
                if self.stripe_secret_key
                else "(built-in test payments)",
                src("stripe_secret_key", "embedded default"),
            ),
            (
                "STRIPE_WEBHOOK_SECRET",
                "***" if self.stripe_webhook_secret else "(local test secret)",
                src("stripe_webhook_secret", "embedded default"),
            ),
            (
                "KEYSHOP_UNPAID_ORDER_MINUTES",
                str(self.unpaid_order_minutes),
                src("unpaid_order_minutes"),
            ),
            (
                "KEYSHOP_WEBHOOK_RETRY_SECONDS",
                str(self.webhook_retry_seconds),
                src("webhook_retry_seconds"),
            ),
            (
                "KEYSHOP_REJECTED_WEBHOOK_DAYS",
                str(self.rejected_webhook_days),
                src("rejected_webhook_days"),
            ),
            (
                "SMTP_URL",
                mask_url(self.smtp_url)
                if self.smtp_url
                else f"(e-mails written to {self.outbox_dir})",
                src("smtp_url", "embedded default"),
            ),
            ("KEYSHOP_MAIL_FROM", self.mail_from, src("mail_from")),
            (
                "KEYSHOP_BLOB_STORE",
                self.blob_store if self.blob_store == "s3" else f"local ({self.blob_dir})",
                src("blob_store", "embedded default"),
            ),
            ("S3_BUCKET", self.s3_bucket or "-", src("s3_bucket")),
            ("S3_ENDPOINT_URL", self.s3_endpoint_url or "-", src("s3_endpoint_url")),
        ]


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
    from core import db  # local import: db depends on config

    db.reset_engine()
    from core import crypto, signing

    crypto.reset_vault()
    signing.reset_secret()


def __getattr__(name: str) -> Any:
    # ``from core.config import settings`` reads the settings lazily, so importing
    # ``core`` never fails on a bad environment; the first use does, with a clear error.
    if name == "settings":
        return get_settings()
    raise AttributeError(name)
