"""The event hub over Redis pub/sub: one process's event reaches every process, and the
subscription comes back by itself after Redis restarts."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import MakeSettings
from tests.support import routes
from tests.support.app import isolated_app, serve
from tests.support.redis_server import redis_server
from tests.support.routes import RECEIVED_EVENTS


def app_on(make_settings: MakeSettings, connection: AsyncConnection, redis_url: str) -> Any:
    application = isolated_app(make_settings(redis_url=redis_url), connection)
    application.include_router(routes.router)
    return application


async def listen(http: httpx.AsyncClient) -> str:
    key = uuid.uuid4().hex
    assert (await http.post(f"/_test/events/{key}")).status_code == 200
    return key


async def publish(http: httpx.AsyncClient, event_id: str) -> None:
    response = await http.post("/_test/publish", json={"type": "order.paid", "id": event_id})
    assert response.status_code == 202


async def received(key: str, event_id: str, within: float = 10.0) -> int:
    """How many times `event_id` reached listener `key`, once it has at all."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        seen = [e for e in RECEIVED_EVENTS.get(key, []) if e.id == event_id]
        if seen:
            await asyncio.sleep(0.2)  # a duplicate would arrive now
            return len([e for e in RECEIVED_EVENTS[key] if e.id == event_id])
        await asyncio.sleep(0.02)
    return 0


async def checks(http: httpx.AsyncClient) -> dict[str, str]:
    body = (await http.get("/ready")).json()
    found: dict[str, str] = (
        body["checks"] if "checks" in body else body["error"]["details"]["checks"]
    )
    return found


async def events_check(http: httpx.AsyncClient, expected: str, within: float = 15.0) -> bool:
    """Whether /ready reports the event subscription as `expected` within `within` seconds."""
    deadline = time.monotonic() + within
    while (await checks(http)).get("events") != expected:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_an_event_reaches_every_process_once(
    make_settings: MakeSettings, db_connection: AsyncConnection, tmp_path: Path
) -> None:
    with redis_server(tmp_path) as server:
        async with (
            serve(app_on(make_settings, db_connection, server.url)) as first,
            serve(app_on(make_settings, db_connection, server.url)) as second,
        ):
            assert await events_check(first, "ok")
            assert await events_check(second, "ok")
            here, there = await listen(first), await listen(second)
            event_id = str(uuid.uuid4())
            await publish(first, event_id)
            assert await received(there, event_id) == 1
            assert await received(here, event_id) == 1


async def test_fan_out_recovers_after_redis_restarts(
    make_settings: MakeSettings, db_connection: AsyncConnection, tmp_path: Path
) -> None:
    with redis_server(tmp_path) as server:
        async with (
            serve(app_on(make_settings, db_connection, server.url)) as first,
            serve(app_on(make_settings, db_connection, server.url)) as second,
        ):
            assert await events_check(first, "ok")
            there = await listen(second)

            server.stop()
            assert await events_check(first, "unavailable")
            assert (await first.get("/ready")).status_code == 503
            lost = str(uuid.uuid4())
            await publish(first, lost)  # dropped and logged, not an error

            server.start()
            assert await events_check(first, "ok")
            assert await events_check(second, "ok")
            assert await checks(first) == {"database": "ok", "redis": "ok", "events": "ok"}
            event_id = str(uuid.uuid4())
            await publish(first, event_id)
            assert await received(there, event_id) == 1
            assert await received(there, lost, within=0.1) == 0
