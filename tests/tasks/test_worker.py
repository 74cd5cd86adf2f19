"""The task layer through a real Huey consumer process (``keyshop worker``): Redis on the
PostgreSQL pass, the SQLite-backed queue on the SQLite pass."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from core import config
from core.models import Order, ProviderOffer, ProviderPurchase
from core.services import maintenance
from core.services.test_payments import send_test_event
from tests.conftest import TEST_FINGERPRINT_KEY, TEST_KEYRING
from tests.factories import fresh, make_keys, make_order, make_product
from tests.support.waiting import wait_for
from tests.support.worker import delivered, status_of

ROOT = Path(__file__).resolve().parents[2]


def test_payment_to_delivered_keys_through_a_real_consumer(session, queue):
    product = make_product(session)
    make_keys(session, product, 2)
    order = make_order(session, [(product, 2)], status="pending_payment")
    queue.start_worker()
    send_test_event(order_number=order.number)
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
    assert len(delivered(session, order)) == 2
    outbox = queue.settings.outbox_dir
    mail = wait_for(
        lambda: [f for f in outbox.glob("*.eml") if order.number in f.read_text()],
        what="the delivery e-mail",
    )
    text = mail[0].read_text()
    assert len(mail) == 1 and "/orders/" in text


def test_worker_killed_mid_purchase_no_double_purchase_and_the_order_completes(
    session, queue, sim_server
):
    product = make_product(session)
    made = sim_server.add_product("codeswholesale", name=product.title, price="5.00", stock=20)
    session.add(
        ProviderOffer(
            provider="codeswholesale",
            external_id=made["external_id"],
            product_id=product.id,
            name=product.title,
            cost_minor=500,
            currency="EUR",
            stock=20,
        )
    )
    session.commit()
    # The provider holds the order request for a while before placing it, long enough
    # that a loaded machine still kills the worker before the answer (it waits up to 30 s).
    sim_server.control("codeswholesale", timeout=10.0)
    queue.env["KEYSHOP_PROVIDER_TIMEOUT"] = "30"
    order = make_order(session, [(product, 2)], status="pending_payment")
    first = queue.start_worker()
    queue.wait_warm()  # the worker holds its token now (token and balance requests)
    before = sim_server.stats("codeswholesale").get("requests", 0)
    send_test_event(order_number=order.number)
    wait_for(
        lambda: (
            fresh(session)
            .exec(select(ProviderPurchase).where(ProviderPurchase.status == "requested"))
            .first()
        ),
        what="the purchase intent",
        interval=0.05,
    )
    wait_for(
        lambda: sim_server.stats("codeswholesale").get("requests", 0) >= before + 1,
        interval=0.05,
        what="the order request to reach the provider",
    )
    # the order request reached the provider, which holds it: the worker waits for the answer
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert status_of(session, order) == "paid"
    # the provider completes the order whose answer nobody received
    wait_for(
        lambda: len(sim_server.orders("codeswholesale")) == 1,
        what="the provider's order",
        timeout=40,
    )
    sim_server.control("codeswholesale", timeout=0)
    queue.start_worker()
    # the periodic task's work, run now: it queues the order again once the dead
    # worker's lease has run out (KEYSHOP_FULFILMENT_LEASE_SECONDS=2)
    wait_for(
        lambda: maintenance.reconcile().requeued,
        what="reconciliation to queue the order again",
        interval=0.1,
    )
    wait_for(
        lambda: status_of(session, order) == "fulfilled",
        what="the order to complete after the restart",
        timeout=60,
    )
    assert len(sim_server.orders("codeswholesale")) == 1, "the provider was paid once"
    keys = delivered(session, order)
    assert len(keys) == 2 and len({k.fingerprint for k in keys}) == 2
    assert session.exec(select(ProviderPurchase)).one().status == "completed"


def test_a_fresh_worker_authenticates_before_its_first_order_and_the_order_reuses_it(
    session, queue, sim_server
):
    product = make_product(session)
    made = sim_server.add_product("codeswholesale", name=product.title, price="5.00", stock=5)
    session.add(
        ProviderOffer(
            provider="codeswholesale",
            external_id=made["external_id"],
            product_id=product.id,
            name=product.title,
            cost_minor=500,
            currency="EUR",
            stock=5,
        )
    )
    session.commit()
    queue.start_worker()
    queue.wait_warm()
    stats = sim_server.stats("codeswholesale")
    assert stats.get("tokens_issued") == 1 and not sim_server.orders("codeswholesale")
    assert "codeswholesale ready" in queue.logs.read_text()
    order = make_order(session, [(product, 1)], status="pending_payment")
    send_test_event(order_number=order.number)
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
    assert len(delivered(session, order)) == 1
    assert sim_server.stats("codeswholesale").get("tokens_issued") == 1, (
        "the order used the worker's token"
    )


def test_warm_up_never_fails_a_worker_when_providers_are_unreachable(test_settings):
    import socket

    from tasks import warmup

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    config.use_settings(
        test_settings.model_copy(
            update={"simulator_port": closed_port, "provider_timeout_seconds": 0.5}
        )
    )
    try:
        report = warmup.warm_up()
    finally:
        config.use_settings(test_settings)
    assert report["codeswholesale"].startswith("not reachable")
    assert report["kinguin"].startswith("not reachable")
    assert "error" not in report and warmup.warmed.is_set()


def test_a_payment_whose_fulfilment_cannot_finish_at_once_is_queued_again(session, monkeypatch):
    """The worker that processed the payment fulfils the order itself; when that fails
    the order is not dropped: fulfil_order is queued again, and that run delivers."""
    import tasks
    from core import jobs
    from core.services import fulfilment
    from core.services.fulfilment import FulfilmentRetry

    huey = tasks.configure(immediate=True)
    jobs.set_dispatcher(tasks._dispatch)
    product = make_product(session)
    make_keys(session, product, 1)
    order = make_order(session, [(product, 1)], status="pending_payment")
    real = fulfilment.fulfil_order
    runs = []

    def fails_first(**kwargs):
        runs.append(kwargs["order_id"])
        if len(runs) == 1:
            raise FulfilmentRetry("providers unreachable for a moment")
        return real(**kwargs)

    monkeypatch.setattr(fulfilment, "fulfil_order", fails_first)
    try:
        send_test_event(order_number=order.number)
        assert runs == [order.id] and status_of(session, order) == "paid"
        again = [t for t in huey.scheduled() if t.name.endswith("fulfil_order")]
        assert [t.args for t in again] == [(order.id,)]
        tasks.TASKS["fulfil_order"].call_local(*again[0].args)
    finally:
        huey.flush()
        jobs.set_dispatcher(None)
    assert status_of(session, order) == "fulfilled" and len(delivered(session, order)) == 1


# -- a worker whose queue is gone, and the heartbeat ----------------------------------


def worker_env(test_settings, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KEYSHOP_", "DATABASE_URL", "QUEUE_URL"))
    }
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": test_settings.effective_database_url,
        "KEYSHOP_VAR_DIR": str(test_settings.var_dir),
        "KEYSHOP_KEYRING": TEST_KEYRING,
        "KEYSHOP_FINGERPRINT_KEY": TEST_FINGERPRINT_KEY,
        "KEYSHOP_LOG_LEVEL": "INFO",
        **extra,
    }


def test_a_worker_whose_queue_is_gone_logs_briefly_and_exits_non_zero_in_time(
    test_settings, tmp_path
):
    bound = 3
    env = worker_env(
        test_settings,
        QUEUE_URL="redis://127.0.0.1:1/0",
        KEYSHOP_QUEUE_DOWN_EXIT_SECONDS=str(bound),
        KEYSHOP_QUEUE_NAME=f"dead-{secrets.token_hex(3)}",
    )
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keyshop", "worker", "-w", "4"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # In time: the worker must stop well before the default bound would let it, whatever
    # the machine's load does to the interpreter's start-up (19 s under CI's load); a
    # wall-clock margin over ``bound`` is no proof on a loaded machine.
    default = config.Settings.model_fields["queue_down_exit_seconds"].default
    patience = default - 10
    assert patience > bound + 30
    try:
        status = proc.wait(timeout=patience)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        lines = log.read_text().splitlines()
        pytest.fail(
            f"the worker was still running after {patience} s, having logged {len(lines)} lines"
        )
    lines = log.read_text().splitlines()
    assert status == 1, "\n".join(lines[-20:])
    # start-up (besides Huey's list of tasks, one line each), a line when the queue goes,
    # one per interval while it stays down, the periodic tasks it could not queue, the exit
    told = [line for line in lines if not line.startswith("+ tasks.")]
    assert len(told) <= 30, f"{len(lines)} lines:\n" + "\n".join(lines[:60])
    assert "Traceback" not in log.read_text()
    assert lines[-1].startswith("keyshop: ") and "QUEUE_URL=redis://127.0.0.1:1/0" in lines[-1]
    assert f"{bound} s" in lines[-1]


def test_a_running_worker_writes_and_renews_a_heartbeat_that_goes_stale_when_it_dies(queue):
    from core.jobs import worker_presence
    from tasks.jobs import worker_heartbeat  # what the console and /api/health read

    def presence():
        return worker_presence(
            worker_heartbeat(), now=time.time(), stale_after=queue.settings.worker_stale_seconds
        )

    assert presence().state == "absent"
    before = time.time()
    proc = queue.start_worker()
    seen = wait_for(worker_heartbeat, what="the worker's heartbeat")
    assert seen >= before - 1 and presence().state == "ok"
    # it keeps beating: a later beat replaces the first
    wait_for(
        lambda: (worker_heartbeat() or 0) > seen,
        timeout=queue.settings.heartbeat_seconds * 3 + 10,
        what="a second heartbeat",
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(
        lambda: presence().state == "stale",
        timeout=queue.settings.worker_stale_seconds + 10,
        what="the heartbeat to go stale",
    )


# -- a lost provider answer (DESIGN §4 invariant 3), through a real consumer ------------------


def offers_at_both(session, sim_server, product):
    """CodesWholesale (cheaper, tried first) and Kinguin both offer the product."""
    for provider, price in (("codeswholesale", "5.00"), ("kinguin", "5.50")):
        made = sim_server.add_product(provider, name=product.title, price=price, stock=20)
        session.add(
            ProviderOffer(
                provider=provider,
                external_id=made["external_id"],
                product_id=product.id,
                name=product.title,
                cost_minor=int(price.replace(".", "")),
                currency="EUR",
                stock=20,
            )
        )
    session.commit()


def test_lost_answer_whose_lookup_fails_is_never_sent_again_and_goes_to_an_operator(
    session, queue, sim_server
):
    from core.services.operator import unknown_purchases

    product = make_product(session)
    offers_at_both(session, sim_server, product)
    # the order is charged, the answer is lost, and the order history cannot be read
    sim_server.control("codeswholesale", crash_after_charge=True, fail_lookups=True)
    queue.env["KEYSHOP_UNKNOWN_PURCHASE_SECONDS"] = "3"
    order = make_order(session, [(product, 1)], status="pending_payment")
    queue.start_worker()
    send_test_event(order_number=order.number)
    wait_for(
        lambda: status_of(session, order) == "needs_attention",
        what="the order to reach an operator",
    )
    [purchase] = session.exec(select(ProviderPurchase)).all()
    assert purchase.status == "unknown" and "order history failed" in purchase.error
    reason = fresh(session).get(Order, order.id).attention_reason
    assert purchase.reference in reason and "confirm it was not charged" in reason
    # it waited (the first run ended in a retry) before going to the operator
    log = queue.logs.read_text()
    assert "queued to try again" in log or "trying again later" in log
    maintenance.reconcile()  # reconciliation while it waits for the operator
    [shown] = unknown_purchases(session=fresh(session), order_id=order.id)
    assert shown.reference == purchase.reference
    assert shown.actions == (
        "confirm not charged, send again",
        "bought: enter the keys",
        "bought: fetch by provider order id",
    )
    assert sim_server.stats("codeswholesale")["order_requests"] == 1, "never sent again"
    assert len(sim_server.orders("codeswholesale")) == 1
    assert sim_server.orders("kinguin") == [], "never bought from the next provider"
    assert delivered(session, order) == []


def test_lost_answer_the_provider_positively_lacks_is_sent_again_under_the_same_reference(
    session, queue, sim_server
):
    product = make_product(session)
    offers_at_both(session, sim_server, product)
    # the first order request is dropped before the provider does anything with it
    sim_server.control("codeswholesale", drop_before_charge=1)
    # an absent answer is trusted 6 s after the request; each answer may take 3 s on a
    # loaded machine without counting as lost
    queue.env["KEYSHOP_PROVIDER_TIMEOUT"] = "3"
    order = make_order(session, [(product, 2)], status="pending_payment")
    queue.start_worker()
    send_test_event(order_number=order.number)
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
    [purchase] = fresh(session).exec(select(ProviderPurchase)).all()
    assert purchase.status == "completed" and purchase.attempts == 2
    assert sim_server.stats("codeswholesale")["order_requests"] == 2
    [placed] = sim_server.orders("codeswholesale")
    assert placed["reference"] == purchase.reference, "sent again under the same reference"
    assert sim_server.orders("kinguin") == [], "never bought from the next provider"
    assert len(delivered(session, order)) == 2


def test_lost_answer_whose_lookup_finds_the_order_collects_its_keys(session, queue, sim_server):
    product = make_product(session)
    offers_at_both(session, sim_server, product)
    sim_server.control("codeswholesale", crash_after_charge=True)
    order = make_order(session, [(product, 3)], status="pending_payment")
    queue.start_worker()
    send_test_event(order_number=order.number)
    wait_for(lambda: status_of(session, order) == "fulfilled", what="the order to be fulfilled")
    keys = delivered(session, order)
    assert len(keys) == 3 and {k.supplier for k in keys} == {"codeswholesale"}
    assert sim_server.stats("codeswholesale")["order_requests"] == 1
    assert len(sim_server.orders("codeswholesale")) == 1 and sim_server.orders("kinguin") == []
