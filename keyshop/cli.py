"""``keyshop`` command line. Each command validates the settings first: a malformed
setting stops it with one line naming the setting and exit status 2; a domain error
stops it with one line and exit status 1."""

from __future__ import annotations

import getpass
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.exc import OperationalError

from core import config
from core.errors import ConfigError, DomainError
from core.jobs import Job
from core.providers.registry import uses_simulator
from keyshop.logs import configure_logging

F = TypeVar("F", bound=Callable[..., Any])

EXIT_DOMAIN = 1
EXIT_CONFIG = 2


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"keyshop: {message}", err=True)
    sys.exit(code)


def handles_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(exc.message, EXIT_CONFIG)
        except DomainError as exc:
            fail(exc.message, EXIT_DOMAIN)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OperationalError as exc:
            url = config.get_settings().describe()[2][1]
            reason = str(exc.orig or exc).strip().splitlines()[0]
            fail(f"cannot use the database at DATABASE_URL={url}: {reason}", EXIT_DOMAIN)

    return wrapper  # type: ignore[return-value]


def default_operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (containers)
        return "operator"


# The command groups kept in modules of their own, by name: a module is imported only when
# one of its commands runs (or --help lists them all), so `keyshop worker`, `run` or
# `migrate` do not pay for the catalogue's imports (about a second a start on this
# machine). tests/cli/test_cli.py checks this map against each module's COMMANDS.
LAZY_COMMANDS = {
    "products": "keyshop.catalogue_cli",
    "offers": "keyshop.catalogue_cli",
    "pricing": "keyshop.catalogue_cli",
    "report": "keyshop.catalogue_cli",
    "export": "keyshop.catalogue_cli",
    "giftcard": "keyshop.credit_cli",
    "credit": "keyshop.credit_cli",
    "referrals": "keyshop.credit_cli",
    "promo": "keyshop.promo_cli",
}


