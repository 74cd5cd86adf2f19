"""The one Huey instance, its storage chosen from ``QUEUE_URL``: Redis in production,
SQLite under ``var/`` in the embedded default.

Until :func:`configure` runs the instance is in immediate mode (tasks run in-process, in
memory) — what unit tests want. Every process that enqueues or consumes (``keyshop run``,
``keyshop worker``, the web app) calls :func:`configure` first.
"""

from __future__ import annotations

from pathlib import Path

from huey import Huey
from huey.storage import RedisStorage, SqliteStorage

from core.config import Settings, get_settings

huey = Huey("keyshop", immediate=True, results=False, utc=True)


def storage_for(settings: Settings) -> tuple[type, dict[str, object]]:
    url = settings.effective_queue_url
    if url.startswith(("redis://", "rediss://")):
        return RedisStorage, {"url": url}
    path = Path(url.split("sqlite:///", 1)[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStorage, {"filename": str(path), "timeout": 30}


def configure(settings: Settings | None = None, *, immediate: bool = False) -> Huey:
    """Point the queue at its real storage (or back to immediate mode)."""
    settings = settings or get_settings()
    if immediate:
        huey.immediate = True
        return huey
    storage_class, kwargs = storage_for(settings)
    huey.name = settings.queue_name
    huey.storage_class = storage_class
    huey.storage_kwargs = kwargs
    if huey.immediate:
        huey.immediate = False  # Huey's setter builds the storage from the fields above
    else:
        huey.storage = huey.create_storage()  # already live: point it at the new storage
    return huey
