"""Domain errors.

Every error the domain raises is a :class:`DomainError` with a stable ``code`` and
structured ``data``. Each edge translates it: the CLI prints one line and exits non-zero,
the web answers ``{"error": {"code", "message"}}``, the console shows a notification,
tasks retry or give up. Messages never contain key plaintext.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            **({"data": self.data} if self.data else {}),
        }


class ConfigError(DomainError):
    """A setting is missing or malformed. ``setting`` names it."""

    code = "config_error"

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"setting {setting} is invalid: {problem}", setting=setting)
        self.setting = setting


class DatabaseUnavailable(DomainError):
    """The database cannot be used just now (see ``core.db.is_database_unavailable``):
    what the edges answer instead of the driver's error. Nothing was written."""

    code = "database_unavailable"
    http_status = 503
    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "The shop cannot reach its database just now; try again in a moment.",
            retry_after=self.retry_after,
        )


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class UnknownProduct(NotFound):
    code = "unknown_product"


class InvalidInput(DomainError):
    code = "invalid_input"
    http_status = 422


class ImportFileError(InvalidInput):
    """The import file cannot be read at all (missing, binary, not CSV, no key column)."""

    code = "import_file_error"


class InsufficientStock(DomainError):
    """Not enough available keys. ``shortfalls`` maps product id to the missing count."""

    code = "insufficient_stock"
    http_status = 409


class InvalidKeyState(DomainError):
    code = "invalid_key_state"
    http_status = 409


class DuplicateKey(DomainError):
    code = "duplicate_key"
    http_status = 409


class KeyDecryptionError(DomainError):
    """The ciphertext failed authentication: wrong keyring, tampered, or moved to another row."""

    code = "key_decryption_failed"
    http_status = 500


class InvalidTransition(DomainError):
    """An order status change the status machine forbids."""

    code = "invalid_transition"
    http_status = 409

    def __init__(self, order_number: str, from_status: str, to_status: str) -> None:
        super().__init__(
            f"order {order_number} cannot go from {from_status} to {to_status}",
            order=order_number,
            from_status=from_status,
            to_status=to_status,
        )
        self.from_status = from_status
        self.to_status = to_status


class ConcurrentUpdate(DomainError):
    """Someone else changed the row first; reload and decide again."""

    code = "concurrent_update"
    http_status = 409


class DuplicateSlug(DomainError):
    """Another product already uses this slug (slugs are unique, they name the product
    page)."""

    code = "duplicate_slug"
    http_status = 409