class LazyGroup(click.Group):
    """A group whose commands in :data:`LAZY_COMMANDS` are loaded when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module = importlib.import_module(LAZY_COMMANDS[cmd_name])
            for command in module.COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keyshop")
def cli() -> None:
    """keyshop: a shop for digital game keys."""
    try:
        settings = config.load_settings()
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)
    config.use_settings(settings)
    configure_logging(settings)


@cli.command("check-config")
@handles_errors
def check_config() -> None:
    """Print the settings in force, secrets masked."""
    settings = config.get_settings()
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        click.echo(f"{name.ljust(width)}  {value}  [{source}]")
    if settings.env == "embedded":
        click.echo(
            "\nembedded default: SQLite, SQLite-backed queue and a generated keyring under "
            f"{settings.var_dir}/ (set KEYSHOP_ENV=production for PostgreSQL + Redis)"
        )


@cli.command()
@handles_errors
def migrate() -> None:
    """Upgrade the database schema to the newest revision (a no-op when current)."""
    from core.schema import migrate as run_migrations

    before, after = run_migrations()
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to revision {after}")


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int | None], None]]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    columns = [BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    with Progress(
        "[progress.description]{task.description}",
        *columns,
        transient=False,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@cli.command("import-keys")
@click.option(
    "--product",
    "product_slug",
    metavar="SLUG",
    help="Product the keys belong to (a CSV may name one per line in a 'product' column).",
)
@click.option(
    "--operator",
    default=default_operator,
    show_default="your login name",
    help="Recorded on the import batch.",
)
@click.option("--follow-symlinks", is_flag=True, help="Read FILE even if it is a symbolic link.")
@click.option(
    "--allow-special-files",
    is_flag=True,
    help="Read FILE even if it is a named pipe or device (once, into a private copy).",
)
@click.argument("file", type=click.Path(path_type=Path))
@handles_errors
def import_keys(
    product_slug: str | None,
    operator: str,
    follow_symlinks: bool,
    allow_special_files: bool,
    file: Path,
) -> None:
    """Import keys from a .txt (one per line) or .csv (a 'key' column) FILE. Symbolic
    links and anything but a regular file are refused unless a flag says otherwise."""
    from core.services.importer import import_keys as run_import

    with progress_bar(f"importing {file.name}") as progress:
        report = run_import(
            path=file,
            product_slug=product_slug,
            operator=operator,
            progress=progress,
            follow_symlinks=follow_symlinks,
            allow_special_files=allow_special_files,
        )
    click.echo(
        f"import #{report.batch_id} of {report.file_name}: read {report.read}, imported {report.imported}, "
        f"duplicate within the file {report.duplicate_in_file}, duplicate of stock {report.duplicate_in_stock}, "
        f"rejected {report.rejected}"
    )
    for rejection in report.rejections:
        click.echo(f"  line {rejection.line}: {rejection.reason}")
    if report.rejected > len(report.rejections):
        click.echo(f"  … and {report.rejected - len(report.rejections)} more rejected lines")


@cli.command("seed-demo")
@click.option("--keys-per-product", default=25, show_default=True, type=click.IntRange(0, 10_000))
@click.option(
    "--if-empty",
    is_flag=True,
    help="Only when the shop has no products yet (never mixes demo titles into a real catalogue).",
)
@handles_errors
def seed_demo(keys_per_product: int, if_empty: bool) -> None:
    """Load the demo catalogue (invented titles, generated cover art, demo keys)."""
    from sqlalchemy import func
    from sqlmodel import select

    from core.db import session_scope
    from core.models import Product
    from core.services.demo import seed_demo as run_seed

    with session_scope() as session:
        existing = session.exec(select(func.count()).select_from(Product)).one()
        if if_empty and existing:
            click.echo(f"the shop already has {existing} products; demo catalogue not loaded")
            return
        summary = run_seed(session=session, keys_per_product=keys_per_product)
    click.echo(
        f"demo catalogue: {summary.products_created} products created, "
        f"{summary.products_existing} already there, {summary.keys_created} demo keys in stock"
    )


@cli.command("simulate-providers")
@click.option("--host", default=None, help="Bind address (default KEYSHOP_SIMULATOR_HOST).")
@click.option("--port", type=int, default=None, help="Port (default KEYSHOP_SIMULATOR_PORT).")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="[PROVIDER.]KNOB=VALUE",
    help="Simulator knob, repeatable: latency_ms=50, kinguin.out_of_stock=ID1,ID2, codeswholesale.error_rate=0.1",
)
@handles_errors
def simulate_providers(host: str | None, port: int | None, assignments: tuple[str, ...]) -> None:
    """Run the CodesWholesale and Kinguin simulators on loopback until Ctrl-C (control API at /_control)."""
    from keyshop.simulators import parse_knob_assignments, run_simulators

    settings = config.get_settings()
    try:
        knobs = parse_knob_assignments(assignments)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    click.echo(
        f"provider simulators on http://{host or settings.simulator_host}:{port or settings.simulator_port} "
        "(/codeswholesale, /kinguin, /_control)"
    )
    run_simulators(settings, host, port, knobs=knobs, log_level=settings.log_level.lower())


@cli.command()
@click.option(
    "--workers",
    "-w",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker threads.",
)
@click.option(
    "--no-periodic",
    is_flag=True,
    help="Do not run the periodic tasks (run exactly one consumer with them per deployment).",
)
@handles_errors
def worker(workers: int, no_periodic: bool) -> None:
    """Run a Huey consumer: fulfilment, webhooks, e-mail, and (unless --no-periodic) the
    scheduled sync, reconciliation, alerts and expiry. It writes a heartbeat that
    /api/health and the console read, and exits with status 1 when its queue has been
    unreachable for KEYSHOP_QUEUE_DOWN_EXIT_SECONDS, so a supervisor restarts it."""
    import tasks
    from tasks.consumer import make_consumer

    settings = config.get_settings()
    huey = tasks.configure(settings)
    from core import tracing

    tracing.configure(service="keyshop-worker")  # on only with KEYSHOP_OTLP_ENDPOINT
    consumer = make_consumer(huey, settings, workers=workers, periodic=not no_periodic)
    queue_url = settings.describe()[3][1]
    click.echo(
        f"keyshop worker: {workers} threads on {queue_url}"
        f"{'' if no_periodic else ', running periodic tasks'}",
        err=True,
    )
    consumer.run()
    if consumer.queue_lost:
        fail(
            f"the queue at QUEUE_URL={queue_url} was unreachable for "
            f"{settings.queue_down_exit_seconds} s ({consumer.queue_lost}); worker stopped "
            "(KEYSHOP_QUEUE_DOWN_EXIT_SECONDS sets the bound)",
            EXIT_DOMAIN,
        )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@handles_errors
def api(host: str, port: int) -> None:
    """Serve the HTTP API alone (webhooks, health, image-key links) with uvicorn."""
    import uvicorn

    import tasks
    from web.api.app import create_api

    tasks.configure(config.get_settings())
    uvicorn.run(
        create_api(), host=host, port=port, log_level=config.get_settings().log_level.lower()
    )


ROOT = Path(__file__).resolve().parents[1]


def reflex_environment(settings: config.Settings) -> dict[str, str]:
    """The environment the Reflex process needs on these machines (see
    ../shared/docs/reflex-offline.md): bun from ``.tools`` on PATH, no version check
    against PyPI, the npm registry without a latency probe. Several web workers only with
    the Redis state manager (``REFLEX_REDIS_URL``); without it Reflex runs one."""
    env = dict(os.environ)
    tools = ROOT / ".tools" / "node_modules" / ".bin"
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), str(tools), env.get("PATH", "")]
    )
    env.setdefault("REFLEX_CHECK_LATEST_VERSION", "false")
    env.setdefault("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org")
    env.setdefault("REFLEX_TELEMETRY_ENABLED", "false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def wait_for_http(url: str, *, timeout: float, alive: Callable[[], bool]) -> bool:
    """Poll ``url`` until it answers 200, ``alive()`` turns false or time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _share_metrics(settings: config.Settings) -> None:
    """Every process started from here counts into one set of Prometheus files (the
    client's multiprocess mode), emptied at start; an operator's own
    PROMETHEUS_MULTIPROC_DIR wins."""
    import shutil

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = Path(settings.var_dir) / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option(
    "--workers",
    "-w",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads of the one Huey consumer.",
)
@click.option(
    "--no-simulators",
    is_flag=True,
    help="Do not start the provider simulators (real provider URLs are set).",
)
@click.option(
    "--no-worker", is_flag=True, help="Do not start a Huey consumer (one runs elsewhere)."
)
@handles_errors
def run(host: str, port: int, workers: int, no_simulators: bool, no_worker: bool) -> None:
    """Run the whole shop on this machine: migrate, then the storefront (Reflex in prod
    mode: pages, key portal and the HTTP API on one port), one Huey consumer with the
    periodic tasks, and the provider simulators, until Ctrl-C (or SIGTERM) stops them
    all. They stop with it however it ends, SIGKILL included (keyshop/supervise.py)."""
    import signal
    import time

    from core.schema import migrate as run_migrations
    from keyshop.supervise import Children, port_in_use

    settings = config.get_settings()
    simulate = not no_simulators and any(
        uses_simulator(settings, name) for name in settings.providers
    )
    if port_in_use(host, port):
        raise DomainError(
            f"port {port} on {host} is already in use; stop what holds it, "
            "or run the shop on another port with --port"
        )
    if simulate and port_in_use(settings.simulator_host, settings.simulator_port):
        raise DomainError(
            f"port {settings.simulator_port} on {settings.simulator_host} (the provider "
            "simulators) is already in use; set KEYSHOP_SIMULATOR_PORT to a free port, "
            "or pass --no-simulators if they already run"
        )

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, and a script's `kill -INT` even when it started us as a background job
    # (a non-interactive shell starts `keyshop run &` with SIGINT ignored).
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)  # a supervisor's stop, like Ctrl-C
    signal.signal(signal.SIGHUP, interrupted)  # the terminal went away
    run_migrations()
    _share_metrics(settings)
    children = Children(ROOT)

    def check_children() -> None:
        stopped = children.stopped()
        if stopped is not None:
            name, status = stopped
            raise DomainError(
                f"the {name} process stopped (exit status {status}); stopping the shop"
            )

    keyshop = [sys.executable, "-m", "keyshop"]
    try:
        if simulate:
            children.start("provider simulators", [*keyshop, "simulate-providers"])
        if not no_worker:
            children.start("worker", [*keyshop, "worker", "-w", str(workers)])
        children.start(
            "web",
            [
                sys.executable,
                "-m",
                "reflex",
                "run",
                "--env",
                "prod",
                "--backend-host",
                host,
                "--backend-port",
                str(port),
                "--frontend-port",
                str(port),
            ],
            env=reflex_environment(settings),
        )
        if simulate:
            from keyshop.simulators.server import wait_until_up

            wait_until_up(settings.simulator_url)
            click.echo(f"provider simulators at {settings.simulator_url} (control API: /_control)")
            # a first provider sync now rather than at the scheduler's next ten-minute mark
            import tasks

            tasks.configure(settings)
            for name in settings.providers:
                tasks.TASKS[Job.SYNC_PROVIDER](name)
        click.echo("building and starting the storefront (the first start takes a minute)...")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 (a comparison)
        if not wait_for_http(
            f"http://{shown}:{port}/api/health", timeout=600, alive=children.all_running
        ):
            check_children()
            raise DomainError(f"the storefront did not answer on port {port} within 10 minutes")
        click.echo(
            f"keyshop is running at http://{shown}:{port}  (health: /api/health; Ctrl-C stops everything)"
        )
        while True:
            check_children()
            time.sleep(0.5)
    finally:
        children.stop()


