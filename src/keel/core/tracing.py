"""Tracing: OpenTelemetry spans for requests, SQL, outgoing HTTP and jobs, sent over OTLP/HTTP.

Off by default (`KEEL_OTEL_ENABLED`), and off costs nothing: this module loads only the
OpenTelemetry API (which FastAPI imports anyway), never the SDK, the exporter or an
instrumentation, and with tracing off no instrumentation, exporter, thread or log processor
is installed.

On, every app gets a `TracerProvider` of its own, used explicitly by each instrumentation; the
process-global provider is never set. Several apps in one process (the test suite) therefore
never share spans, and FastAPI's native telemetry, which switches itself on when a global
provider exists, stays off instead of tracing every request a second time.

- requests: `instrument_app(app, settings)`, called once by `create_app`, adds the server span
  (named after the route template, `http.route` set; `/health`, `/ready` and `/metrics` are not
  traced) and, through the app's lifespan, SQL spans on the app's engine and the final flush;
- SQL: `Tracing.instrument_engine(engine)`, one client span per statement (`db.statement`);
- outgoing HTTP: `Tracing.instrument_client(client)` for an httpx client (W3C `traceparent` is
  propagated to the callee);
- jobs: `job_span(tracing, kind, job_id, attempt)` around a job's run, and
  `record_job_outcome(...)` for how it ended;
- logs: `add_trace_ids` puts `trace_id` and `span_id` on every line written inside a sampled span.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import structlog
from opentelemetry import trace
from opentelemetry.context import Context

from keel import __version__
from keel.core.config import CoreSettings, parse_otlp_headers
from keel.core.reads import TRACED_ENGINE_ATTRIBUTE  # on a sync Engine: SQL spans wired

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine
    from structlog.types import EventDict

log = structlog.stdlib.get_logger(__name__)

TRACES_PATH = "/v1/traces"
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_EXCLUDED_PATHS = ("/health", "/ready", "/metrics")
"""Probes and scrapes: frequent, uninteresting, and they would drown the real traces."""

_APP_ATTRIBUTE = "keel_tracing"  # on app.state: the app's Tracing (also the idempotency mark)

JOB_ID = "keel.job.id"
JOB_KIND = "keel.job.kind"
JOB_ATTEMPT = "keel.job.attempt"
JOB_OUTCOME = "keel.job.outcome"
JOB_ERROR_OUTCOMES = frozenset({"failed", "retry_scheduled"})


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """What tracing needs to know; built from the settings by `tracing_config`."""

    enabled: bool = False
    endpoint: str = DEFAULT_ENDPOINT
    """OTLP/HTTP base URL (the collector's port 4318); traces go to `<endpoint>/v1/traces`."""
    service_name: str = "keel"
    service_version: str = __version__
    environment: str = "development"
    sample_ratio: float = 1.0
    """Share of new traces recorded; a request whose caller sampled it is always recorded."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every export, e.g. a vendor's API key."""
    export_timeout_seconds: float = 10.0
    excluded_paths: tuple[str, ...] = DEFAULT_EXCLUDED_PATHS

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError(f"sample ratio must be between 0 and 1, not {self.sample_ratio}")
        if self.export_timeout_seconds <= 0:
            raise ValueError("export timeout must be positive")

    @property
    def traces_endpoint(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith(TRACES_PATH) else base + TRACES_PATH

    @property
    def excluded_urls(self) -> str | None:
        """One regex over the URL the ASGI instrumentation checks (scheme://host/path)."""
        if not self.excluded_paths:
            return None
        paths = "|".join(re.escape(path.rstrip("/") or "/") for path in self.excluded_paths)
        return rf"^[a-z]+://[^/]*(?:{paths})/?$"


def tracing_config(settings: CoreSettings) -> TracingConfig:
    """The tracing part of the settings (`KEEL_OTEL_*`)."""
    headers = settings.otel_headers
    return TracingConfig(
        enabled=settings.otel_enabled,
        endpoint=settings.otel_exporter_endpoint,
        service_name=settings.otel_service_name,
        environment=settings.environment,
        sample_ratio=settings.otel_sample_ratio,
        headers=parse_otlp_headers(headers.get_secret_value() if headers else None),
        export_timeout_seconds=settings.otel_export_timeout_seconds,
        excluded_paths=tuple(settings.otel_excluded_paths),
    )


class Tracing:
    """One app's (or worker's) tracer provider, its exporter, and what it instruments."""

    def __init__(
        self, config: TracingConfig, provider: TracerProvider, processor: BatchSpanProcessor
    ) -> None:
        self.config = config
        self.provider = provider
        self._processor = processor
        self.tracer: trace.Tracer = provider.get_tracer("keel", __version__)
        self._closed = False

    def instrument_app(self, app: FastAPI) -> None:
        """Server spans for every request of `app` (idempotent; before the app starts)."""
        if getattr(app, "_is_instrumented_by_opentelemetry", False):
            return
        if app.middleware_stack is not None:
            raise RuntimeError("instrument the app before it starts serving")
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider
        from starlette.background import BackgroundTask

        # The instrumentor patches BackgroundTask.__call__ process-wide, with the tracer of
        # the first app it meets, forever. Marking it as patched already keeps it from doing
        # so: background tasks run inside the request's server span anyway.
        if not hasattr(BackgroundTask, "_otel_original_call"):
            BackgroundTask._otel_original_call = BackgroundTask.__call__  # type: ignore[attr-defined]
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            meter_provider=NoOpMeterProvider(),  # metrics are Prometheus's job here
            excluded_urls=self.config.excluded_urls or "",
            exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
            server_request_hook=_plain_route_template,
        )

    def instrument_engine(self, engine: AsyncEngine | Engine) -> None:
        """A client span per SQL statement on `engine` run inside a trace (idempotent).

        Statements outside any trace (the job sweeper polling every few seconds, migrations)
        get no span: each would otherwise be a one-span trace of its own, many per minute.

        Deliberately not `SQLAlchemyInstrumentor().instrument(engine=...)`: that instrumentor
        is a process-wide singleton which also patches `create_engine` for every engine made
        afterwards, with the first provider it was given.
        """
        from sqlalchemy.ext.asyncio import AsyncEngine

        sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
        if getattr(sync_engine, TRACED_ENGINE_ATTRIBUTE, False):
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.instrumentation.sqlalchemy.version import (
            __version__ as sqlalchemy_instrumentation_version,
        )
        from opentelemetry.metrics import NoOpMeterProvider

        tracer = _InsideTracesOnly(
            self.provider.get_tracer(
                "opentelemetry.instrumentation.sqlalchemy", sqlalchemy_instrumentation_version
            )
        )
        unused_pool_counter = (
            NoOpMeterProvider().get_meter("keel").create_up_down_counter("db.client.connections")
        )
        EngineTracer(tracer, sync_engine, unused_pool_counter)  # type: ignore[no-untyped-call]
        setattr(sync_engine, TRACED_ENGINE_ATTRIBUTE, True)

    def instrument_client(self, client: httpx.AsyncClient | httpx.Client) -> None:
        """A client span per request made with `client`, and `traceparent` sent (idempotent)."""
        if getattr(client, "_is_instrumented_by_opentelemetry", False):
            return
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        HTTPXClientInstrumentor.instrument_client(
            client, tracer_provider=self.provider, meter_provider=NoOpMeterProvider()
        )

    @contextmanager
    def job_span(self, kind: str, job_id: object, attempt: int) -> Iterator[trace.Span]:
        """A consumer span for one attempt of a job: a trace of its own, linked to whatever
        span was current (the request that enqueued it, when the job runs in-process)."""
        current = trace.get_current_span().get_span_context()
        links = [trace.Link(current)] if current.is_valid else None
        with self.tracer.start_as_current_span(
            f"job {kind}",
            context=Context(),  # a root: a job outlives the request that enqueued it
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={JOB_KIND: kind, JOB_ID: str(job_id), JOB_ATTEMPT: attempt},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            token = _JOB_SPAN.set(span)
            try:
                yield span
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                raise
            except BaseException:  # cancelled: handed back to the queue, not a failure
                if span.is_recording() and JOB_OUTCOME not in _attributes(span):
                    span.set_attribute(JOB_OUTCOME, "interrupted")
                raise
            finally:
                _JOB_SPAN.reset(token)

    def force_flush(self, timeout_seconds: float | None = None) -> bool:
        """Export every finished span now (blocking: call it from a thread in async code)."""
        timeout = self.config.export_timeout_seconds if timeout_seconds is None else timeout_seconds
        return bool(self.provider.force_flush(int(timeout * 1000)))

    def shutdown(self) -> None:
        """Flush and stop the exporter (blocking; idempotent). Later spans are dropped.

        Bounded by one export timeout: the processor would otherwise try each queued batch in
        turn against an unreachable collector, each with its own retries, before giving up.
        """
        if self._closed:
            return
        self._closed = True
        deadline = threading.Timer(
            self.config.export_timeout_seconds, self._processor.span_exporter.shutdown
        )
        deadline.daemon = True
        deadline.start()
        try:
            self.provider.shutdown()
        finally:
            deadline.cancel()

    async def aclose(self) -> None:
        """`shutdown` without blocking the event loop."""
        await asyncio.to_thread(self.shutdown)


class _InsideTracesOnly:
    """A tracer whose spans exist only as children: a span with no parent is never started."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        **options: Any,
    ) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, kind, **options)


_JOB_SPAN: contextvars.ContextVar[trace.Span | None] = contextvars.ContextVar(
    "keel_job_span", default=None
)


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def _plain_route_template(span: trace.Span, _scope: dict[str, Any] | None) -> None:
    """Name the server span by the template the logs and metrics use (`{order_id}`): the
    instrumentation reads `route.path`, which keeps Starlette's convertor (`{order_id:uuid}`)."""
    route = _attributes(span).get("http.route")
    if not isinstance(route, str) or ":" not in route:
        return
    plain = _CONVERTOR.sub(r"{\1}", route)
    span.set_attribute("http.route", plain)
    span.update_name(_CONVERTOR.sub(r"{\1}", getattr(span, "name", plain)))


def _attributes(span: trace.Span) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], getattr(span, "attributes", None) or {})


