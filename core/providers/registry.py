"""Provider clients built from the settings.

In the embedded default (no ``CODESWHOLESALE_BASE_URL`` / ``KINGUIN_BASE_URL``) each
provider points at the built-in simulator on loopback (``keyshop simulate-providers``),
with the simulator's well-known credentials below. The simulator imports these
constants from here (``core`` never imports ``keyshop``). They protect nothing: the
simulator only listens on loopback and sells invented keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.config import reveal
from core.errors import ConfigError
from core.providers.base import ProviderClient
from core.providers.codeswholesale import CodesWholesaleClient
from core.providers.kinguin import KinguinClient

if TYPE_CHECKING:
    from core.config import Settings

SIMULATOR_CODESWHOLESALE_CLIENT_ID = "keyshop-simulator-client"
SIMULATOR_CODESWHOLESALE_CLIENT_SECRET = "keyshop-simulator-secret"  # noqa: S105 (simulator only)
SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE = "keyshop-simulator-signature"
SIMULATOR_KINGUIN_API_KEY = "keyshop-simulator-kinguin-api-key"
SIMULATOR_KINGUIN_WEBHOOK_SECRET = "keyshop-simulator-kinguin-webhook-secret"  # noqa: S105 (simulator)

SIMULATOR_PATHS = {"codeswholesale": "/codeswholesale", "kinguin": "/kinguin"}


def uses_simulator(settings: Settings, name: str) -> bool:
    """True when ``name`` talks to the built-in simulator (no base URL configured)."""
    if name == "codeswholesale":
        return not settings.codeswholesale_base_url
    if name == "kinguin":
        return not settings.kinguin_base_url
    raise ConfigError("KEYSHOP_PROVIDER_CHAIN", f"unknown provider {name!r}")


def _require(setting: str, value: str | None) -> str:
    if not value:
        raise ConfigError(setting, "required when the provider's base URL is set")
    return value


def build_client(settings: Settings, name: str) -> ProviderClient:
    timeout = settings.provider_timeout_seconds
    if name == "codeswholesale":
        if uses_simulator(settings, name):
            return CodesWholesaleClient(
                settings.simulator_url + SIMULATOR_PATHS[name],
                SIMULATOR_CODESWHOLESALE_CLIENT_ID,
                SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
                SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
                timeout,
            )
        return CodesWholesaleClient(
            _require("CODESWHOLESALE_BASE_URL", settings.codeswholesale_base_url),
            _require("CODESWHOLESALE_CLIENT_ID", settings.codeswholesale_client_id),
            _require("CODESWHOLESALE_CLIENT_SECRET", reveal(settings.codeswholesale_client_secret)),
            _require(
                "CODESWHOLESALE_CLIENT_SIGNATURE", reveal(settings.codeswholesale_client_signature)
            ),
            timeout,
        )
    if name == "kinguin":
        if uses_simulator(settings, name):
            return KinguinClient(
                settings.simulator_url + SIMULATOR_PATHS[name], SIMULATOR_KINGUIN_API_KEY, timeout
            )
        return KinguinClient(
            _require("KINGUIN_BASE_URL", settings.kinguin_base_url),
            _require("KINGUIN_API_KEY", reveal(settings.kinguin_api_key)),
            timeout,
        )
    raise ConfigError("KEYSHOP_PROVIDER_CHAIN", f"unknown provider {name!r}")


def build_clients(settings: Settings) -> dict[str, ProviderClient]:
    """One client per provider in ``settings.providers``, in chain order."""
    return {name: build_client(settings, name) for name in settings.providers}


def codeswholesale_postback_credentials(settings: Settings) -> tuple[str, str]:
    """(client id, client signature) that CodesWholesale postbacks must hash to."""
    if uses_simulator(settings, "codeswholesale"):
        return SIMULATOR_CODESWHOLESALE_CLIENT_ID, SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE
    return (
        _require("CODESWHOLESALE_CLIENT_ID", settings.codeswholesale_client_id),
        _require(
            "CODESWHOLESALE_CLIENT_SIGNATURE", reveal(settings.codeswholesale_client_signature)
        ),
    )


def kinguin_webhook_secret(settings: Settings) -> str | None:
    """The ``X-Event-Secret`` Kinguin webhooks must carry: the configured one, or the
    simulator's when Kinguin is simulated and none is configured."""
    if settings.kinguin_webhook_secret:
        return reveal(settings.kinguin_webhook_secret)
    return SIMULATOR_KINGUIN_WEBHOOK_SECRET if uses_simulator(settings, "kinguin") else None