@cli.command("console")
@click.option(
    "--operator",
    default=default_operator,
    show_default="your login name",
    help="Recorded as the actor of every action in the audit trail.",
)
@handles_errors
def console_command(operator: str) -> None:
    """The operator console: dashboard, attention queue, inventory and imports, orders,
    audit, alerts, webhooks, outbox."""
    import tasks
    from console.app import make_app
    from core.schema import current_revision, head_revision

    settings = config.get_settings()
    if current_revision() != head_revision():  # before the full-screen display takes over
        raise DomainError(
            "the database is not at the newest migration; run `keyshop migrate` "
            "(or `./dev run`) first"
        )
    tasks.configure(settings)  # jobs the console enqueues (retry, replay) reach the real queue
    root = logging.getLogger()  # log lines on stderr would break up the full-screen display
    for handler in list(root.handlers):
        root.removeHandler(handler)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    root.addHandler(logging.FileHandler(settings.var_dir / "console.log"))
    make_app(
        settings,
        operator=operator,
        queue_depth=tasks.jobs.queue_depth,
        worker_heartbeat=tasks.jobs.worker_heartbeat,
        queue_health=tasks.jobs.queue_health,
        retry_task=tasks.jobs.retry_failed_task,
    ).run()


@cli.group()
def pages() -> None:
    """The legal pages (terms, privacy, imprint, withdrawal), written in Markdown."""


