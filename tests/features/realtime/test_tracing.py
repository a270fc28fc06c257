"""A traced app serves WebSockets under uvicorn (the ASGI instrumentation must not break them)."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from keel.core.tracing import instrument_app
from keel.main import create_app
from keel.settings import Settings
from tests.support.accounts import signed_up
from tests.support.otlp import (
    SPAN_KIND_SERVER,
    Collector,
    statement,
    traced_config,
)
from tests.support.servers import uvicorn_server


async def test_a_traced_app_under_uvicorn_serves_websockets(
    live_settings: Settings, collector: Collector
) -> None:
    app = create_app(live_settings)
    instrument_app(app, traced_config(collector))
    with uvicorn_server(app, lifespan="on") as base:
        async with httpx.AsyncClient(base_url=base) as http:
            account = await signed_up(http)
        url = base.replace("http", "ws", 1) + f"/api/v1/ws?token={account.access_token}"
        async with websockets.connect(url) as ws, asyncio.timeout(5):
            assert json.loads(await ws.recv()) == {"type": "subscribed", "scope": "own"}

    spans = collector.snapshot()  # the server's lifespan ended: flushed
    routes = {s.attributes.get("http.route"): s for s in spans if s.kind == SPAN_KIND_SERVER}
    assert {"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/ws"} <= set(routes)
    register = routes["/api/v1/auth/register"]
    assert register.name == "POST /api/v1/auth/register"
    inserts = [s for s in spans if statement(s).startswith("INSERT INTO users")]
    assert [(s.trace_id, s.parent_span_id) for s in inserts] == [
        (register.trace_id, register.span_id)
    ]
