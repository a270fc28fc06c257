"""Paying an order is one trace: the request, its gateway call, and its log lines."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.core.logging import configure_logging
from keel.core.tracing import tracing_of
from tests.conftest import MakeSettings
from tests.features.orders.support import card, pay, placed_order
from tests.features.payments.support import running_gateway
from tests.support.accounts import make_admin, signed_up
from tests.support.app import isolated_app, serve
from tests.support.otlp import (
    SPAN_KIND_CLIENT,
    Collector,
    attribute,
    json_lines,
    one,
)


async def test_create_app_traces_a_payment_with_its_gateway_call_and_logs(
    make_settings: MakeSettings,
    db_connection: AsyncConnection,
    collector: Collector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with running_gateway() as (gateway_url, script):
        settings = make_settings(
            payment_gateway="http",
            payment_gateway_url=gateway_url,
            payment_gateway_timeout_seconds=2,
            otel_enabled=True,
            otel_exporter_endpoint=collector.url,
            log_json=True,
        )
        app = isolated_app(settings, db_connection)  # create_app alone turned tracing on
        assert tracing_of(app) is not None
        capsys.readouterr()
        try:
            async with serve(app) as http:
                admin = await signed_up(http)
                await make_admin(db_connection, admin)
                buyer = await signed_up(http)
                order = await placed_order(http, admin, buyer)
                paid = await pay(http, buyer, order["id"], card(), "trace-key")
        finally:
            configure_logging()  # back to the suite's plain console lines
    assert paid.status_code == 200, paid.text
    assert len(script.charges) == 1

    spans = collector.snapshot()
    pay_route = "/api/v1/orders/{order_id}/pay"
    paying = one(spans, lambda s: s.attributes.get("http.route") == pay_route)
    clients = [s for s in spans if s.kind == SPAN_KIND_CLIENT]
    charge = one(clients, lambda s: "/charges" in str(attribute(s, "url.full", "http.url")))
    assert (charge.trace_id, charge.parent_span_id) == (paying.trace_id, paying.span_id)

    lines = json_lines(capsys.readouterr().out)
    access = next(
        line
        for line in lines
        if line.get("event") == "request" and str(line.get("route")).endswith("/pay")
    )
    assert (access["trace_id"], access["span_id"]) == (paying.trace_id, paying.span_id)
