"""A reusable benchmark harness: the production topology, for real, on loopback.

    with Stack(workers=2, threads=8) as stack:
        product = stack.create_product()
        stack.add_stock(product, 1000)
        ids = stack.create_paid_orders(product, 1000)
        stack.start_workers()
        stack.enqueue_fulfilment(ids)
        ...

What :meth:`Stack.start` brings up, all sharing one environment:

* a fresh PostgreSQL database (``keyshop_bench_fulfil`` by default: dropped, created and
  migrated with ``core.schema.migrate``; ``synchronous_commit`` set on that database
  only, ``off`` by default as in ``bench/claims.py``);
* a Redis queue under a unique ``KEYSHOP_QUEUE_NAME`` (flushed at start and at the end);
* generated ``KEYSHOP_KEYRING``, ``KEYSHOP_FINGERPRINT_KEY`` and ``KEYSHOP_SECRET_KEY``
  and a temporary ``KEYSHOP_VAR_DIR``;
* the provider simulators (``python -m keyshop simulate-providers --port P``);
* the HTTP API (``python -m keyshop api --port Q``);
* W worker processes (``python -m keyshop worker -w T --no-periodic``), started by
  :meth:`Stack.start_workers` (so a bench can load the queue before they consume).

The bench process itself uses the same settings (``core.config.use_settings``) and the
same queue (``tasks.configure``), so what it signs and enqueues is what the API and the
workers verify and run. Everything is torn down by :meth:`Stack.stop` — on normal exit,
an exception, Ctrl-C or SIGTERM — by killing each child's process group, then the
database is dropped (``keep_database=True`` keeps it for a post-mortem).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BENCH_DB = "keyshop_bench_fulfil"


def libpq_url(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet_machine(
    limit: float = 1.5, max_wait: float = 600.0, interval: float = 60.0, log: Any = None
) -> dict[str, Any]:
    """Wait (up to ``max_wait`` s, checking every ``interval`` s) until the 1-minute load
    average is at most ``limit``. Returns what was seen; never raises."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    start = time.monotonic()
    seen = [load1()]
    while seen[-1] > limit and time.monotonic() - start + interval <= max_wait:
        log(f"bench: load average {seen[-1]} > {limit}; waiting {interval:.0f} s")
        time.sleep(interval)
        seen.append(load1())
    return {
        "load_before_wait": seen[0],
        "load_at_start": seen[-1],
        "waited_s": round(time.monotonic() - start, 1),
        "quiet": seen[-1] <= limit,
    }


class _Interrupted(BaseException):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Interrupted(f"signal {signum}")


