"""Alembic environment: ``SQLModel.metadata`` and the URL from keyshop's settings.
What autogenerate leaves out is in ``filters.py`` beside this file."""

from __future__ import annotations

import importlib.util
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

import core.models  # noqa: F401  (registers every table)
from alembic import context
from core.db import get_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata

_spec = importlib.util.spec_from_file_location(
    "_keyshop_alembic_filters", Path(__file__).with_name("filters.py")
)
assert _spec and _spec.loader
_filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_filters)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    from core.models.base import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and obj.__class__.__module__.startswith("sqlmodel"):
        autogen_context.imports.add("import sqlmodel")
    return False


def run_migrations_offline() -> None:
    raise SystemExit("offline migrations are not supported; run `keyshop migrate`")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with get_engine().connect() as conn:
        _run(conn)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_filters.include_object_for(connection.dialect.name),
        render_item=render_item,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