@pages.command("set")
@click.argument("slug")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--title", default=None, help="The page's title (default: kept, or the usual one).")
@click.option("--operator", default=default_operator, show_default="your login name")
@handles_errors
def pages_set(slug: str, file: Path, title: str | None, operator: str) -> None:
    """Replace the legal page SLUG with the Markdown in FILE."""
    from core.services.operator.legal import save_legal_page

    try:
        body = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}", EXIT_DOMAIN)
    page = save_legal_page(slug=slug, body=body, title=title, operator=operator)
    click.echo(f"legal page {page.slug} ({page.title}) saved: {len(page.body)} characters")


@pages.command("show")
@click.argument("slug")
@handles_errors
def pages_show(slug: str) -> None:
    """Print the Markdown of the legal page SLUG."""
    from core.db import session_scope
    from core.services.legal import get_page

    with session_scope(write=False) as session:
        page = get_page(session=session, slug=slug)
    click.echo(f"# {page.title}\n\n{page.body}")


@cli.group()
def keys() -> None:
    """Key vault operations."""


@keys.command("rotate")
@click.option("--batch-size", default=2000, show_default=True, type=click.IntRange(1, 100_000))
@handles_errors
def keys_rotate(batch_size: int) -> None:
    """Re-encrypt every key under the newest keyring entry (safe to interrupt and rerun)."""
    from core.crypto import get_vault
    from core.services.keys import rotate_keys

    vault = get_vault()
    with progress_bar(f"re-encrypting under keyring entry {vault.active_id}") as progress:
        report = rotate_keys(batch_size=batch_size, progress=progress)
    click.echo(
        f"rotation to keyring entry {vault.active_id}: {report.rotated} keys re-encrypted, "
        f"{report.remaining} remaining, {report.total} in all"
    )
    failed = getattr(report, "failed_ids", None)
    if failed:
        click.echo(
            f"{len(failed)} keys failed to decrypt and were left as they are: {', '.join(map(str, failed[:10]))}"
        )
        sys.exit(EXIT_DOMAIN)


@keys.command("new-secret")
def keys_new_secret() -> None:
    """Print a new random 32-byte secret (base64) for a keyring entry or the fingerprint key."""
    from core.crypto import generate_keyring_entry

    click.echo(generate_keyring_entry())


def main() -> None:
    cli(prog_name="keyshop")


if __name__ == "__main__":
    main()