class Stack:
    def __init__(
        self,
        *,
        workers: int = 2,
        threads: int = 8,
        server_url: str = DEFAULT_SERVER_URL,
        redis_url: str = DEFAULT_REDIS_URL,
        database: str = BENCH_DB,
        synchronous_commit: str = "off",
        simulator_knobs: Sequence[str] = (),
        log_level: str = "WARNING",
        extra_env: dict[str, str] | None = None,
        keep_database: bool = False,
        quiet: bool = True,
    ) -> None:
        self.workers = workers
        self.threads = threads
        self.server_url = server_url
        self.redis_url = redis_url
        self.database = database
        self.synchronous_commit = synchronous_commit
        self.simulator_knobs = list(simulator_knobs)
        self.log_level = log_level
        self.extra_env = dict(extra_env or {})
        self.keep_database = keep_database
        self.quiet = quiet
        self.db_url = libpq_url(server_url, database)
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.var_dir: Path | None = None
        self.env: dict[str, str] = {}
        self.settings: Any = None
        self.huey: Any = None
        self.sim_port = 0
        self.api_port = 0
        self._http: httpx.Client | None = None
        self._stopped = True
        self._old_sigterm: Any = None

    # -- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def layout(self) -> str:
        return f"{self.workers}x{self.threads}"

    def log(self, msg: str) -> None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    def start(self) -> Stack:
        from core import config
        from core.db import get_engine, reset_engine
        from core.schema import migrate

        self._stopped = False
        atexit.register(self.stop)
        if self._old_sigterm is None:
            self._old_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        self._recreate_database()
        self._tmp = tempfile.TemporaryDirectory(prefix="keyshop-bench-")
        self.var_dir = Path(self._tmp.name)
        self.sim_port, self.api_port = free_port(), free_port()
        self.env = {
            "DATABASE_URL": self.db_url,
            "QUEUE_URL": self.redis_url,
            "KEYSHOP_QUEUE_NAME": f"keyshop-bench-{secrets.token_hex(4)}",
            "KEYSHOP_VAR_DIR": str(self.var_dir),
            "KEYSHOP_KEYRING": "1:" + base64.b64encode(os.urandom(32)).decode(),
            "KEYSHOP_FINGERPRINT_KEY": base64.b64encode(os.urandom(32)).decode(),
            "KEYSHOP_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "KEYSHOP_SIMULATOR_PORT": str(self.sim_port),
            "KEYSHOP_PROVIDER_TIMEOUT": "10",
            "KEYSHOP_LOG_LEVEL": self.log_level,
            # The bench's clients stand for many customers: each checkout names its own
            # (made-up, never contacted) address in X-Forwarded-For, believed from one hop,
            # so the per-address limits apply per customer as behind a real proxy.
            "KEYSHOP_TRUSTED_PROXIES": "1",
            **self.extra_env,
        }
        self.settings = config.load_settings(**self.env)
        config.use_settings(self.settings)
        reset_engine()
        migrate(get_engine())
        import tasks
        from core import jobs

        self.huey = tasks.configure(self.settings)
        self.huey.flush()
        jobs.set_dispatcher(tasks._dispatch)
        knobs: list[str] = []
        for k in self.simulator_knobs:
            knobs += ["--set", k]
        self._spawn("simulator", ["simulate-providers", "--port", str(self.sim_port), *knobs])
        self._spawn("api", ["api", "--host", "127.0.0.1", "--port", str(self.api_port)])
        self._http = httpx.Client(
            timeout=10.0, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self._wait_http(f"{self.sim_url}/_control/codeswholesale", "simulator")
        self._wait_http(f"{self.api_url}/api/health", "API")
        return self

    def _recreate_database(self) -> None:
        with psycopg.connect(libpq_url(self.server_url, "postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {self.database}")
            if self.synchronous_commit != "server":
                conn.execute(
                    f"ALTER DATABASE {self.database} SET synchronous_commit = {self.synchronous_commit}"
                )

    def _child_env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL", "STRIPE_"))
        }
        return {**base, **self.env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    def _spawn(
        self, name: str, args: list[str], *, python_args: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        assert self.var_dir is not None
        logfile = open(self.var_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(
            [sys.executable, *python_args, "-m", "keyshop", *args],
            cwd=self.var_dir,  # no stray .env from the checkout
            env=self._child_env(),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg takes its children too
        )
        logfile.close()
        self.procs.append((name, proc))
        return proc

    def _wait_http(self, url: str, what: str, timeout: float = 30.0) -> None:
        assert self._http is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.tail(name)}")
            try:
                if self._http.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the {what} did not come up at {url}")

    def start_workers(
        self,
        workers: int | None = None,
        threads: int | None = None,
        *,
        python_args: Sequence[str] = (),
    ) -> None:
        """Start the worker processes (``python -m keyshop worker -w T --no-periodic``)."""
        self.workers = workers or self.workers
        self.threads = threads or self.threads
        for n in range(self.workers):
            proc = self._spawn(
                f"worker{n}",
                ["worker", "-w", str(self.threads), "--no-periodic"],
                python_args=python_args,
            )
            self.worker_procs.append(proc)
        # ready once each has printed its banner (just before the consumer starts)
        deadline = time.monotonic() + 60
        for n, proc in enumerate(self.worker_procs):
            while "keyshop worker:" not in self.tail(f"worker{n}", 100_000):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"worker{n} exited with {proc.returncode}: {self.tail(f'worker{n}')}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker{n} did not start within 60 s")
                time.sleep(0.05)
        time.sleep(0.3)  # the consumer's threads start right after the banner

    def stop_workers(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> None:
        """Stop the workers gracefully (SIGINT lets py-spy/cProfile wrappers write out)."""
        for proc in self.worker_procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        for proc in self.worker_procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def tail(self, name: str, chars: int = 2000) -> str:
        if self.var_dir is None:
            return ""
        path = self.var_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for _name, proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _name, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self.procs.clear()
        self.worker_procs.clear()
        if self._http is not None:
            self._http.close()
            self._http = None
        with contextlib.suppress(Exception):
            if self.huey is not None:
                self.huey.flush()
        with contextlib.suppress(Exception):
            import tasks
            from core import jobs

            tasks.configure(immediate=True)
            jobs.set_dispatcher(None)
        with contextlib.suppress(Exception):
            from core import config
            from core.db import reset_engine

            reset_engine()
            config.use_settings(None)
        if not self.keep_database:
            with (
                contextlib.suppress(Exception),
                psycopg.connect(libpq_url(self.server_url, "postgres"), autocommit=True) as conn,
            ):
                conn.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        if self._tmp is not None:
            with contextlib.suppress(Exception):
                self._tmp.cleanup()
            self._tmp = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # -- addresses ----------------------------------------------------------------------

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def connect(self) -> psycopg.Connection[Any]:
        """A plain psycopg connection to the bench database (autocommit)."""
        return psycopg.connect(self.db_url, autocommit=True)

    # -- data -----------------------------------------------------------------------------

    def create_product(
        self, *, title: str = "Bench Game", price_minor: int = 1999, currency: str = "EUR"
    ) -> int:
        from core.db import get_engine
        from core.models import Product, utcnow

        now = utcnow()
        slug = f"bench-{uuid.uuid4().hex[:10]}"
        with get_engine().begin() as conn:
            return int(
                conn.execute(
                    insert(Product.__table__).returning(Product.__table__.c.id),  # type: ignore[attr-defined]
                    {
                        "slug": slug,
                        "title": title,
                        "platform": "Steam",
                        "region": "GLOBAL",
                        "genre": "Action",
                        "description": "",
                        "publisher": "",
                        "price_minor": price_minor,
                        "currency": currency,
                        "is_preorder": False,
                        "activation_instructions": "",
                        "low_stock_threshold": 0,
                        "featured": False,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    },
                ).scalar_one()
            )

    def add_stock(self, product_id: int, n: int, *, chunk: int = 5000) -> int:
        """``n`` available keys, encrypted and fingerprinted like real stock (bulk insert,
        as bench/claims.py does)."""
        from core import crypto
        from core.db import get_engine
        from core.models import Key, new_uuid, utcnow

        vault = crypto.get_vault()
        now = utcnow()
        made = 0
        while made < n:
            rows = []
            for _ in range(min(chunk, n - made)):
                row_id = new_uuid()
                code = f"STOCK-{uuid.uuid4().hex[:20].upper()}"
                version, blob = vault.encrypt(code.encode(), row_id=row_id)
                rows.append(
                    {
                        "id": row_id,
                        "product_id": product_id,
                        "status": "available",
                        "kind": "text",
                        "ciphertext": blob,
                        "key_version": version,
                        "fingerprint": vault.fingerprint(code),
                        "supplier": "bench",
                        "created_at": now,
                    }
                )
            with get_engine().begin() as conn:
                conn.execute(insert(Key.__table__), rows)  # type: ignore[attr-defined]
            made += len(rows)
        return made

    def create_paid_orders(
        self, product_id: int, n: int, *, price_minor: int = 1999, chunk: int = 5000
    ) -> list[int]:
        """``n`` orders already ``paid`` (1 line, quantity 1), bulk-inserted with their
        order events; returns their ids in creation order."""
        from core.db import get_engine
        from core.models import Order, OrderEvent, OrderLine, utcnow
        from core.services.orders import new_order_number

        ids: list[int] = []
        now = utcnow()
        otab, ltab, etab = Order.__table__, OrderLine.__table__, OrderEvent.__table__  # type: ignore[attr-defined]
        while len(ids) < n:
            k = min(chunk, n - len(ids))
            with get_engine().begin() as conn:
                got = list(
                    conn.execute(
                        insert(otab).returning(otab.c.id, sort_by_parameter_order=True),
                        [
                            {
                                "number": new_order_number(),
                                "email": f"buyer{len(ids) + i}@example.com",
                                "status": "paid",
                                "currency": "EUR",
                                "subtotal_minor": price_minor,
                                "total_minor": price_minor,
                                "payment_reference": f"pi_bench_{uuid.uuid4().hex[:16]}",
                                "payment_provider": "stripe",
                                "created_at": now,
                                "updated_at": now,
                                "paid_at": now,
                                "fulfilment_attempts": 0,
                            }
                            for i in range(k)
                        ],
                    ).scalars()
                )
                conn.execute(
                    insert(ltab),
                    [
                        {
                            "order_id": oid,
                            "product_id": product_id,
                            "title": "Bench Game",
                            "platform": "Steam",
                            "region": "GLOBAL",
                            "unit_price_minor": price_minor,
                            "currency": "EUR",
                            "quantity": 1,
                        }
                        for oid in got
                    ],
                )
                conn.execute(
                    insert(etab),
                    [
                        {
                            "order_id": oid,
                            "from_status": "pending_payment",
                            "to_status": "paid",
                            "reason": "bench: paid",
                            "actor": "system:bench",
                            "data": {},
                            "created_at": now,
                        }
                        for oid in got
                    ],
                )
            ids.extend(got)
        return ids

    def create_pending_orders(self, product_id: int, n: int) -> list[Any]:
        """``n`` orders ``pending_payment`` through ``core.services.orders.create_order``
        (the checkout path); returns the Order rows (detached, loaded)."""
        from core.db import session_scope
        from core.services.orders import LineRequest, create_order

        orders = []
        with session_scope() as session:
            for i in range(n):
                orders.append(
                    create_order(
                        session=session,
                        email=f"buyer{i}@example.com",
                        lines=[LineRequest(product_id=product_id, quantity=1)],
                    )
                )
        return orders

    def add_provider_offer(
        self,
        provider: str,
        product_id: int,
        *,
        price: str = "5.00",
        stock: int = 100_000,
        offer_stock: int | None = None,
    ) -> str:
        """A product in the simulator (control API) and its ProviderOffer mapped to ours."""
        from core.db import session_scope
        from core.models import ProviderOffer

        assert self._http is not None
        external_id = str(uuid.uuid4())
        r = self._http.post(
            f"{self.sim_url}/_control/{provider}/products",
            json={
                "external_id": external_id,
                "name": f"Bench Game ({provider})",
                "price": price,
                "stock": stock,
            },
        )
        r.raise_for_status()
        made = r.json()
        with session_scope() as session:
            session.add(
                ProviderOffer(
                    provider=provider,
                    external_id=str(made["external_id"]),
                    product_id=product_id,
                    name=str(made["name"]),
                    cost_minor=round(float(price) * 100),
                    currency="EUR",
                    stock=offer_stock if offer_stock is not None else stock,
                )
            )
        return str(made["external_id"])

    def sim_control(self, provider: str, **knobs: Any) -> dict[str, Any]:
        assert self._http is not None
        r = self._http.post(f"{self.sim_url}/_control/{provider}", json=knobs)
        r.raise_for_status()
        return dict(r.json())

    def sim_orders(self, provider: str) -> list[dict[str, Any]]:
        assert self._http is not None
        r = self._http.get(f"{self.sim_url}/_control/{provider}/orders", timeout=30.0)
        r.raise_for_status()
        return list(r.json())

    # -- work -----------------------------------------------------------------------------

    def enqueue_fulfilment(self, order_ids: Iterable[int]) -> int:
        """``fulfil_order(order_id)`` through the real Redis queue, one task per order."""
        import tasks
        from core.jobs import Job

        n = 0
        task = tasks.TASKS[Job.FULFIL_ORDER]
        for oid in order_ids:
            task(oid)
            n += 1
        return n

    def payment_event(self, order: Any) -> tuple[bytes, dict[str, str]]:
        """A signed Stripe-format ``checkout.session.completed`` for ``order``."""
        from core.services.payments import webhook_secret
        from core.services.test_payments import build_test_event, sign_stripe_payload

        body = build_test_event(order)
        return body, {
            "Stripe-Signature": sign_stripe_payload(body, webhook_secret()),
            "Content-Type": "application/json",
        }

    def post_webhook(
        self, body: bytes, headers: dict[str, str], client: httpx.Client | None = None
    ) -> httpx.Response:
        http = client or self._http
        assert http is not None
        return http.post(f"{self.api_url}/api/webhooks/stripe", content=body, headers=headers)

    def post_checkout(self, body: dict[str, Any], client_ip: str | None = None) -> httpx.Response:
        """``POST /api/store/checkout`` with a JSON body, as the customer at ``client_ip``
        (sent as ``X-Forwarded-For``; the stack trusts one proxy hop)."""
        assert self._http is not None
        headers = {"X-Forwarded-For": client_ip} if client_ip else {}
        return self._http.post(f"{self.api_url}/api/store/checkout", json=body, headers=headers)

    def queue_length(self) -> int:
        return int(self.huey.pending_count()) if self.huey is not None else 0
