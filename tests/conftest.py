"""Test set-up: one database per run, migrated with the real Alembic migrations.

The backend comes from ``KEYSHOP_TEST_DATABASE_URL``: unset means a fresh SQLite file
in a temporary folder; a PostgreSQL URL (``postgresql://postgres@127.0.0.1/test``) runs
the same suite there. Each PostgreSQL run gets a schema of its own
(``search_path`` set through the connection options) that is dropped at the end, so
runs in parallel never see each other's rows.

Every test starts from empty tables (rows are deleted after each test), so tests may
commit freely and run threads against real transactions.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

import core.models  # noqa: F401
from core import config, crypto
from core.config import Settings, load_settings
from core.db import get_engine, make_engine

TEST_KEYRING = "1:" + base64.b64encode(b"k" * 32).decode()
TEST_FINGERPRINT_KEY = base64.b64encode(b"f" * 32).decode()


def backend_url() -> str | None:
    return os.environ.get("KEYSHOP_TEST_DATABASE_URL") or None


def is_postgres_run() -> bool:
    return (backend_url() or "").startswith("postgres")


def pytest_report_header(config: pytest.Config) -> str:
    return f"keyshop test database: {'PostgreSQL ' + str(backend_url()) if is_postgres_run() else 'SQLite (temporary file)'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``postgres_only`` tests run on the PostgreSQL pass alone; ``one_pass`` tests, whose
    outcome cannot depend on the pass's database, on the SQLite pass alone, so the
    test command does not spend minutes running them twice."""
    if is_postgres_run():
        marker = "one_pass"
        skip = pytest.mark.skip(reason="one pass by design: the SQLite pass runs it")
    else:
        marker = "postgres_only"
        skip = pytest.mark.skip(reason="PostgreSQL-only by design; the PostgreSQL pass runs it")
    for item in items:
        if marker in item.keywords:
            item.add_marker(skip)


def _postgres_schema(url: str, schema: str, *, create: bool) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        if create:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    var_dir = tmp_path_factory.mktemp("var")
    url = backend_url()
    schema = None
    if url:
        base = make_url(config.normalise_database_url(url))
        schema = f"keyshop_test_{os.getpid()}_{secrets.token_hex(3)}"
        _postgres_schema(base.render_as_string(hide_password=False), schema, create=True)
        url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    settings = load_settings(
        KEYSHOP_VAR_DIR=str(var_dir),
        DATABASE_URL=url or f"sqlite:///{var_dir / 'test.db'}",
        KEYSHOP_KEYRING=TEST_KEYRING,
        KEYSHOP_FINGERPRINT_KEY=TEST_FINGERPRINT_KEY,
    )
    config.use_settings(settings)
    from core.schema import migrate

    migrate()
    yield settings
    config.use_settings(None)
    if schema:
        _postgres_schema(base.render_as_string(hide_password=False), schema, create=False)


@pytest.fixture(scope="session")
def engine(test_settings: Settings) -> Engine:
    return get_engine()


def _wipe(engine: Engine) -> None:
    """Empty every table, children first, and restart the id sequences. DELETE, not
    TRUNCATE: a test leaves a handful of rows, and PostgreSQL's TRUNCATE of 30-odd tables
    (new files for each, then fsync) cost 0.2-1 s a test against 15 ms for DELETE."""
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(format('%I', sequence_name), 1, false)"
                    " FROM information_schema.sequences WHERE sequence_schema = current_schema()"
                )
            )
        elif conn.execute(text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first():
            conn.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    if (
        "engine" not in request.fixturenames
        and "session" not in request.fixturenames
        and "test_settings" not in request.fixturenames
    ):
        yield
        return
    engine = request.getfixturevalue("engine")
    yield
    crypto.reset_vault()
    _wipe(engine)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A plain session on the test database. Tests commit what they need. On SQLite it
    begins deferred transactions, so a test reading between service calls does not hold
    the write lock the services need."""
    bind = (
        engine.execution_options(sqlite_begin="DEFERRED")
        if engine.dialect.name == "sqlite"
        else engine
    )
    with Session(bind, expire_on_commit=False) as s:
        yield s
        s.rollback()


@pytest.fixture
def vault(test_settings: Settings) -> crypto.KeyVault:
    return crypto.get_vault()


@pytest.fixture
def var_dir(test_settings: Settings) -> Path:
    return test_settings.var_dir


@pytest.fixture
def queued_jobs() -> Iterator[list]:
    """No queue plugged in: jobs enqueued after commit are collected here, in order."""
    from core import jobs

    jobs.set_dispatcher(None)
    jobs.pending.clear()
    yield jobs.pending
    jobs.pending.clear()


@pytest.fixture
def account_mail(queued_jobs: list) -> Iterator[list]:
    """Account e-mails (verification, sign-up attempt, password reset) sent the moment
    they are queued, as a worker would; every other job collected in ``queued_jobs``."""
    from core import jobs
    from core.services.signup import send_account_email

    def dispatch(name: str, args: tuple, kwargs: dict) -> None:
        if name == "send_account_email":
            send_account_email(*args, **kwargs)
        else:
            jobs.pending.append((name, args, kwargs))

    jobs.set_dispatcher(dispatch)
    yield queued_jobs
    jobs.set_dispatcher(None)


@pytest.fixture(scope="session")
def sim_server():
    """The provider simulators on a free loopback port, for the whole run."""
    from keyshop.simulators import SimulatorServer

    # Kinguin completes orders asynchronously by default; tests not about that take the
    # instant-completion knob (late_keys_seconds=0) and set the delay where it matters.
    with SimulatorServer(knobs={"kinguin": {"late_keys_seconds": 0}}) as server:
        yield server


@pytest.fixture
def providers(sim_server, test_settings):
    """Real provider clients (short timeouts) against a freshly reset simulator."""
    from core.providers.codeswholesale import CodesWholesaleClient
    from core.providers.kinguin import KinguinClient
    from core.providers.registry import (
        SIMULATOR_CODESWHOLESALE_CLIENT_ID,
        SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
        SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
        SIMULATOR_KINGUIN_API_KEY,
    )

    sim_server.reset()
    clients = {
        "codeswholesale": CodesWholesaleClient(
            sim_server.provider_url("codeswholesale"),
            SIMULATOR_CODESWHOLESALE_CLIENT_ID,
            SIMULATOR_CODESWHOLESALE_CLIENT_SECRET,
            SIMULATOR_CODESWHOLESALE_CLIENT_SIGNATURE,
            2.0,
        ),
        "kinguin": KinguinClient(
            sim_server.provider_url("kinguin"), SIMULATOR_KINGUIN_API_KEY, 2.0
        ),
    }
    yield clients
    for client in clients.values():
        client.close()
    sim_server.reset()
