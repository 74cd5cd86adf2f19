"""Reflex configuration (see ../shared/docs/reflex-offline.md). The app is ``web/web.py``. Reflex's ``db_url`` stays unset on purpose: Alembic
owns the schema and the app reads ``DATABASE_URL`` through ``core.config``."""

from urllib.parse import urlsplit

import reflex as rx


def _shop_origin() -> list[str]:
    """CORS and the websocket accept only the shop's own origin (KEYSHOP_PUBLIC_URL),
    never ``*``: Starlette's CORS middleware reflects any origin with credentials when
    told ``*`` (web/api/security.py has the rest of the rules)."""
    try:
        from core.config import get_settings

        url = get_settings().public_url
    except Exception:  # noqa: BLE001 (a bad setting is reported by keyshop's own start-up)
        url = "http://127.0.0.1:3000"
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"]


config = rx.Config(
    app_name="web",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="violet", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
    cors_allowed_origins=_shop_origin(),
)
