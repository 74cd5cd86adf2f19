"""Schema management through Alembic (the only owner of the schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import core.models  # noqa: F401
from alembic import command
from core.db import get_engine

ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["configure_logging"] = False
    return cfg


def current_revision(engine: Engine | None = None) -> str | None:
    with (engine or get_engine()).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def migrate(engine: Engine | None = None) -> tuple[str | None, str | None]:
    """Upgrade to the newest revision; a no-op when already there. Returns (before, after)."""
    engine = engine or get_engine()
    before = current_revision(engine)
    if before != head_revision():
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return before, current_revision(engine)


def schema_differences(engine: Engine | None = None) -> list[Any]:
    """What autogenerate would change to make the database match the models (empty when
    the migrations describe the models exactly)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_keyshop_alembic_env_filters", ROOT / "alembic" / "filters.py"
    )
    assert spec and spec.loader
    filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(filters)
    with (engine or get_engine()).connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_object": filters.include_object_for(conn.dialect.name),
                "compare_type": True,
            },
        )
        return list(compare_metadata(ctx, SQLModel.metadata))