def setup_tracing(config: TracingConfig) -> Tracing | None:
    """A provider exporting to the configured collector, or None when tracing is off.

    The provider is never made the global one, and it is not shut down at interpreter exit:
    its owner (the app's lifespan, or `keel worker`) calls `aclose()`.
    """
    if not config.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create(
        {
            "service.name": config.service_name,
            "service.version": config.service_version,
            "deployment.environment.name": config.environment,
        }
    )
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        shutdown_on_exit=False,
    )
    exporter = OTLPSpanExporter(
        endpoint=config.traces_endpoint,
        headers=dict(config.headers),
        timeout=config.export_timeout_seconds,
        meter_provider=NoOpMeterProvider(),
    )
    processor = BatchSpanProcessor(exporter, meter_provider=NoOpMeterProvider())
    provider.add_span_processor(processor)
    log.info(
        "tracing_enabled",
        endpoint=config.traces_endpoint,
        service=config.service_name,
        sample_ratio=config.sample_ratio,
    )
    return Tracing(config, provider, processor)


def instrument_app(app: FastAPI, settings: CoreSettings | TracingConfig) -> Tracing | None:
    """Trace `app` if tracing is on: requests, the SQL of the app's engine, and a final flush.

    The one call `create_app` makes. Idempotent: a second call returns the app's `Tracing`
    without instrumenting anything twice. Must run before the app starts. Returns None (and
    changes nothing) when tracing is off.
    """
    existing = tracing_of(app)
    if existing is not None:
        return existing
    config = settings if isinstance(settings, TracingConfig) else tracing_config(settings)
    tracing = setup_tracing(config)
    if tracing is None:
        return None
    tracing.instrument_app(app)
    _trace_lifespan(app, tracing)
    setattr(app.state, _APP_ATTRIBUTE, tracing)
    return tracing


