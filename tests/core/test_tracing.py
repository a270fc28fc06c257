"""Tracing: spans for requests, SQL, outgoing HTTP and jobs reach a real OTLP/HTTP receiver,
log lines carry the trace id, and with tracing off nothing of it is installed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.config import parse_otlp_headers
from keel.core.errors import ConfigError
from keel.core.logging import HANDLER_NAME, WRITER_THREAD, configure_logging
from keel.core.tracing import (
    JOB_ATTEMPT,
    JOB_ID,
    JOB_KIND,
    JOB_OUTCOME,
    TracingConfig,
    add_trace_ids,
    instrument_app,
    job_span,
    record_job_outcome,
    setup_tracing,
    tracing_config,
    tracing_of,
)
from keel.main import create_app
from keel.settings import Settings
from tests.conftest import MakeSettings
from tests.support import routes
from tests.support.app import isolated_app, serve
from tests.support.databases import opened
from tests.support.jobs import enqueue, jobs_client, live_admin, wait_for_job
from tests.support.network import closed_port
from tests.support.otlp import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_SERVER,
    STATUS_ERROR,
    Collector,
    json_lines,
    one,
    statement,
    traced_config,
)

DB_ROUTE = "/_test/db"
"""A test route with one SQL statement (`tests/support/routes.py`), on every app here."""
PROBE_ROUTE = "/_test/probe/{label}"


@pytest.fixture
def traced(collector: Collector) -> TracingConfig:
    return traced_config(collector)


@contextmanager
def captured_log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON log lines as Keel's handler renders them, with `add_trace_ids` registered where the
    wiring registers it: on the handler's formatter, which every line (structlog's and the
    standard library's) passes through."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.add_log_level],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                add_trace_ids,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]
    finally:
        root.removeHandler(handler)


def otel_middleware_installed(app: FastAPI) -> bool:
    layer: Any = app.middleware_stack
    seen: set[int] = set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        if isinstance(layer, OpenTelemetryMiddleware):
            return True
        layer = getattr(layer, "app", None)
    return False


# --- configuration -----------------------------------------------------------------------


def test_off_by_default(settings: Settings) -> None:
    config = tracing_config(settings)
    assert config.enabled is False
    assert config.environment == "test"
    assert setup_tracing(config) is None


def test_traces_endpoint_is_the_otlp_http_traces_path() -> None:
    assert (
        TracingConfig(endpoint="http://otel:4318").traces_endpoint == "http://otel:4318/v1/traces"
    )
    assert TracingConfig(endpoint="http://otel:4318/").traces_endpoint == (
        "http://otel:4318/v1/traces"
    )
    assert TracingConfig(endpoint="https://x.example/v1/traces").traces_endpoint == (
        "https://x.example/v1/traces"
    )


def test_headers_are_parsed_like_otel_exporter_otlp_headers() -> None:
    assert parse_otlp_headers(None) == {}
    assert parse_otlp_headers(" X-Api-Key = a%20b , tenant=t1,") == {
        "x-api-key": "a b",
        "tenant": "t1",
    }
    with pytest.raises(ValueError, match="entry 2 is not `name=value`") as refused:
        parse_otlp_headers("tenant=t1,Bearer s3cr3t")
    assert "s3cr3t" not in str(refused.value)  # a malformed entry may be a secret


def test_settings_check_the_headers_without_importing_tracing() -> None:
    """One direction only: tracing reads the settings; the settings never load tracing."""
    script = """
import sys
from keel.settings import load_settings
load_settings(otel_headers="tenant=t1", _env_file=None)
assert "keel.core.tracing" not in sys.modules, "config imported tracing"
print("clean")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_sample_ratio_must_be_a_share(ratio: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        TracingConfig(sample_ratio=ratio)


# --- off: nothing installed, nothing loaded ----------------------------------------------


async def test_with_tracing_off_the_app_has_no_instrumentation(
    settings: Settings, db_connection: AsyncConnection
) -> None:
    app = isolated_app(settings, db_connection)
    app.include_router(routes.router)
    assert instrument_app(app, settings) is None
    assert tracing_of(app) is None
    with captured_log_lines() as lines:
        async with serve(app) as http:
            response = await http.get(DB_ROUTE)
    assert response.status_code == 200
    assert not otel_middleware_installed(app)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    keel_handler = next(h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME)
    assert isinstance(keel_handler.formatter, structlog.stdlib.ProcessorFormatter)
    assert add_trace_ids not in keel_handler.formatter.processors
    access = next(line for line in lines() if line.get("event") == "request")
    assert "trace_id" not in access


def test_with_tracing_off_no_sdk_exporter_or_instrumentation_is_even_imported(
    tmp_path: Path,
) -> None:
    script = f"""
import sys, threading
from keel.settings import load_settings
from keel.core.tracing import instrument_app
from keel.main import create_app
settings = load_settings(environment="test", database_url="sqlite+aiosqlite:///{tmp_path}/t.db",
                         storage_url="memory://", _env_file=None)
def threads():  # the log writer is logging's, not tracing's
    return sorted(t.name for t in threading.enumerate() if t.name != "{WRITER_THREAD}")
before = threads()
app = create_app(settings)
assert instrument_app(app, settings) is None
heavy = sorted(m for m in sys.modules if m.startswith(
    ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.instrumentation")))
assert not heavy, heavy
assert threads() == before, threads()
print("clean")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("clean")


# --- on: requests, SQL and logs end to end -----------------------------------------------


async def test_request_spans_with_sql_children_and_the_trace_id_in_log_lines(
    live_settings: Settings, traced: TracingConfig, collector: Collector
) -> None:
    app = create_app(live_settings)
    app.include_router(routes.router)
    tracing = instrument_app(app, traced)
    assert tracing is not None
    assert instrument_app(app, traced) is tracing  # idempotent: nothing instrumented twice
    assert tracing_of(app) is tracing
    with captured_log_lines() as lines:
        async with serve(app) as http:
            missing = await http.get(DB_ROUTE)
            health = await http.get("/health")
            assert otel_middleware_installed(app)
    assert missing.json() == {"value": 1}
    assert health.status_code == 200

    # The lifespan's end flushed everything: the spans are at the collector already.
    spans = collector.snapshot()
    server = one(spans, lambda s: s.kind == SPAN_KIND_SERVER)
    assert server.name == f"GET {DB_ROUTE}"
    assert server.attributes["http.route"] == DB_ROUTE
    assert server.parent_span_id == ""
    assert not any("/health" in s.name for s in spans)  # probes are not traced
    assert server.resource["service.name"] == "keel-test"
    assert server.resource["service.version"]
    assert server.resource["deployment.environment.name"] == "test"

    sql = [s for s in spans if statement(s)]
    product_queries = [s for s in sql if statement(s) == "SELECT 1"]
    assert product_queries, [statement(s) for s in sql]
    # Every statement is the request's, directly under it; the job sweeper's polling, in
    # no trace, made no span.
    for span in sql:
        assert span.kind == SPAN_KIND_CLIENT
        assert span.trace_id == server.trace_id
        assert span.parent_span_id == server.span_id
        assert span.attributes["db.system"] in {"sqlite", "postgresql"}
    assert len(product_queries) == len({s.span_id for s in product_queries})

    access = next(
        line for line in lines() if line.get("event") == "request" and line.get("status") == 200
    )
    assert access["trace_id"] == server.trace_id
    assert access["span_id"] == server.span_id
    assert access["request_id"] == missing.headers["x-request-id"]
    assert all(h.get("x-collector-key") == "k-123" for h in collector.export_headers)


async def test_force_flush_exports_while_the_app_runs(
    settings: Settings,
    db_connection: AsyncConnection,
    traced: TracingConfig,
    collector: Collector,
) -> None:
    app = isolated_app(settings, db_connection)
    app.include_router(routes.router)
    tracing = instrument_app(app, traced)
    assert tracing is not None
    async with serve(app) as http:
        assert (await http.get(f"/_test/probe/{uuid.uuid4().hex}")).status_code == 200
        assert await asyncio.to_thread(tracing.force_flush)
        server = one(collector.snapshot(), lambda s: s.kind == SPAN_KIND_SERVER)
        assert server.attributes["http.route"] == PROBE_ROUTE  # the template, not the path


def test_instrumenting_a_running_app_is_refused(traced: TracingConfig) -> None:
    """Its middleware stack is built: a server span added now would silently never run."""
    tracing = setup_tracing(traced)
    assert tracing is not None
    running = FastAPI()
    running.middleware_stack = running.build_middleware_stack()
    try:
        with pytest.raises(RuntimeError, match="before it starts"):
            tracing.instrument_app(running)
    finally:
        tracing.shutdown()


async def test_an_incoming_traceparent_continues_the_callers_trace(
    settings: Settings, db_connection: AsyncConnection, collector: Collector
) -> None:
    # Sampling 0 records no trace of its own, but a caller's sampled trace is continued.
    app = isolated_app(settings, db_connection)
    app.include_router(routes.router)
    instrument_app(app, TracingConfig(enabled=True, endpoint=collector.url, sample_ratio=0.0))
    caller_trace = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    with captured_log_lines() as lines:
        async with serve(app) as http:
            unsampled = await http.get(DB_ROUTE)
            continued = await http.get(
                DB_ROUTE, headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
            )
    assert unsampled.status_code == continued.status_code == 200

    server = one(collector.snapshot(), lambda s: s.kind == SPAN_KIND_SERVER)
    assert server.trace_id == caller_trace
    assert server.parent_span_id == caller_span
    access = [line for line in lines() if line.get("event") == "request"]
    assert [line.get("trace_id") for line in access] == [None, caller_trace]


async def test_sample_ratio_zero_exports_nothing(
    settings: Settings, db_connection: AsyncConnection, collector: Collector
) -> None:
    app = isolated_app(settings, db_connection)
    app.include_router(routes.router)
    tracing = instrument_app(
        app, TracingConfig(enabled=True, endpoint=collector.url, sample_ratio=0.0)
    )
    assert tracing is not None
    async with serve(app) as http:
        for _ in range(5):
            assert (await http.get(DB_ROUTE)).status_code == 200
    # Shut down (flushed) with the app: anything sampled would be here by now.
    assert collector.snapshot() == []
    assert collector.export_headers == []


async def test_an_unreachable_collector_never_fails_requests_or_stalls_shutdown(
    settings: Settings, db_connection: AsyncConnection
) -> None:
    app = isolated_app(settings, db_connection)
    app.include_router(routes.router)
    tracing = instrument_app(
        app,
        TracingConfig(
            enabled=True,
            endpoint=f"http://127.0.0.1:{closed_port()}",
            export_timeout_seconds=1,
        ),
    )
    assert tracing is not None
    async with serve(app) as http:
        for _ in range(3):
            assert (await http.get(DB_ROUTE)).status_code == 200
        await asyncio.to_thread(tracing.force_flush)  # fails inside, raises nothing
        assert (await http.get(DB_ROUTE)).status_code == 200
        started = time.monotonic()
    assert time.monotonic() - started < 5  # shutdown gives up after the export timeout


# --- jobs --------------------------------------------------------------------------------


async def test_job_span_is_a_linked_root_with_its_sql_and_outcome(
    database_url: str, traced: TracingConfig, collector: Collector
) -> None:
    tracing = setup_tracing(traced)
    assert tracing is not None
    job_id = uuid.uuid4()
    try:
        async with opened(database_url) as database:
            tracing.instrument_engine(database.engine)
            tracing.instrument_engine(database.engine)  # idempotent
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 7"))  # in no trace: no span
            with tracing.tracer.start_as_current_span("enqueue") as enqueue:
                with job_span(tracing, "test.echo", job_id, 2):
                    async with database.engine.connect() as connection:
                        await connection.execute(text("SELECT 42"))
                    logging.getLogger("keel.jobs.test").info("inside the job")
                    record_job_outcome(tracing, "succeeded")
                record_job_outcome(tracing, "failed", "outside any job: ignored")
    finally:
        await tracing.aclose()

    spans = collector.snapshot()
    job = one(spans, lambda s: s.kind == SPAN_KIND_CONSUMER)
    assert job.name == "job test.echo"
    assert job.parent_span_id == ""  # a trace of its own ...
    enqueue_context = enqueue.get_span_context()
    assert job.trace_id != format(enqueue_context.trace_id, "032x")
    assert job.links == [  # ... linked to where it came from
        (format(enqueue_context.trace_id, "032x"), format(enqueue_context.span_id, "016x"))
    ]
    assert job.attributes[JOB_KIND] == "test.echo"
    assert job.attributes[JOB_ID] == str(job_id)
    assert job.attributes[JOB_ATTEMPT] == 2
    assert job.attributes[JOB_OUTCOME] == "succeeded"
    assert job.status_code != STATUS_ERROR
    assert not [s for s in spans if statement(s) == "SELECT 7"]
    query = one(spans, lambda s: statement(s) == "SELECT 42")
    assert (query.trace_id, query.parent_span_id) == (job.trace_id, job.span_id)


async def test_job_span_records_failures(traced: TracingConfig, collector: Collector) -> None:
    tracing = setup_tracing(traced)
    assert tracing is not None
    try:
        with (
            pytest.raises(RuntimeError, match="handler blew up"),
            job_span(tracing, "test.flaky", "job-1", 1),
        ):
            raise RuntimeError("handler blew up")
        with job_span(tracing, "test.broken", "job-2", 1):
            record_job_outcome(tracing, "failed", "the input can never work")
        with pytest.raises(asyncio.CancelledError), job_span(tracing, "test.slow", "job-3", 1):
            raise asyncio.CancelledError
    finally:
        await tracing.aclose()

    spans = {s.attributes[JOB_ID]: s for s in collector.snapshot()}
    raised = spans["job-1"]
    assert raised.status_code == STATUS_ERROR
    assert raised.status_message == "RuntimeError: handler blew up"
    assert [name for name, _ in raised.events] == ["exception"]
    failed = spans["job-2"]
    assert failed.status_code == STATUS_ERROR
    assert failed.status_message == "the input can never work"
    assert failed.attributes[JOB_OUTCOME] == "failed"
    interrupted = spans["job-3"]
    assert interrupted.status_code != STATUS_ERROR
    assert interrupted.attributes[JOB_OUTCOME] == "interrupted"


def test_job_span_without_tracing_does_nothing() -> None:
    with job_span(None, "test.echo", "job", 1):
        record_job_outcome(None, "failed", "nothing to record it on")


# --- the log processor -------------------------------------------------------------------


def test_trace_ids_only_inside_a_sampled_span() -> None:
    assert add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}

    sampled = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    with sampled.start_as_current_span("work") as span:
        event = add_trace_ids(None, "info", {"event": "inside"})
    context = span.get_span_context()
    assert event == {
        "event": "inside",
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }

    unsampled = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False).get_tracer("test")
    with unsampled.start_as_current_span("work"):
        assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}


def test_tracing_config_defaults(make_settings: MakeSettings) -> None:
    config = tracing_config(make_settings())
    assert config.endpoint == "http://127.0.0.1:4318"
    assert config.service_name == "keel"
    assert config.sample_ratio == 1.0
    assert config.excluded_paths == ("/health", "/ready", "/metrics")


# --- wired in: settings, create_app, the lifespan, the gateway, the job runner, the logs ---


def test_settings_carry_the_tracing_configuration(make_settings: MakeSettings) -> None:
    settings = make_settings(
        otel_enabled=True,
        otel_exporter_endpoint="http://otel:4318",
        otel_service_name="shop",
        otel_sample_ratio=0.25,
        otel_headers="X-Api-Key=abc",
        otel_export_timeout_seconds=3,
        otel_excluded_paths="/health,/internal",
    )
    assert tracing_config(settings) == TracingConfig(
        enabled=True,
        endpoint="http://otel:4318",
        service_name="shop",
        environment="test",
        sample_ratio=0.25,
        headers={"x-api-key": "abc"},
        export_timeout_seconds=3,
        excluded_paths=("/health", "/internal"),
    )
    assert settings.masked()["otel_headers"] == "**********"


def test_bad_tracing_settings_are_refused_together_without_echoing_secrets(
    make_settings: MakeSettings,
) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(
            otel_headers="Bearer s3cr3t",
            otel_sample_ratio=2,
            otel_exporter_endpoint="otel:4318",
        )
    problems = "\n".join(refused.value.problems)
    for name in ("KEEL_OTEL_HEADERS", "KEEL_OTEL_SAMPLE_RATIO", "KEEL_OTEL_EXPORTER_ENDPOINT"):
        assert name in problems
    assert "s3cr3t" not in problems


async def test_jobs_run_in_spans_of_their_own_with_their_sql_and_logs(
    fast_jobs_settings: Settings, collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = fast_jobs_settings.model_copy(
        update={"otel_enabled": True, "otel_exporter_endpoint": collector.url, "log_json": True}
    )
    capsys.readouterr()
    try:
        async with jobs_client(settings) as http:
            admin = await live_admin(http, settings)
            succeeding = await enqueue(http, admin, "test.echo", x=1)
            failing = await enqueue(http, admin, "test.broken")
            await wait_for_job(http, admin, succeeding)
            await wait_for_job(http, admin, failing)
    finally:
        configure_logging()

    spans = collector.snapshot()
    jobs = {s.attributes[JOB_ID]: s for s in spans if s.kind == SPAN_KIND_CONSUMER}
    succeeded, failed = jobs[succeeding], jobs[failing]
    enqueued = {
        (s.trace_id, s.span_id) for s in spans if s.attributes.get("http.route") == "/_test/jobs"
    }
    assert set(succeeded.links) <= enqueued  # in-process, linked to the request that enqueued it
    assert succeeded.name == "job test.echo"
    assert succeeded.attributes[JOB_OUTCOME] == "succeeded"
    assert succeeded.status_code != STATUS_ERROR
    assert failed.attributes[JOB_OUTCOME] == "failed"
    assert failed.status_code == STATUS_ERROR
    assert failed.status_message == "the input can never work"
    in_job = [s for s in spans if s.trace_id == succeeded.trace_id]
    finishing = [s for s in in_job if statement(s).startswith("UPDATE jobs")]
    assert finishing
    assert all(s.parent_span_id == succeeded.span_id for s in finishing)

    lines = json_lines(capsys.readouterr().out)
    job_lines = [line for line in lines if line.get("job_id") == succeeding]
    assert {"job_started", "job_finished"} <= {line["event"] for line in job_lines}
    assert {line.get("trace_id") for line in job_lines} == {succeeded.trace_id}
