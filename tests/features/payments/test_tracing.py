"""Outgoing HTTP (the gateway's client) is traced: a client span per call, and the trace
travels on in `traceparent`."""

from __future__ import annotations

import asyncio

import httpx

from keel.core.tracing import setup_tracing
from tests.features.payments.support import running_gateway
from tests.support.otlp import (
    SPAN_KIND_CLIENT,
    Collector,
    attribute,
    one,
    traced_config,
)


async def test_httpx_calls_are_client_spans_and_carry_traceparent(
    collector: Collector,
) -> None:
    tracing = setup_tracing(traced_config(collector))
    assert tracing is not None
    try:
        with running_gateway() as (gateway_url, script):
            async with httpx.AsyncClient(base_url=gateway_url) as client:
                tracing.instrument_client(client)
                tracing.instrument_client(client)  # idempotent
                with tracing.tracer.start_as_current_span("checkout") as checkout:
                    charged = await client.post(
                        "/charges",
                        json={
                            "amount": 1999,
                            "currency": "EUR",
                            "reference": "order-1",
                            "card": {"number": "4242424242424242"},
                        },
                        headers={"Idempotency-Key": "key-1"},
                    )
                    echoed = await client.get(f"{collector.url}/echo")
        assert charged.status_code == 200
        assert echoed.status_code == 200
        assert script.requests[0]["key"] == "key-1"
        assert await asyncio.to_thread(tracing.force_flush)
    finally:
        await tracing.aclose()

    parent_id = format(checkout.get_span_context().span_id, "016x")
    trace_id = format(checkout.get_span_context().trace_id, "032x")
    spans = collector.snapshot()
    clients = [s for s in spans if s.kind == SPAN_KIND_CLIENT]
    assert len(clients) == 2  # one span per call: instrumenting twice changed nothing
    charge = one(clients, lambda s: "/charges" in str(attribute(s, "url.full", "http.url")))
    assert attribute(charge, "http.request.method", "http.method") == "POST"
    assert attribute(charge, "http.response.status_code", "http.status_code") == 200
    for span in clients:
        assert span.trace_id == trace_id
        assert span.parent_span_id == parent_id
    echo_span = one(clients, lambda s: "/echo" in str(attribute(s, "url.full", "http.url")))
    # The callee got the trace: traceparent names this trace and the client span as parent.
    version, sent_trace, sent_parent, flags = collector.echo_headers[0]["traceparent"].split("-")
    assert (version, sent_trace, sent_parent) == ("00", trace_id, echo_span.span_id)
    assert int(flags, 16) & 0x01  # sampled
