"""Reflex configuration (see ../shared/docs/reflex-offline.md). The app is ``web/web.py``. Reflex's ``db_url`` stays unset on purpose: Alembic
owns the schema and the app reads ``DATABASE_URL`` through ``core.config``."""

import reflex as rx

config = rx.Config(
    app_name="web",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="violet", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
)
