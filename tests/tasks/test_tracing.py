"""OpenTelemetry traces (core/tracing.py), recorded by the SDK's in-memory exporter: one
order's payment → fulfilment → provider calls → delivery e-mail is one tree, even though
the work passes through the queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlmodel import select

from core import crypto
from core.models import Key, ProviderOffer
from core.services.fulfilment import Retry, fulfil_order
from core.services.test_payments import send_test_event
from tests.factories import fresh, make_keys, make_order, make_product

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _recorded() -> None:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):  # some earlier test installed the SDK
        current.add_span_processor(SimpleSpanProcessor(EXPORTER))
    else:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def one_tree(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    """The root, after checking that every span is in one trace under it."""
    assert len({s.context.trace_id for s in spans}) == 1, [s.name for s in spans]
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1, [s.name for s in roots]
    orphans = [s.name for s in spans if s.parent is not None and s.parent.span_id not in ids]
    assert not orphans, orphans
    return roots[0]


def test_payment_to_delivery_through_the_queue_is_one_tree(
    session, spans, test_settings, tmp_path
) -> None:
    """The jobs go through a real (SQLite) Huey queue, and each is run the way a consumer
    runs it: taken off the queue and executed in an empty context, as in another process.
    Only the traceparent each message carries can tie its spans to the payment."""
    import tasks
    from core import config, jobs

    config.use_settings(
        test_settings.model_copy(update={"queue_url": f"sqlite:///{tmp_path}/q.db"})
    )
    huey = tasks.configure()
    jobs.set_dispatcher(tasks._dispatch)
    try:
        product = make_product(session)
        make_keys(session, product, 1)
        order = make_order(session, [(product, 1)], status="pending_payment")
        send_test_event(order_number=order.number)
        ran = []
        while (task := huey.dequeue()) is not None:
            token = otel_context.attach(otel_context.Context())  # a consumer's empty context
            try:
                huey.execute(task)
            finally:
                otel_context.detach(token)
            ran.append(task.name)
    finally:
        huey.flush()
        tasks.configure(immediate=True)
        jobs.set_dispatcher(None)
        config.use_settings(test_settings)
    assert ran == ["process_webhook", "send_due_order_emails"], ran
    assert fresh(session).get(type(order), order.id).status == "fulfilled"
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    for step in ("webhook receive", "webhook process", "order fulfil", "order e-mail"):
        assert step in names, names
    root = one_tree(finished)
    assert root.name == "webhook receive" and root.attributes["keyshop.source"] == "stripe"
    by_name = {s.name: s for s in finished}
    # the e-mail batch was asked for by the fulfilment: its task's span hangs under it,
    # and the order's e-mail under the batch
    task = by_name["task send_due_order_emails"]
    assert task.parent.span_id == by_name["order fulfil"].context.span_id
    batch = by_name["order e-mails due"]
    assert batch.parent.span_id == task.context.span_id
    mail = by_name["order e-mail"]
    assert mail.parent.span_id == batch.context.span_id
    assert mail.attributes["keyshop.order_id"] == order.id
    assert mail.attributes["keyshop.kind"] == "delivered"
    assert by_name["order fulfil"].attributes["keyshop.order_id"] == order.id


def test_provider_calls_hang_under_the_fulfilment(
    session, providers, sim_server, queued_jobs, spans
) -> None:
    product = make_product(session, price_minor=1999)
    made = sim_server.add_product("codeswholesale", name=product.title, price="6.50", stock=5)
    session.add(
        ProviderOffer(
            provider="codeswholesale",
            external_id=str(made["external_id"]),
            product_id=product.id,
            name=product.title,
            cost_minor=650,
            currency="EUR",
            stock=5,
        )
    )
    session.commit()
    order = make_order(session, [(product, 1)])
    no_wait = Retry(attempts=3, base_seconds=0.01, sleep=lambda s: None)
    assert fulfil_order(order_id=order.id, clients=providers, retry=no_wait).outcome == (
        "fulfilled"
    )
    finished = spans.get_finished_spans()
    root = one_tree(finished)
    assert root.name == "order fulfil"
    by_id = {s.context.span_id: s for s in finished}
    [purchase] = [s for s in finished if s.name == "provider purchase"]
    assert purchase.parent.span_id == root.context.span_id
    assert purchase.attributes["keyshop.provider"] == "codeswholesale"
    calls = [s for s in finished if s.name.startswith("codeswholesale ")]
    # every provider call is under the fulfilment: the purchase's, or the order's own
    assert calls and all(by_id[s.parent.span_id] in (root, purchase) for s in calls), [
        (s.name, by_id[s.parent.span_id].name) for s in calls
    ]
    assert any(s.name.startswith("codeswholesale POST ") for s in calls)
    assert root.attributes["keyshop.order"] == order.number  # annotated on the way
    vault = crypto.get_vault()
    [key] = fresh(session).exec(select(Key).where(Key.status == "delivered")).all()
    code = vault.decrypt(key.ciphertext, key_version=key.key_version, row_id=key.id).decode()
    shown = repr([(s.name, dict(s.attributes), [e.attributes for e in s.events]) for s in finished])
    assert code not in shown  # no key in any span


def test_log_lines_carry_the_fields_of_the_work_at_hand(caplog) -> None:
    import logging

    from core import tracing

    log = logging.getLogger("keyshop.test")
    handler_filter = tracing.LogContext()
    with caplog.at_level(logging.INFO, logger="keyshop.test"):
        caplog.handler.addFilter(handler_filter)
        try:
            with tracing.span("order fulfil", **{"keyshop.order_id": 7}):
                tracing.annotate(order="KS-TEST-0001")
                with tracing.span("provider purchase", **{"keyshop.purchase_id": 3}):
                    log.info("inside")
                log.info("after", extra={"order": "explicit wins"})
            log.info("outside")
        finally:
            caplog.handler.removeFilter(handler_filter)
    inside, after, outside = caplog.records
    assert (inside.order_id, inside.order, inside.purchase_id) == (7, "KS-TEST-0001", 3)
    assert after.order == "explicit wins" and not hasattr(after, "purchase_id")
    assert not hasattr(outside, "order_id")


def test_a_real_workers_json_logs_carry_the_order_and_never_a_key(session, queue) -> None:
    """A real consumer process with KEYSHOP_LOG_FORMAT=json: its lines about the order
    carry the order's id as a field, and no delivered key appears anywhere in its log."""
    import json
    import time

    product = make_product(session)
    make_keys(session, product, 2)
    order = make_order(session, [(product, 2)], status="pending_payment")
    queue.env["KEYSHOP_LOG_FORMAT"] = "json"
    queue.start_worker()
    send_test_event(order_number=order.number)

    def fulfilled_line() -> list[dict]:
        entries = []
        for line in queue.logs.read_text().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return [
            e
            for e in entries
            if e.get("order_id") == order.id and "fulfilled" in e.get("message", "")
        ]

    deadline = time.monotonic() + 40
    while not (found := fulfilled_line()) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the log for the line, not sleeping as proof
    [entry] = found
    assert entry["logger"] == "keyshop.tasks" and entry["level"] == "INFO"
    vault = crypto.get_vault()
    keys = fresh(session).exec(select(Key).where(Key.status == "delivered")).all()
    assert len(keys) == 2
    log_text = queue.logs.read_text()
    for key in keys:
        code = vault.decrypt(key.ciphertext, key_version=key.key_version, row_id=key.id).decode()
        assert code not in log_text
