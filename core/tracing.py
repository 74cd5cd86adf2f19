"""OpenTelemetry traces: payment → fulfilment → provider calls → delivery as one tree.

Off by default. With ``KEYSHOP_OTLP_ENDPOINT`` set, :func:`configure` (called where the
web app and the task queue are built) exports spans over OTLP/HTTP to that collector.
Without it the OpenTelemetry API is a no-op and :func:`span` costs next to nothing.

Spans are opened in ``core`` where the work is: a webhook received, a webhook processed,
an order fulfilled, each provider call, an order e-mail sent. Work handed to the queue
carries the W3C ``traceparent`` of the span that queued it (:func:`carrier` at dispatch,
:func:`attached` in the task), so an order's trace stays one tree across processes.
Attributes carry order numbers, webhook ids and provider names, never a key or a token.

The same fields go into the log lines written meanwhile: every span opened here binds
its ``keyshop.*`` attributes (and :func:`annotate` adds some, such as the order number
once it is known) to a context variable that :class:`LogContext` copies onto each log
record, so a JSON log line carries ``order``, ``webhook_id`` or ``purchase_id`` without
each call passing them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

_configured: str | None = None
#: The log fields of the work at hand: one dict per open span, innermost last.
_log_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "keyshop_log_fields", default=None
)
P = ParamSpec("P")
R = TypeVar("R")


def tracer() -> trace.Tracer:
    return trace.get_tracer("keyshop")


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span named ``name`` under the current one; exceptions are recorded on it. Its
    ``keyshop.*`` attributes are also log fields while it is open."""
    clean = {k: v for k, v in attributes.items() if v is not None}
    fields = {**(_log_fields.get() or {})}
    fields.update({k.removeprefix("keyshop."): v for k, v in clean.items()})
    token = _log_fields.set(fields)
    try:
        with tracer().start_as_current_span(name, attributes=clean) as current:
            yield current
    finally:
        _log_fields.reset(token)


def annotate(**fields: Any) -> None:
    """Add ``fields`` to the current span (as ``keyshop.<name>``) and to the log fields of
    the rest of it: what the work learnt on the way, such as the order number."""
    clean = {k: v for k, v in fields.items() if v is not None}
    current = _log_fields.get()
    if current is not None:
        current.update(clean)
    span_now = trace.get_current_span()
    for name, value in clean.items():
        span_now.set_attribute(f"keyshop.{name}", value)


def log_fields() -> dict[str, Any]:
    return dict(_log_fields.get() or {})


class LogContext(logging.Filter):
    """Copies the log fields of the work at hand onto each record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_log_fields.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def traced(name: str, *attributes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated service in a span ``name``, with the keyword arguments named in
    ``attributes`` as ``keyshop.<name>`` attributes (services take keyword arguments)."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            values = {f"keyshop.{a}": kwargs.get(a) for a in attributes}
            with span(name, **values):
                return func(*args, **kwargs)

        return run

    return wrap


def carrier() -> dict[str, str]:
    """The current span's context as W3C headers (empty when there is none)."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


@contextlib.contextmanager
def attached(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Continue the trace ``headers`` (from :func:`carrier`) carry, if any."""
    if not headers:
        yield
        return
    token = otel_context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)


def configure(*, service: str, endpoint: str | None = None) -> bool:
    """Export spans of this process (named ``service``) over OTLP/HTTP to ``endpoint``
    (default: ``KEYSHOP_OTLP_ENDPOINT``). Returns whether tracing is on. Once per
    process: OpenTelemetry's global tracer provider cannot be replaced."""
    global _configured
    if endpoint is None:
        from core.config import get_settings

        endpoint = get_settings().otlp_endpoint
    if not endpoint or _configured is not None:
        return _configured is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))
    )
    trace.set_tracer_provider(provider)
    _configured = endpoint
    return True