def tracing_of(app: FastAPI) -> Tracing | None:
    """The app's `Tracing`, if `instrument_app` turned tracing on for it."""
    return cast("Tracing | None", getattr(app.state, _APP_ATTRIBUTE, None))


def _trace_lifespan(app: FastAPI, tracing: Tracing) -> None:
    """Wrap the app's lifespan: SQL spans on the engine it opens, and a flush once it closed."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        try:
            async with cast(AbstractAsyncContextManager[Any], inner(application)) as state:
                database = state.get("database") if isinstance(state, MutableMapping) else None
                engine = getattr(database, "engine", None)
                if engine is not None:
                    tracing.instrument_engine(engine)
                yield state
        finally:
            await tracing.aclose()  # after every resource closed, so their last spans go too

    app.router.lifespan_context = lifespan


@contextmanager
def job_span(tracing: Tracing | None, kind: str, job_id: object, attempt: int) -> Iterator[None]:
    """The span of one job attempt (see `Tracing.job_span`); nothing at all without tracing."""
    if tracing is None:
        yield
        return
    with tracing.job_span(kind, job_id, attempt):
        yield


def record_job_outcome(tracing: Tracing | None, outcome: str, error: str | None = None) -> None:
    """Note how the current job attempt ended (`succeeded`, `failed`, `retry_scheduled`, ...)
    on its span; `failed` and `retry_scheduled` mark the span as an error."""
    if tracing is None:
        return
    span = _JOB_SPAN.get()
    if span is None or not span.is_recording():
        return
    span.set_attribute(JOB_OUTCOME, outcome)
    if outcome in JOB_ERROR_OUTCOMES:
        span.set_status(trace.StatusCode.ERROR, error)


def add_trace_ids(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: `trace_id` and `span_id` (hex) of the current sampled span.

    Register it only when tracing is on; it then costs a context lookup per line outside a
    span. Lines of unsampled traces get no ids, since no trace exists to look them up in.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict
