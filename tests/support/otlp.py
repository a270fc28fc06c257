"""A real OTLP/HTTP trace receiver on loopback: what a collector would receive, decoded.

`POST /v1/traces` takes the protobuf `ExportTraceServiceRequest` the exporter sends (gzip or
not) and keeps every span, flattened with its resource and scope. `POST /echo` answers 200 and
keeps the request headers, to play a downstream service that should receive `traceparent`.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keel.core.tracing import TracingConfig
from tests.support.servers import uvicorn_server

SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
SPAN_KIND_CONSUMER = 5
STATUS_ERROR = 2


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    links: list[tuple[str, str]]  # (trace id, span id)


@dataclass
class Collector:
    url: str
    spans: list[ExportedSpan] = field(default_factory=list)
    export_headers: list[dict[str, str]] = field(default_factory=list)
    echo_headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        found: list[ExportedSpan] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                found.extend(
                    ExportedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        scope=scope_spans.scope.name,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    )
                    for span in scope_spans.spans
                )
        with self.lock:
            self.spans.extend(found)
            self.export_headers.append(headers)

    def snapshot(self) -> list[ExportedSpan]:
        with self.lock:
            return list(self.spans)

    def wait_for(
        self, predicate: Callable[[list[ExportedSpan]], bool], *, within: float = 10.0
    ) -> list[ExportedSpan]:
        """Poll (blocking; call from a thread in async tests) until `predicate(spans)` holds."""
        deadline = time.monotonic() + within
        while True:
            spans = self.snapshot()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans never matched; got {[s.name for s in spans]}")
            time.sleep(0.02)


def collector_app(collector: Collector) -> Starlette:
    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        collector.received(message, dict(request.headers))
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    async def echo(request: Request) -> JSONResponse:
        with collector.lock:
            collector.echo_headers.append(dict(request.headers))
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/echo", echo, methods=["GET", "POST"]),
        ]
    )


@contextmanager
def running_collector() -> Iterator[Collector]:
    """An OTLP/HTTP receiver under uvicorn on 127.0.0.1; yields it (its `url` is the base)."""
    holder = Collector(url="")
    with uvicorn_server(collector_app(holder), name="test-otlp-collector") as url:
        holder.url = url
        yield holder


def traced_config(collector: Collector) -> TracingConfig:
    """Tracing on, exporting to `collector` (the features' tracing tests use it too)."""
    return TracingConfig(
        enabled=True,
        endpoint=collector.url,
        service_name="keel-test",
        environment="test",
        headers={"x-collector-key": "k-123"},
        export_timeout_seconds=5,
    )


def one(spans: list[ExportedSpan], predicate: Callable[[ExportedSpan], bool]) -> ExportedSpan:
    found = [span for span in spans if predicate(span)]
    assert len(found) == 1, [span.name for span in found]
    return found[0]


def statement(span: ExportedSpan) -> str:
    return str(span.attributes.get("db.statement") or span.attributes.get("db.query.text") or "")


def attribute(span: ExportedSpan, name: str, old_name: str) -> Any:
    """An attribute under its current semantic-convention name or the older one (the
    instrumentations emit either, depending on OTEL_SEMCONV_STABILITY_OPT_IN)."""
    return span.attributes.get(name, span.attributes.get(old_name))


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
